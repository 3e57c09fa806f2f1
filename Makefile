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

.PHONY: venv demo demo-stop test test-fast bench bench-tools lint format clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

# The demo runs the billing job on a local Ray cluster (loopback only, so no token auth);
# the cluster stays up for the dashboard at http://127.0.0.1:8265 until `make demo-stop`.
# Its dashboard agent is off Ray's default port 52365, which any other local cluster on
# the host (a test run's) takes first; `ray job submit` then found "No available agent".
RAY_ENV := PATH="$(abspath $(BIN)):$$PATH" RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
DASHBOARD := http://127.0.0.1:8265

demo: $(STAMP)
	rm -rf $(DEMO_DIR)
	$(BIN)/gridfare generate --accounts $(DEMO_ACCOUNTS) --sections $(DEMO_SECTIONS) \
		--period $(DEMO_PERIOD) --seed 7 --out $(DEMO_DIR)
	$(RAY_ENV) $(BIN)/ray status --address 127.0.0.1:6379 >/dev/null 2>&1 || \
		$(RAY_ENV) $(BIN)/ray start --head --port 6379 --num-cpus 2 \
		--dashboard-host 127.0.0.1 --dashboard-port 8265 --metrics-export-port 8090 \
		--dashboard-agent-listen-port 52465 --dashboard-agent-grpc-port 52466
	$(RAY_ENV) $(BIN)/ray job submit --address $(DASHBOARD) -- \
		python -m rayjobs.billing --datacentre $(abspath $(DEMO_DIR)) --period $(DEMO_PERIOD)
	$(BIN)/gridfare summary --datacentre $(DEMO_DIR) --period $(DEMO_PERIOD)
	@echo "Bills: $(DEMO_DIR)/bills/period=$(DEMO_PERIOD)/  catalog: $(DEMO_DIR)/catalog.duckdb"
	@echo "Ray dashboard: $(DASHBOARD)  (stop the demo cluster with: make demo-stop)"

demo-stop:
	$(RAY_ENV) $(BIN)/ray stop

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadscope

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests/unit

# BENCH_LARGE=1 adds the 30 M account run (its city is generated once, ~10 min, ~4 GB).
bench: $(STAMP) bench-tools
	$(BIN)/python -m pip install --quiet -e ".[bench,spark]"
	$(BIN)/python -m bench $(if $(BENCH_LARGE),--large)

# bench/accounts.py drives HTTP with wrk (Debian); make test does not need it
bench-tools:
	@command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(DEMO_DIR) bench-data .pytest_cache .ruff_cache
