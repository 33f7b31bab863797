# kizuna: `make demo` runs the nightly pipeline on a demo shop, `make test` runs the tests.
# Both create the environment on first use: uv (from PyPI, into .tools/) installs the
# locked dependencies (requirements.lock) into .venv/.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV := .tools/bin/uv
UV_VERSION := 0.13.9
STAMP := $(VENV)/.installed

# Never download a Python interpreter; compile bytecode at install (imports are 3x faster).
export UV_PYTHON_DOWNLOADS := never
export UV_COMPILE_BYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help demo test bench lock docs clean report-screenshot

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

demo: $(STAMP) ## Run the whole nightly job on the demo shop (data/, local Prefect, local outbox)
	$(BIN)/kizuna demo

test: $(STAMP) ## Run the test suite
	$(BIN)/pytest

report-screenshot: $(STAMP) ## Test the report in headless Chromium and refresh docs/report.png
	KIZUNA_UPDATE_DOCS_SCREENSHOT=1 $(BIN)/pytest tests/test_report.py -q

bench: $(STAMP) ## Time each stage on generated shops (BENCH_CUSTOMERS="10000 100000")
	$(BIN)/python -m bench $(if $(BENCH_CUSTOMERS),--customers $(BENCH_CUSTOMERS))

docs: $(STAMP) ## Generate the dbt docs (dbt_project/target/static_index.html)
	$(BIN)/kizuna docs dbt

lock: $(UV) ## Re-resolve requirements.lock from pyproject.toml
	$(UV) pip compile pyproject.toml --extra test --extra spark --generate-hashes --no-emit-index-url \
		--python-version 3.11 -o requirements.lock

clean: ## Remove the environment and generated data
	rm -rf $(VENV) .tools .prefect data dbt_project/target dbt_project/logs

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

$(STAMP): requirements.lock pyproject.toml | $(UV)
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	VIRTUAL_ENV=$(VENV) $(UV) pip sync --quiet --require-hashes requirements.lock
	VIRTUAL_ENV=$(VENV) $(UV) pip install --quiet --no-deps -e .
	touch $@
