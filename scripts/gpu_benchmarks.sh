#!/usr/bin/env bash
# The training benchmarks on a GPU, within a wall-clock budget, everything they measure kept in OUT:
#  1. S3Rec (pretraining + finetuning) and LRML / BPR-MF on MovieLens-100k, one process alone on
#     the GPU: throughput and figures to set beside the CPU ones (benchmarks/results/*_ml100k.json);
#  2. the S3Rec paper benchmark on LastFM with the paper's own pretraining (every prefix, 150
#     epochs, batch 100), one process per seed sharing the GPU: both finetuning settings without
#     pretraining, then the pretraining, cut at what the budget leaves (its epochs run are in the
#     report), and both settings from it. Its work folder is packed into OUT/lastfm_work.tgz;
#     summarise it anywhere with benchmarks/s3rec_paper.py --report-only --work <unpacked folder>
#     --results <json>.
#
# Usage: scripts/gpu_benchmarks.sh OUT [BUDGET_SECONDS]     (default budget 560 s)
# Environment: PYTHON (default .venv/bin/python), DEVICE (cuda), SEEDS ("42 1 2"), DATA_DIR (the
# authors' files, default ../shared/data/s3rec), PRETRAIN_EPOCHS (150), FINETUNE_EPOCHS (a cap, for
# dry runs), SKIP_ML100K=1, WORK (the LastFM work folder, default a new one), UNCAPPED=1 (no cap on
# the pretraining: the budget's timeout kills it, and the script run again over the same WORK
# resumes it after its last finished epoch, so 150 epochs can span several commands).
set -u
out=${1:?usage: scripts/gpu_benchmarks.sh OUT [BUDGET_SECONDS]}
budget=${2:-560}
python=${PYTHON:-.venv/bin/python}
device=${DEVICE:-cuda}
seeds=${SEEDS:-42 1 2}
data_dir=${DATA_DIR:-../shared/data/s3rec}
started=$(date +%s)
mkdir -p "$out"
log="$out/gpu_benchmarks.log"
say() { echo "[$(($(date +%s) - started)) s] $*" | tee -a "$log"; }
left() { echo $((budget - ($(date +%s) - started))); }

{ nvidia-smi -L; "$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"; } \
  >>"$log" 2>&1
nproc >>"$log"

if [ -z "${SKIP_ML100K:-}" ]; then
  say "MovieLens-100k S3Rec (seed 42), alone"
  timeout $(($(left) / 3)) "$python" benchmarks/s3rec_ml100k.py --device "$device" --seeds 42 --threads 4 \
    --results "$out/s3rec_ml100k_$device.json" >>"$log" 2>&1 || say "S3Rec MovieLens-100k stopped: exit $?"
  say "MovieLens-100k LRML and BPR-MF, alone"
  timeout $(($(left) / 4)) "$python" benchmarks/lrml_ml100k.py --device "$device" --threads 4 \
    --results "$out/lrml_ml100k_$device.json" >>"$log" 2>&1 || say "LRML MovieLens-100k stopped: exit $?"
fi

# One seed: both settings without pretraining, then the pretraining, cut where 100 s are left for
# the two finetunings from it, and those.
lastfm() {
  local seed=$1 variant minutes cap=()
  [ -n "${FINETUNE_EPOCHS:-}" ] && cap=(--finetune-epochs "$FINETUNE_EPOCHS")
  for variant in none pretrained; do
    minutes=()
    [ -z "${UNCAPPED:-}" ] && minutes=(--pretrain-minutes "$(awk "BEGIN { print ($(left) - 100) / 60 }")")
    timeout $(($(left) > 20 ? $(left) - 15 : 5)) "$python" benchmarks/s3rec_paper.py --device "$device" --threads 4 \
      --data-dir "$data_dir" --datasets LastFM --seeds "$seed" --settings paper project --variants $variant \
      --parts s3rec --pretrain-rows prefixes --pretrain-epochs "${PRETRAIN_EPOCHS:-150}" "${minutes[@]}" \
      "${cap[@]}" --work "$work" --results "$work/report-seed$seed.json" || echo "stopped: exit $?"
  done
}
say "LastFM, seeds $seeds in parallel"
work=${WORK:-$(mktemp -d)}
mkdir -p "$work"
pids=()
for seed in $seeds; do
  lastfm "$seed" >"$out/lastfm_seed$seed.log" 2>&1 &
  pids+=($!)
done
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv -l 10 \
  >"$out/gpu_utilisation.csv" 2>/dev/null &
for pid in "${pids[@]}"; do wait "$pid" || say "a LastFM process stopped: exit $?"; done
tar -czf "$out/lastfm_work.tgz" -C "$work" --exclude 'report-*' . &&
  say "packed $(du -h "$out/lastfm_work.tgz" | cut -f1)"
say "done"
