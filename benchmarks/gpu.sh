#!/usr/bin/env bash
# Step cost and projection on one GPU, each part time-capped (under 8 minutes on one H100): run_all.sh --gpu.
#
#   pip install -e . && pip install -U "jax[cuda12]"    # a CUDA jax in this environment
#   bash benchmarks/gpu.sh                               # -> benchmarks/results/gpu-*.jsonl, REPORT.md, STEPS.md
exec bash "$(dirname "${BASH_SOURCE[0]}")/run_all.sh" --gpu "$@"
