# The two commands of the README: `make serve` and `make test`. Each creates .venv if missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: serve test venv stubs bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[server,dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

serve: $(STAMP)
	$(BIN)/mlipserve serve

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra

stubs: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=protos --grpc_python_out=protos \
	  --pyi_out=protos protos/mlipserve/v1/potential.proto

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf $(VENV) build *.egg-info
