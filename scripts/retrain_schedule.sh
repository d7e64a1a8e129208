#!/usr/bin/env bash
# Scheduled retraining on this machine with cron. ZenML's local orchestrator refuses schedules;
# on a stack whose orchestrator takes them (Kubernetes, Kubeflow, Airflow) use
# configs/schedule.yaml instead.
#
#   scripts/retrain_schedule.sh install [CRON_EXPR]   add or replace this checkout's crontab entry
#                                                     (default "0 3 * * 1": Mondays at 03:00)
#   scripts/retrain_schedule.sh list                  show this checkout's entry
#   scripts/retrain_schedule.sh remove                remove this checkout's entry, nothing else
#   scripts/retrain_schedule.sh run                   what cron starts: one retraining
#
# `run` retrains from the checkout with `make run CONFIG=$RETRAIN_CONFIG` (default
# configs/retrain.yaml), never two at once (`flock -n` on logs/retrain.lock: a start while a run
# is going on logs "already running" and exits 0), and appends everything, timestamped, to
# logs/retrain.log.
#
# Environment:
#   RETRAIN_CONFIG   the run config `make run` gets (default configs/retrain.yaml)
#   RETRAIN_COMMAND  a shell command `run` executes instead of make (tests use it)
#   RECOMMEND_COMMAND  run after a retraining that succeeded, e.g. "make recommend" (batch
#                    recommendations from the champion); unset: none
#   CRONTAB_CMD      the crontab program (default crontab; tests point it at a fake one)
#
# Every entry ends with a marker comment naming the checkout, so clones of the project keep
# one entry each, and install and remove never touch lines they did not write.
#
# Without cron, or to catch up on runs missed while the machine was off: the systemd user timer
# in scripts/systemd/ (movielens-retrain.service and .timer; their headers say how to install).
set -euo pipefail

CHECKOUT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
SCRIPT_PATH="$CHECKOUT_DIR/scripts/retrain_schedule.sh"
LOG_DIR="$CHECKOUT_DIR/logs"
LOG_FILE="$LOG_DIR/retrain.log"
LOCK_FILE="$LOG_DIR/retrain.lock"
DEFAULT_CRON_EXPR="0 3 * * 1"
CRONTAB_CMD="${CRONTAB_CMD:-crontab}"
MARKER="# movielens-retrain: $CHECKOUT_DIR"
TIME_FORMAT="%Y-%m-%d %H:%M:%S %z"

usage() {
  cat <<EOF
Usage: $0 install [CRON_EXPR] | list | remove | run
  install [CRON_EXPR]  schedule retraining of $CHECKOUT_DIR (default "$DEFAULT_CRON_EXPR",
                       quoted as one argument); replaces this checkout's previous entry
  list                 show this checkout's crontab entry
  remove               remove this checkout's crontab entry
  run                  retrain now, as cron does; output goes to $LOG_FILE
EOF
}

fail() {
  echo "error: $*" >&2
  exit 1
}

require_crontab() {
  command -v "$CRONTAB_CMD" >/dev/null 2>&1 \
    || fail "'$CRONTAB_CMD' not found. Install cron (Debian/Ubuntu: sudo apt-get install cron," \
      "then sudo service cron start), or use the systemd timer in scripts/systemd/."
}

# Prints the user's crontab. Having none yet is an empty table; any other failure stops the
# script, since writing back a table that could not be read would wipe the user's entries.
read_crontab() {
  local errors_file status=0 errors
  errors_file="$(mktemp)"
  "$CRONTAB_CMD" -l 2>"$errors_file" || status=$?
  errors="$(<"$errors_file")"
  rm -f "$errors_file"
  if ((status != 0)) && [[ "$errors" != *"no crontab for"* ]]; then
    fail "'$CRONTAB_CMD -l' failed, the crontab is left as it is: $errors"
  fi
}

# Replaces the user's crontab with $1 (one line per entry; empty for none).
write_crontab() {
  if [[ -n "$1" ]]; then printf '%s\n' "$1"; fi | "$CRONTAB_CMD" -
}

# Prints the lines of crontab table $2 that are ($1 = ours) or are not ($1 = others) this
# checkout's entries: lines ending with exactly this checkout's marker, so a clone at /a/b
# never matches the entry of one at /a/b2.
select_lines() {
  local which="$1" table="$2"
  [[ -n "$table" ]] || return 0
  printf '%s\n' "$table" | WHICH="$which" MARKER="$MARKER" awk '
    {
      marker = ENVIRON["MARKER"]
      ours = length($0) >= length(marker) && substr($0, length($0) - length(marker) + 1) == marker
    }
    (ENVIRON["WHICH"] == "ours") == ours'
}

validate_cron_expr() {
  local -a fields
  read -r -a fields <<<"$1"
  if [[ "$1" != *$'\n'* ]] && { ((${#fields[@]} == 5)) || [[ ${#fields[@]} -eq 1 && "$1" == @* ]]; }; then
    return 0
  fi
  fail "'$1' is not a cron schedule: five fields (minute hour day-of-month month day-of-week)" \
    "or one of @hourly, @daily, @weekly, @monthly, quoted as one argument"
}

install_entry() {
  local cron_expr="$1" table others entry
  validate_cron_expr "$cron_expr"
  require_crontab
  # cron turns an unescaped % in the command into a newline.
  [[ "$CHECKOUT_DIR" != *%* ]] || fail "cron cannot run a checkout whose path has a %: $CHECKOUT_DIR"
  mkdir -p "$LOG_DIR"
  entry="$cron_expr $(printf '%q' "$SCRIPT_PATH") run $MARKER"
  table="$(read_crontab)"
  others="$(select_lines others "$table")"
  write_crontab "${others:+$others$'\n'}$entry"
  echo "Scheduled: $entry"
  echo "Runs log to $LOG_FILE"
}

list_entries() {
  local table ours
  require_crontab
  table="$(read_crontab)"
  ours="$(select_lines ours "$table")"
  if [[ -n "$ours" ]]; then
    printf '%s\n' "$ours"
  else
    echo "No retraining scheduled for $CHECKOUT_DIR"
  fi
}

remove_entries() {
  local table
  require_crontab
  table="$(read_crontab)"
  if [[ -z "$(select_lines ours "$table")" ]]; then
    echo "No retraining scheduled for $CHECKOUT_DIR: nothing to remove"
    return 0
  fi
  write_crontab "$(select_lines others "$table")"
  echo "Removed the retraining entry of $CHECKOUT_DIR"
}

log() {
  printf "%($TIME_FORMAT)T [retrain_schedule] %s\n" -1 "$*"
}

# Prefixes each line of stdin with the time it arrived.
timestamped() {
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    printf "%($TIME_FORMAT)T %s\n" -1 "$line"
  done
}

run_retraining() {
  local lock_fd status=0 command
  cd "$CHECKOUT_DIR"
  mkdir -p "$LOG_DIR"
  if [[ -t 1 ]]; then echo "Retraining; output goes to $LOG_FILE"; fi
  # From here on, everything (errors of this script included) goes to the one known place.
  exec >>"$LOG_FILE" 2>&1
  # The retraining inherits the lock: it stays held while any process of the run is alive.
  exec {lock_fd}>>"$LOCK_FILE"
  if ! flock -n "$lock_fd"; then
    log "already running (another process holds $LOCK_FILE): this start does nothing"
    exit 0
  fi
  # cron starts jobs with PATH=/usr/bin:/bin: add the checkout's venv and the usual install places.
  export PATH="$CHECKOUT_DIR/.venv/bin:${HOME:+$HOME/.local/bin:}/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH"
  command="${RETRAIN_COMMAND:-make run CONFIG=$(printf '%q' "${RETRAIN_CONFIG:-configs/retrain.yaml}")}"
  log "starting in $CHECKOUT_DIR: $command"
  bash -c "$command" 2>&1 | timestamped || status=$?
  log "finished with exit status $status"
  if ((status == 0)) && [[ -n "${RECOMMEND_COMMAND:-}" ]]; then
    log "batch recommendations: $RECOMMEND_COMMAND"
    bash -c "$RECOMMEND_COMMAND" 2>&1 | timestamped || status=$?
    log "batch recommendations finished with exit status $status"
  fi
  return "$status"
}

main() {
  case "${1:-}" in
    install)
      (($# <= 2)) || fail "install takes one CRON_EXPR, quoted as one argument, e.g. \"$DEFAULT_CRON_EXPR\""
      install_entry "${2:-$DEFAULT_CRON_EXPR}"
      ;;
    list) list_entries ;;
    remove) remove_entries ;;
    run) run_retraining ;;
    -h | --help | help) usage ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
}

main "$@"
