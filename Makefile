# Two commands for a newcomer: `make run` and `make test`. Both build .venv from pyproject.toml first.
# `make docs` builds the documentation site into site/ (open site/index.html).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test docs bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The whole story on shipped data, tracked in MLflow (runs/mlflow.db): a sample CRM export (18 months of history),
# its calibration and open pipeline, a forecast of the next months, the organisation simulated from the export's
# as-of date, the cheapest hiring plan reaching the bookings target, that plan simulated, HTML reports.
TRACK := --tracking-uri sqlite:///runs/mlflow.db
TARGET := 30000000
run: $(STAMP)
	mkdir -p runs
	$(BIN)/salesops generate-crm baseline --seed 3 --out runs/crm
	$(BIN)/salesops calibrate runs/crm/crm_export.csv --mapping generated --roster runs/crm/roster.csv --scenario baseline --out runs/calibration
	$(BIN)/salesops forecast runs/crm/crm_export.csv --mapping generated --months 6 --replications 100 --workers 2 --out runs/forecast
	$(BIN)/salesops simulate runs/calibration/scenario.yaml --replications 20 --seed 1 --workers 2 --out runs/today $(TRACK)
	$(BIN)/salesops optimize headcount runs/calibration/scenario.yaml --target-bookings $(TARGET) --replications 20 --seed 1 --workers 2 --out runs/plan
	$(BIN)/salesops simulate runs/plan/scenario.yaml --replications 20 --seed 1 --workers 2 --out runs/plan/simulation $(TRACK)
	$(BIN)/salesops report runs/today $(TRACK)
	$(BIN)/salesops report runs/plan/simulation $(TRACK)
	$(BIN)/salesops compare runs/today runs/plan/simulation --out runs/comparison.csv
	@echo "reports: runs/today/report.html, runs/plan/simulation/report.html; plan: runs/plan/plan.csv; forecast: runs/forecast/forecast.png"
	@echo "runs in MLflow: $(BIN)/mlflow ui --backend-store-uri sqlite:///runs/mlflow.db  (then http://127.0.0.1:5000)"

# The suite's files run on as many workers as the machine has cores, each file on one worker (its shared fixtures
# built once); `$(BIN)/python -m pytest tests/test_x.py` runs one file in one process.
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --dist loadfile

# The site: guides, the model explained, the reference generated from the code (docs/_tools), the API from
# docstrings. Strict: a broken link or a missing reference fails the build.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 DISABLE_MKDOCS_2_WARNING=true $(BIN)/mkdocs build --strict
	@echo "open site/index.html"

# Speed figures (several minutes; not part of make test). Each script also runs on its own.
bench: $(STAMP)
	$(BIN)/python benchmarks/engine_speed.py
	$(BIN)/python benchmarks/headcount_speed.py
	$(BIN)/python benchmarks/headcount_speed.py --targets
	$(BIN)/python benchmarks/automation_check.py
	$(BIN)/python benchmarks/sweep_speed.py
	$(BIN)/python benchmarks/calibration_speed.py
	$(BIN)/python benchmarks/territory_speed.py

clean:
	rm -rf $(VENV) runs site
