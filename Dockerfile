# mlipserve server image: the server extra only (no dev tools, no labeller extras).
#
# CPU (default): torch==2.13.0 from PyTorch's CPU wheel index (~200 MB), not PyPI's default
# CUDA build (several GB of nvidia-* wheels).
#   docker build -t mlipserve .
# CUDA: a CUDA runtime base with Python 3.11, and the CUDA wheel index:
#   docker build -t mlipserve:cuda \
#     --build-arg BASE=nvidia/cuda:12.8.1-runtime-ubuntu24.04 \
#     --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 .
#   docker run --gpus all -p 50051:50051 -p 8080:8080 -v mlipserve-data:/data mlipserve:cuda
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
# Python 3.11 and venv where the base has none (CUDA/Ubuntu bases); a no-op on python:3.11.
# A uid of our own (10001): Ubuntu bases already have uid 1000 (user ubuntu).
RUN if ! command -v python3.11 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends software-properties-common \
        && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \
        && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && python3.11 -m venv /opt/venv \
    && useradd --create-home --uid 10001 --user-group mlipserve
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /app
# Dependencies first (this layer is rebuilt only when pyproject.toml changes) ...
COPY pyproject.toml /app/pyproject.toml
RUN pip install torch==2.13.0 --index-url ${TORCH_INDEX} \
    && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(d for d in p['dependencies'] + p['optional-dependencies']['server'] \
if not d.startswith('torch')))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
# ... then the code, installed without touching the dependencies again.
COPY . /app
RUN pip install --no-deps ".[server]" && rm -rf /app/build

# Keys database, model store and SQLite queue live in the volume.
ENV MLIPSERVE_HOST=0.0.0.0 MLIPSERVE_PORT=50051 MLIPSERVE_REST_PORT=8080 \
    MLIPSERVE_AUTH=true MLIPSERVE_DATA_DIR=/data
RUN mkdir -p /data && chown mlipserve:mlipserve /data
VOLUME /data
USER mlipserve
EXPOSE 50051 8080
# Public bind needs auth: create keys with `docker exec <container> mlipserve keys create`.
# Works with TLS on too (MLIPSERVE_TLS_CERT / MLIPSERVE_TLS_KEY): see `mlipserve health --help`.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD ["mlipserve", "health"]
CMD ["mlipserve", "serve"]
