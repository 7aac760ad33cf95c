#!/usr/bin/env bash
# Every CPU benchmark at full size, then the reports: one command produces benchmarks/results/REPORT.md
# (report.py, all benchmark kinds) and benchmarks/results/STEPS.md (step_report.py, the step benchmarks).
#
#   bash benchmarks/run_all.sh                 # full run (tens of minutes on 2 quiet CPU cores)
#   bash benchmarks/run_all.sh --quick         # smoke run of every script into a temporary folder
#   SKIP="ablation e2e" bash benchmarks/run_all.sh    # skip some: projection scaling step_cost step_scaling e2e
#                                                      # ablation peer
#   PYTHON=/path/to/python bash benchmarks/run_all.sh
#
# Each benchmark's JSONL file is replaced (not appended to). Records carry the device, versions and the 1-min
# load average; ratios are measured within one run. Speed is reported, never asserted.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The interpreter: $PYTHON, else the first python on PATH that can import jax and rosu_jax.
source benchmarks/find_python.sh
SKIP="${SKIP:-}"
QUICK=""
OUT=benchmarks/results
if [[ "${1:-}" == "--quick" ]]; then
  QUICK="--quick"
  OUT="$(mktemp -d -t rosu-bench-XXXXXX)"
fi
# CIFAR-10 end-to-end run (experiments/cifar10_folder_small_cnn.py, shortened to fit ~15 minutes on 2 cores).
CIFAR_DIR="${CIFAR_DIR:-/work/shared/data/cifar10-jpeg}"
E2E_ARGS="${E2E_ARGS:---data-dir $CIFAR_DIR --epochs 2 --unlearn-epochs 1 --methods FT,UAM,ROSU --scenario classwise --train-per-class 1000 --test-per-class 300}"

skip() { [[ " $SKIP " == *" $1 "* ]]; }
run() {  # run NAME OUTFILE CMD...
  local name="$1" out="$2"; shift 2
  if skip "$name"; then echo "== skip $name"; return; fi
  echo "== $name -> $out"
  rm -f "$out"
  local t0=$SECONDS
  if "$PY" "$@" $QUICK --out "$out"; then
    echo "== $name done in $((SECONDS - t0)) s"
  else
    echo "== $name FAILED (exit $?) after $((SECONDS - t0)) s; continuing"
    FAILED+=("$name")
  fi
}
FAILED=()

mkdir -p "$OUT"
"$PY" -c "import jax; print('device:', jax.devices()[0].device_kind, 'x', jax.device_count(), '| jax', jax.__version__)"
run projection   "$OUT/projection.jsonl"          benchmarks/projection.py
run scaling      "$OUT/projection_scaling.jsonl"  benchmarks/projection.py --scaling
run step_cost    "$OUT/step_cost.jsonl"           benchmarks/step_cost.py --resnet-repeats 3 --resnet-warmup 1
run step_scaling "$OUT/scaling.jsonl"             benchmarks/scaling.py
if [[ -n "$QUICK" ]]; then
  run e2e        "$OUT/end_to_end.jsonl"          benchmarks/end_to_end.py
else
  # shellcheck disable=SC2086  # E2E_ARGS is a word list on purpose
  run e2e        "$OUT/end_to_end.jsonl"          benchmarks/end_to_end.py $E2E_ARGS
fi
run ablation     "$OUT/ablation.jsonl"            benchmarks/ablation_lambda.py
if [[ -f benchmarks/peer_torchunlearn.py ]]; then
  run peer       "$OUT/peer_torchunlearn.jsonl"   benchmarks/peer_torchunlearn.py
fi

"$PY" benchmarks/step_report.py --results "$OUT"
"$PY" benchmarks/report.py --results-dir "$OUT" --out "$OUT/REPORT.md"
echo "reports: $OUT/REPORT.md $OUT/STEPS.md"
if ((${#FAILED[@]})); then
  echo "failed: ${FAILED[*]}" >&2
  exit 1
fi
