# The two commands: `make run` (the app on the demo sweep, local provider, CPU) and `make test`.
# Both create .venv themselves and are fast when it is already there.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.usim-installed

.PHONY: run test lint bench clean setup

setup: $(STAMP)

# torch first, pinned to the CPU build on this disk, so the project's torch>= range is already satisfied
# (a bare `torch` would pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/usim-tui

test: $(STAMP)
	WANDB_MODE=offline WANDB_SILENT=true $(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) runs .pytest_cache
