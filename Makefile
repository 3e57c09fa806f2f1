# gridfare: `make demo` and `make test` work on a fresh machine with Python 3.10+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_DIR ?= demo-data
DEMO_ACCOUNTS ?= 200000
DEMO_SECTIONS ?= 400
DEMO_PERIOD ?= 2026-10
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER := 0

.PHONY: venv demo test test-fast bench lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/gridfare generate --accounts $(DEMO_ACCOUNTS) --sections $(DEMO_SECTIONS) \
		--period $(DEMO_PERIOD) --seed 7 --out $(DEMO_DIR)
	$(BIN)/gridfare bill --datacentre $(DEMO_DIR) --period $(DEMO_PERIOD)
	$(BIN)/gridfare summary --datacentre $(DEMO_DIR) --period $(DEMO_PERIOD)
	@echo "Bills: $(DEMO_DIR)/bills/period=$(DEMO_PERIOD)/  catalog: $(DEMO_DIR)/catalog.duckdb"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests/unit

bench: $(STAMP)
	$(BIN)/python -m bench

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench-data .pytest_cache .ruff_cache
