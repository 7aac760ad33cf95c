# Sourced by run_all.sh and gpu.sh: sets PY to $PYTHON, else the first of python / python3 on PATH that can
# import jax and rosu_jax; exits 2 with a hint when there is none.
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for candidate in python python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c "import jax, rosu_jax" 2>/dev/null; then
      PY="$candidate"; break
    fi
  done
fi
if [[ -z "$PY" ]]; then
  echo "$(basename "$0"): no python with jax and rosu_jax found; set PYTHON=/path/to/python (pip install -e .)" >&2
  exit 2
fi
