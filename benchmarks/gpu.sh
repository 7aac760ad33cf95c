#!/usr/bin/env bash
# Step-cost and projection benchmarks on one GPU, in under 8 minutes on an H100 (each part has a time cap).
#
#   pip install -e . && pip install -U "jax[cuda12]"    # the user's job: a CUDA jax in this environment
#   bash benchmarks/gpu.sh                               # -> benchmarks/results/gpu-*.jsonl, REPORT.md, STEPS.md
#   bash benchmarks/gpu.sh --quick                       # smoke run (works on CPU too), into a temporary folder
#
# Uses nothing outside the repository but the installed package. Prints the device first; refuses to run the
# full sizes on a CPU backend unless ALLOW_CPU=1 (the numbers would not be GPU numbers).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# The interpreter: $PYTHON, else the first python on PATH that can import jax and rosu_jax.
source benchmarks/find_python.sh
OUT=benchmarks/results
QUICK=""
if [[ "${1:-}" == "--quick" ]]; then
  QUICK="--quick"
  OUT="$(mktemp -d -t rosu-gpu-bench-XXXXXX)"
fi
mkdir -p "$OUT"

BACKEND="$("$PY" -c 'import jax; print(jax.default_backend())')"
"$PY" -c "import jax; d = jax.devices()[0]; print('device:', d.device_kind, 'x', jax.device_count(), '| backend', jax.default_backend(), '| jax', jax.__version__)"
if [[ "$BACKEND" != "gpu" && "$BACKEND" != "cuda" && -z "$QUICK" && "${ALLOW_CPU:-0}" != "1" ]]; then
  echo "gpu.sh: JAX backend is '$BACKEND', not a GPU; install a CUDA jax, or set ALLOW_CPU=1" >&2
  exit 2
fi

capped() {  # capped SECONDS OUTFILE CMD... : run with a time cap; a timeout keeps what was written
  local cap="$1" out="$2"; shift 2
  rm -f "$out"
  echo "== $* (cap ${cap}s) -> $out"
  local t0=$SECONDS rc=0
  timeout --signal=INT "$cap" "$PY" "$@" $QUICK --out "$out" || rc=$?
  echo "== exit $rc after $((SECONDS - t0)) s"
}

# Budget (H100): projection ~2 min, step cost ~4 min (compiles included), reports < 30 s.
capped 150 "$OUT/gpu-projection.jsonl" benchmarks/projection.py
capped 270 "$OUT/gpu-step_cost.jsonl" benchmarks/step_cost.py --resnet-batch 128 --repeats 20 --warmup 5 \
  --min-time 2
"$PY" benchmarks/step_report.py --results "$OUT"
"$PY" benchmarks/report.py --results-dir "$OUT" --out "$OUT/REPORT.md"
echo "reports: $OUT/REPORT.md $OUT/STEPS.md"
