# The project's habits. Every target works on a fresh machine: the virtualenv is
# created and filled from constraints.txt on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo-workspace
DEMO_CONTACTS ?= 50000
PYTEST_ARGS ?=

.PHONY: install demo test test-fast bench lint format docs clean

$(BIN)/winback: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,pg,bench,docs,spark]'
	touch $@

install: $(BIN)/winback

demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/winback demo $(DEMO_DIR) --contacts $(DEMO_CONTACTS)
	$(BIN)/winback score -w $(DEMO_DIR)
	$(BIN)/winback status -w $(DEMO_DIR)

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: install
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/import.py
	$(BIN)/python bench/score.py
	$(BIN)/python bench/journeys.py
	$(BIN)/python bench/models.py
	$(BIN)/python bench/tracking.py
	$(BIN)/python bench/cli.py
	$(BIN)/python bench/segments.py
	$(BIN)/python bench/dashboard.py

# The gate .ci/run passes before the tests: ruff, the format, and mypy strict on src and
# tests (the files and options are [tool.mypy] in pyproject.toml).
lint: install
	$(BIN)/ruff check src tests bench docs
	$(BIN)/ruff format --check src tests bench docs
	$(BIN)/mypy

docs: install
	$(BIN)/python docs/gen_reference.py
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

format: install
	$(BIN)/ruff format src tests bench docs
	$(BIN)/ruff check --fix src tests bench docs

clean:
	rm -rf $(VENV) $(DEMO_DIR) site .pytest_cache .ruff_cache .mypy_cache
