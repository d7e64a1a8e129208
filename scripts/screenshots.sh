#!/usr/bin/env bash
# Screenshots for the README, taken in a real browser (Debian's headless Chromium):
#   docs/images/mlflow-registered-model.png   MLflow UI, the registered model of the smoke run
#   docs/images/zenml-dashboard-run.png       ZenML dashboard, the run page of the latest run
#
#   make run CONFIG=configs/smoke.yaml && scripts/screenshots.sh
#
# Starts `make mlflow-ui` and `make dashboard` in the background, waits for both, captures the
# pages and stops the servers again. Needs `apt-get install chromium`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
MODEL="${MODEL:-movielens-smoke}"
OUT=docs/images
mkdir -p "$OUT"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
PROFILE="$(mktemp -d)"

make -s mlflow-ui > "$PROFILE/mlflow-ui.log" 2>&1 & MLFLOW_PID=$!
make -s dashboard > "$PROFILE/dashboard.log" 2>&1 & DASHBOARD_PID=$!
trap 'kill -- -$MLFLOW_PID -$DASHBOARD_PID 2>/dev/null || kill $MLFLOW_PID $DASHBOARD_PID 2>/dev/null; pkill -f "mlflow ui --backend-store-uri" || true; pkill -f zenml_dashboard.py || true; rm -rf "$PROFILE"' EXIT

wait_for() {  # url
  for _ in $(seq 120); do curl -fs -o /dev/null "$1" && return 0; sleep 1; done
  echo "nothing answers at $1" >&2; exit 1
}
wait_for http://127.0.0.1:5000/health
wait_for http://127.0.0.1:8237/api/v1/info

shoot() {  # url output
  "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
    --user-data-dir="$PROFILE/chromium" --window-size=1440,1000 --virtual-time-budget="${VIRTUAL_TIME_MS:-60000}" \
    --screenshot="$2" "$1" 2>/dev/null
  echo "wrote $2"
}
shoot "http://127.0.0.1:5000/#/models/$MODEL" "$OUT/mlflow-registered-model.png"
# A fresh local ZenML user meets a one-time onboarding survey first; mark it answered (no e-mail).
.venv/bin/python -c 'from zenml.client import Client; c = Client(); c.update_user(c.active_user.id, updated_full_name=c.active_user.full_name or "local user", updated_email_opt_in=False, updated_metadata={"finished_onboarding_survey": True})' >/dev/null
RUN_ID="$(.venv/bin/python -c 'from zenml.client import Client; print(Client().get_pipeline("training_pipeline").last_run.id)')"
shoot "http://127.0.0.1:8237/projects/default/runs/$RUN_ID" "$OUT/zenml-dashboard-run.png"
