#!/usr/bin/env bash
# The entry point of the benchmarks: runs them, then the report (results/REPORT.md, STEPS.md and their plots).
#
#   bash benchmarks/run_all.sh           # every CPU benchmark at full size -> benchmarks/results/ (tens of minutes)
#   bash benchmarks/run_all.sh --quick   # smoke run of every benchmark into a temporary folder
#   bash benchmarks/run_all.sh --gpu     # projection, step cost, LM steps on a GPU, time-capped -> results/gpu-*.jsonl
#   SKIP="projection step_cost gpu_vision" bash benchmarks/run_all.sh --gpu   # the LM steps: one 10-minute call
#   SKIP="projection step_cost lm_steps" bash benchmarks/run_all.sh --gpu     # the vision rows: another
#
# Environment: PYTHON; SKIP="ablation peer ..." (projection projection_scaling step_cost scaling e2e ablation peer
# lm_steps);
# CIFAR_DIR (the end-to-end CIFAR-10 images); TORCH_PYTHON (the peer's torch environment: without it a full run skips
# the peer rather than replace its records by the JAX half alone); ALLOW_CPU=1 (--gpu on a CPU backend).
# Each benchmark's JSONL file is replaced; a failing benchmark is reported and the others still run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY="${PYTHON:-$(command -v python || command -v python3)}"
"$PY" -c "import jax, rosu_jax" || { echo "run_all.sh: $PY cannot import jax and rosu_jax; set PYTHON" >&2; exit 2; }
GPU=0 QUICK=() PEER=() OUT=benchmarks/results FAILED=()
for arg in "$@"; do
  case "$arg" in
    --gpu) GPU=1 ;;
    # a smoke run must not fail on a busy machine: the peer runs with --allow-loaded (its records are marked)
    --quick) QUICK=(--quick) PEER=(--allow-loaded) OUT="$(mktemp -d -t rosu-bench-XXXXXX)" ;;
    *) echo "run_all.sh: unknown argument $arg (use --quick and/or --gpu)" >&2; exit 2 ;;
  esac
done

run() {  # run NAME OUTFILE CAP_SECONDS ARGS...: python -m benchmarks.ARGS... --out OUTFILE (CAP 0: no time cap)
  local name="$1" out="$2" cap="$3" rc=0 t0=$SECONDS
  shift 3
  if [[ " ${SKIP:-} " == *" $name "* ]]; then echo "== skip $name"; return; fi
  echo "== $name -> $out"
  rm -f "$out"
  timeout --signal=INT "$cap" "$PY" -m "benchmarks.$1" "${@:2}" "${QUICK[@]}" --out "$out" || rc=$?
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  ((rc == 0)) || FAILED+=("$name")
}

"$PY" -c "import jax; print('device:', jax.devices()[0].device_kind, 'x', jax.device_count(), '| jax', jax.__version__)"
if ((GPU)); then  # on one H100: projection ~2 min, step cost ~4 min, compiles included; a capped part keeps its lines
  BACKEND="$("$PY" -c 'import jax; print(jax.default_backend())')"
  if [[ "$BACKEND" != "gpu" && "${ALLOW_CPU:-0}" != "1" && -z "${QUICK[*]}" ]]; then
    echo "run_all.sh --gpu: the JAX backend is '$BACKEND'; install a CUDA jax, or set ALLOW_CPU=1" >&2
    exit 2
  fi
  run projection "$OUT/gpu-projection.jsonl" 150 projection
  run step_cost "$OUT/gpu-step_cost.jsonl" 270 step_cost --resnet-batch 128 --resnet-repeats 20 --resnet-warmup 5 \
    --repeats 20 --warmup 5 --min-time 2
  # Llama-3.2-1B shape: it starts nothing after its 480-s budget; the cap keeps the groups already written
  LM_CPU=()
  if [[ "${ALLOW_CPU:-0}" == "1" ]]; then LM_CPU=(--allow-cpu); fi
  run lm_steps "$OUT/gpu-lm_steps.jsonl" 570 lm_steps "${LM_CPU[@]}"
  run gpu_vision "$OUT/gpu-vision.jsonl" 570 gpu_vision "${LM_CPU[@]}"
else
  run projection "$OUT/projection.jsonl" 0 projection
  run projection_scaling "$OUT/projection_scaling.jsonl" 0 projection --scaling
  run step_cost "$OUT/step_cost.jsonl" 0 step_cost
  run scaling "$OUT/scaling.jsonl" 0 scaling
  run e2e "$OUT/end_to_end.jsonl" 0 end_to_end
  run ablation "$OUT/ablation.jsonl" 0 ablation_lambda
  if [[ -z "${QUICK[*]}" ]]; then  # its own folder (records, STUDY.md, plots); CIFAR-10 when a folder is found
    echo "== coupling study -> $OUT/coupling_study"
    "$PY" -m benchmarks.coupling_study --settings digits,cifar10 --out "$OUT/coupling_study" || FAILED+=(coupling)
  fi
  if [[ -n "${TORCH_PYTHON:-}${QUICK[*]}" ]]; then
    run peer "$OUT/peer.jsonl" 0 peer "${PEER[@]}"
  else
    echo "== skip peer: set TORCH_PYTHON to the torch environment's python (python -m benchmarks.peer --help)"
  fi
  if [[ -n "${QUICK[*]}" ]]; then  # the tiny decoder; the full size is a GPU benchmark (--gpu)
    run lm_steps "$OUT/lm_steps.jsonl" 0 lm_steps
    run gpu_vision "$OUT/gpu-vision.jsonl" 0 gpu_vision
  else
    echo "== skip lm_steps: a GPU benchmark (run_all.sh --gpu)"
  fi
fi
"$PY" -m benchmarks.report --results "$OUT"
((${#FAILED[@]} == 0)) || { echo "failed: ${FAILED[*]}" >&2; exit 1; }
