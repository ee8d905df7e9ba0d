# The two commands of the README: `make serve` and `make test`. Each creates .venv if missing.
# `make lint` and `make typecheck` are the habits CI enforces (see CONTRIBUTING.md).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: serve test venv stubs bench gpu-check clean default-model longrange-model field-model molecular-model lint format typecheck

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
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -q -ra --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/python .ci/package_tree.py > /dev/null
	MYPYPATH=build/pkg $(BIN)/mypy -p mlipserve.client -p mlipserve.simulation \
	  -p mlipserve.server.serving -p mlipserve.wire

stubs: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos --python_out=protos --grpc_python_out=protos \
	  --pyi_out=protos protos/mlipserve/v1/potential.proto

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

# On a GPU machine, one process (< 8 min): CUDA conformance of every family against CPU
# float64 and the GPU benchmarks -> benchmarks/results/gpu_check_cuda.json (CI: --smoke on cpu).
gpu-check: $(STAMP)
	$(BIN)/python -m benchmarks.gpu_check --device cuda

clean:
	rm -rf $(VENV) build *.egg-info

# Reproduce the shipped default model (EMT labels, fixed seeds); see README.
# The long-range NaCl models (rigid-ion labels; with and without Coulomb) and the field model
# (xTB labels): data, training, held-out figures; copy the store's version into
# server/models/shipped/ to ship it.
longrange-model: $(STAMP)
	$(BIN)/python -m mlipserve.server.training.nacl_data build/longrange

# field-molecules-xtb: GFN2-xTB labels in fields (~2 min), trunk from default-molecular,
# 21 min of training + a 7 min energy-weighted fine-tune on one core (build/field/report.json)
field-model: $(STAMP)
	$(BIN)/python -m mlipserve.server.training.field_data build/field

# default-molecular: GFN2-xTB labels of H/C/N/O frames (reused from build/molecular/*.extxyz
# when present), ~10 min labelling and <= 25 min training on one core, then shipped
molecular-model: $(STAMP)
	rm -rf build/molecular/store
	OMP_NUM_THREADS=1 $(BIN)/python -m mlipserve.server.training.molecular_data build/molecular
	rm -rf server/models/shipped/default-molecular
	cp -r build/molecular/store/default-molecular server/models/shipped/default-molecular

default-model: $(STAMP)
	$(BIN)/mlipserve data build/emt_train.extxyz --seed 0 --scale 8
	$(BIN)/mlipserve data build/emt_test.extxyz --seed 1 --scale 2
	$(BIN)/mlipserve data build/emt_ood.extxyz --seed 2 --ood
	$(BIN)/mlipserve train build/emt_train.extxyz --name default --store build/store \
	  --report build/report --epochs 400 --members 4 --features 32 --layers 2 --cutoff 5.0 \
	  --lr 3e-3 --batch-size 8 --seed 0 --max-minutes 45 \
	  --test-data build/emt_test.extxyz --ood-data build/emt_ood.extxyz
	$(BIN)/mlipserve train build/emt_train.extxyz --name default --store build/store \
	  --report build/report --epochs 400 --lr 1e-3 --batch-size 8 --seed 0 --energy-weight 10 \
	  --max-minutes 17 --warm-start v1 \
	  --test-data build/emt_test.extxyz --ood-data build/emt_ood.extxyz
	# v3: widened (uneven alloys, vacancies, alloy slabs and MD); reported on an alloy set
	# built by another procedure (--independent); see the version's metadata
	$(BIN)/mlipserve data build/emt_wide.extxyz --wide --seed 3 --scale 10
	$(BIN)/mlipserve data build/emt_wide_test.extxyz --wide --seed 4 --scale 2
	$(BIN)/mlipserve data build/emt_independent.extxyz --independent --seed 7
	cat build/emt_train.extxyz build/emt_wide.extxyz > build/emt_train_v3.extxyz
	cat build/emt_test.extxyz build/emt_wide_test.extxyz > build/emt_test_v3.extxyz
	$(BIN)/mlipserve train build/emt_train_v3.extxyz --name default --store build/store \
	  --report build/report --epochs 400 --lr 1e-3 --batch-size 8 --seed 0 --energy-weight 10 \
	  --max-minutes 30 --warm-start v2 \
	  --test-data build/emt_test_v3.extxyz --ood-data build/emt_ood.extxyz
	$(BIN)/python -m benchmarks.default_model_alloys build/store build/emt_independent.extxyz \
	  --write-metadata
	rm -rf server/models/shipped/default && mkdir -p server/models/shipped
	cp -r build/store/default server/models/shipped/default
