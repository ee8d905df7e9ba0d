# mlipserve server image. CPU by default; for CUDA:
#   docker build --build-arg BASE=nvidia/cuda:12.8.1-runtime-ubuntu24.04 ...
# (a CUDA base needs python3.11 and python3.11-venv installed; torch==2.13.0 from PyPI then
# brings its CUDA libraries.)
ARG BASE=python:3.11-slim-bookworm
FROM ${BASE}

RUN apt-get update && apt-get install -y --no-install-recommends make \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 1000 mlipserve

WORKDIR /app
COPY --chown=mlipserve:mlipserve . /app
USER mlipserve
# the README's install steps (what `make serve` does before starting)
RUN make venv

# Public bind needs auth: create keys with `docker exec <container> .venv/bin/mlipserve keys create`
ENV MLIPSERVE_HOST=0.0.0.0 MLIPSERVE_PORT=50051 MLIPSERVE_AUTH=true MLIPSERVE_DATA_DIR=/app/data
EXPOSE 50051 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD [".venv/bin/python", "-c", "import grpc, sys; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; s = g.HealthStub(grpc.insecure_channel('127.0.0.1:50051')).Check(h.HealthCheckRequest(), timeout=3); sys.exit(s.status != h.HealthCheckResponse.SERVING)"]
CMD [".venv/bin/mlipserve", "serve"]
