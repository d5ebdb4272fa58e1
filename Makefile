# rnn-lightning: `make help` lists the targets.
PYTHON ?= .venv/bin/python
ARGS ?=
# The sweep of `make report` and `make ensemble`; left empty, each takes the newest sweep folder under multirun/.
DIR ?=

.DEFAULT_GOAL := help
.PHONY: help install install-slurm install-parallel install-optuna install-triton train train-sine sweep tensorboard test test-full bench bench-epoch gpu-check report ensemble reproduce reproduce-quick lint format clean

help: ## Show this help
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

install: ## Create .venv (Python 3.11+) and install the project, GloVe vectors and dev tools
	python3 -m venv .venv
	$(PYTHON) -m pip install --upgrade pip
	$(PYTHON) -m pip install -e '.[dev]'

install-slurm: ## Add Hydra's submitit launcher for sweeps on a SLURM cluster
	$(PYTHON) -m pip install -e '.[slurm]'

install-parallel: ## Add Hydra's joblib launcher: sweep jobs at once on one machine (hydra/launcher=parallel)
	$(PYTHON) -m pip install -e '.[parallel]'

install-optuna: ## Add Hydra's Optuna sweeper for hyperparameter search (hydra/sweeper=tune)
	$(PYTHON) -m pip install -e '.[optuna]'

install-triton: ## Add Triton for model.impl=triton (GPUs; on a CPU its interpreter runs the kernel tests)
	$(PYTHON) -m pip install -e '.[triton]'

train: ## Train with the defaults (sentiment: bi-GRU over GloVe, Adam); overrides in ARGS="model=lstm epochs=5"
	$(PYTHON) train.py $(ARGS)

train-sine: ## Sine regression with LBFGS; ARGS="model=rnn" to change
	$(PYTHON) train.py task=sine $(ARGS)

sweep: ## The headline sweep: optimizers x batch sizes, one TensorBoard run per job
	$(PYTHON) train.py -m optim=adam,sgdm batch=200,500 $(ARGS)

tensorboard: ## TensorBoard over every run and sweep (http://localhost:6006)
	$(PYTHON) -m tensorboard.main --logdir . --port 6006

test: ## Fast test suite (what CI runs)
	$(PYTHON) -m pytest -q

test-full: ## Every test, including the slow ones
	$(PYTHON) -m pytest -q -m ''

bench: ## Speed of loop vs fused vs torch.nn cells (ARGS="--quick" for a short run)
	$(PYTHON) -m benchmarks.cells $(ARGS)

bench-epoch: ## One sentiment epoch: Trainer vs plain loop, loop vs fused cells
	$(PYTHON) -m benchmarks.epoch $(ARGS)

gpu-check: ## On a CUDA machine, at most 6 min: benchmark vs cuDNN, CUDA tests, end-to-end runs; in gpu_check/ (docs/gpu.md)
	$(PYTHON) -m benchmarks.gpu_check --out gpu_check $(ARGS)

report: ## Comparison table of a sweep: make report DIR=multirun/DATE/TIME
	$(PYTHON) -m rnn_lightning.cli.report $(DIR) $(ARGS)

ensemble: ## Test accuracy of a seed sweep's models averaged: make ensemble DIR=multirun/DATE/TIME
	$(PYTHON) -m rnn_lightning.cli.ensemble $(DIR) $(ARGS)

reproduce: ## Rerun the course report's experiments and more; one report in reproduce/DATE_TIME/
	$(PYTHON) -m rnn_lightning.cli.reproduce $(ARGS)

reproduce-quick: ## The same sweeps on a sliver of the data: a smoke check in a few minutes
	$(PYTHON) -m rnn_lightning.cli.reproduce --quick $(ARGS)

lint: ## Ruff lint and format check
	$(PYTHON) -m ruff check rnn_lightning benchmarks examples tests train.py
	$(PYTHON) -m ruff format --check rnn_lightning benchmarks examples tests train.py

format: ## Ruff format and autofix
	$(PYTHON) -m ruff format rnn_lightning benchmarks examples tests train.py
	$(PYTHON) -m ruff check --fix rnn_lightning benchmarks examples tests train.py

clean: ## Remove caches and build files (keeps outputs/ and multirun/)
	rm -rf .pytest_cache .ruff_cache build dist *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
