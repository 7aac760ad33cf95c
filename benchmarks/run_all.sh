#!/usr/bin/env bash
# The entry point of the benchmarks: runs them, then the report (REPORT.md, STEPS.md and their plots).
#
#   bash benchmarks/run_all.sh           # every CPU benchmark at full size (tens of minutes on 2 quiet cores)
#                                        #   -> benchmarks/results/*.jsonl, REPORT.md, STEPS.md, *.png
#   bash benchmarks/run_all.sh --quick   # smoke run of every benchmark into a temporary folder
#   bash benchmarks/run_all.sh --gpu     # step cost and projection on a GPU, each part time-capped (gpu.sh)
#                                        #   -> benchmarks/results/gpu-*.jsonl; --gpu --quick: a smoke run of those
#
# Environment: PYTHON (default: the first python that imports jax and rosu_jax), SKIP="ablation peer ..." (names:
# projection projection_scaling step_cost scaling e2e ablation peer), CIFAR_DIR (the CIFAR-10 JPEG folder of the
# end-to-end run), TORCH_PYTHON (the peer's torch environment: without it the full run skips the peer, whose
# committed records it would otherwise replace by the JAX half alone), ALLOW_CPU=1 (--gpu on a CPU backend).
# --quick runs the peer's JAX half with --allow-loaded: a smoke run must not fail on a busy machine.
# Each benchmark's JSONL file is replaced; a failing benchmark is reported and the others still run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-}"
for candidate in python python3; do
  [[ -z "$PY" ]] && "$candidate" -c "import jax, rosu_jax" 2>/dev/null && PY="$candidate"
done
[[ -n "$PY" ]] || { echo "run_all.sh: no python with jax and rosu_jax; set PYTHON (pip install -e .)" >&2; exit 2; }
GPU=0
QUICK=()
PEER=()
OUT=benchmarks/results
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    --quick) QUICK=(--quick); PEER=(--allow-loaded); OUT="$(mktemp -d -t rosu-bench-XXXXXX)" ;;  # a smoke run
    *) echo "run_all.sh: unknown argument $arg (use --quick and/or --gpu)" >&2; exit 2 ;;
  esac
done
FAILED=()

run() {  # run NAME OUTFILE [CAP_SECONDS] -- ARGS...: python -m benchmarks.ARGS..., replacing OUTFILE
  local name="$1" out="$2" cap=0
  shift 2
  [[ "$1" != "--" ]] && { cap="$1"; shift; }
  shift
  if [[ " ${SKIP:-} " == *" $name "* ]]; then echo "== skip $name"; return; fi
  echo "== $name -> $out"
  rm -f "$out"
  local t0=$SECONDS rc=0
  if ((cap)); then  # a capped part keeps what it wrote before the cap
    timeout --signal=INT "$cap" "$PY" -m "benchmarks.$@" "${QUICK[@]}" --out "$out" || rc=$?
  else
    "$PY" -m "benchmarks.$@" "${QUICK[@]}" --out "$out" || rc=$?
  fi
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  ((rc == 0)) || FAILED+=("$name")
}

"$PY" -c "import jax; print('device:', jax.devices()[0].device_kind, 'x', jax.device_count(), '| jax', jax.__version__)"
if ((GPU)); then  # budget on one H100: projection ~2 min, step cost ~4 min (compiles included)
  BACKEND="$("$PY" -c 'import jax; print(jax.default_backend())')"
  if [[ "$BACKEND" != "gpu" && "${ALLOW_CPU:-0}" != "1" && -z "${QUICK[*]}" ]]; then
    echo "run_all.sh --gpu: the JAX backend is '$BACKEND'; install a CUDA jax, or set ALLOW_CPU=1" >&2
    exit 2
  fi
  run projection "$OUT/gpu-projection.jsonl" 150 -- projection
  run step_cost "$OUT/gpu-step_cost.jsonl" 270 -- step_cost --resnet-batch 128 --repeats 20 --warmup 5 --min-time 2
else
  run projection "$OUT/projection.jsonl" -- projection
  run projection_scaling "$OUT/projection_scaling.jsonl" -- projection --scaling
  run step_cost "$OUT/step_cost.jsonl" -- step_cost --resnet-repeats 3 --resnet-warmup 1
  run scaling "$OUT/scaling.jsonl" -- scaling
  run e2e "$OUT/end_to_end.jsonl" -- end_to_end
  run ablation "$OUT/ablation.jsonl" -- ablation_lambda
  if [[ -n "${TORCH_PYTHON:-}" || -n "${QUICK[*]}" ]]; then
    run peer "$OUT/peer.jsonl" -- peer "${PEER[@]}"
  else
    echo "== skip peer: set TORCH_PYTHON to the torch environment's python (python -m benchmarks.peer --help)"
  fi
fi
"$PY" -m benchmarks.report --results "$OUT"
if ((${#FAILED[@]})); then
  echo "failed: ${FAILED[*]}" >&2
  exit 1
fi
