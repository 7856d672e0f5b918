# Two commands on a fresh machine:  `make solve`  (set up + solve a question with the embedded
# CPU model)  and  `make test`  (unit + integration tests against a real llama.cpp server).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
Q      ?= A baker makes 24 muffins. She sells 18 of them and then bakes 30 more. How many muffins does she have now?
ARGS   ?=

.PHONY: setup solve test unit lint typecheck wheel-check format clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[local,test,eval]"
	touch $(STAMP)

setup: $(STAMP)

solve: $(STAMP)
	$(BIN)/rstar solve "$(Q)" $(ARGS)

# pytest exits 5 when it collected no tests: that is a failure here, never a silent pass.
test: $(STAMP)
	RSTAR_REQUIRE_LLM=$${RSTAR_REQUIRE_LLM:-1} $(BIN)/python -m pytest $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

unit: $(STAMP)
	$(BIN)/python -m pytest -m "not llm" $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check langgraph_rstar tests examples benchmarks
	$(BIN)/ruff format --check langgraph_rstar tests examples benchmarks

# mypy over the package (configured in pyproject.toml); CI requires 0 errors.
typecheck: $(STAMP)
	$(BIN)/mypy

# Build the wheel, install it into a clean venv, run `rstar --version` and a scripted-server solve.
wheel-check: $(STAMP)
	PYTHON=$(BIN)/python bash .ci/check-wheel

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
