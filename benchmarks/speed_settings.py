"""What each CPU speed setting gives the JAX UAM step against the PyTorch UAMs, measured side by side.

One ``python -m benchmarks.peer`` process per setting (XLA reads ``XLA_FLAGS`` once, at start-up): rosu_jax's UAM
and, in the same process pair, torchunlearn's UAM and the plain-PyTorch UAM (float32, 2 threads), timed in
interleaved blocks on the same model, weights and batches; the torch steps, identical in every setting, are the
control for drifts between settings. Settings: the compute dtype (bfloat16: parameters stay float32), XLA:CPU
options (oneDNN, XNNPACK/YNNPACK library calls, fast math, vector width, one thread), the batch size, and the step
data-parallel over two host devices (``data=2``: ``--xla_force_host_platform_device_count=2`` and the library's
``sharded_step``; the same maths). The peer's load
rule applies to each (wait for the 1-minute load to fall to the core count, else skip the setting: exit 3, said).
Records ``peer`` (``setting`` = the name) appended to ``--out``; a summary table is printed at the end.

  TORCH_PYTHON=torchenv/bin/python python -m benchmarks.speed_settings --out benchmarks/results/speed_settings.jsonl
  python -m benchmarks.speed_settings --list                   # the settings and their flags
  python -m benchmarks.speed_settings --only default,bf16      # a subset
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from benchmarks import common

# name -> (XLA_FLAGS, extra peer arguments)
SETTINGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "default": ("", ()),
    "bf16": ("", ("--dtype", "bfloat16")),
    "onednn": ("--xla_cpu_use_onednn=true", ()),
    "onednn+bf16": ("--xla_cpu_use_onednn=true", ("--dtype", "bfloat16")),
    "onednn-fusion": ("--xla_cpu_experimental_onednn_fusion_type=dot,eltwise,reduce", ()),
    "xnnpack": ("--xla_cpu_use_xnnpack=true", ()),
    "xnn-fusion": ("--xla_cpu_experimental_xnn_fusion_type=individual_convolution,individual_dot", ()),
    "xnn-fusion+bf16": ("--xla_cpu_experimental_xnn_fusion_type=individual_convolution,individual_dot",
                        ("--dtype", "bfloat16")),
    "ynn-fusion": ("--xla_cpu_experimental_ynn_fusion_type=individual_convolution,individual_dot", ()),
    "fast-math": ("--xla_cpu_enable_fast_math=true", ()),
    "vector-512": ("--xla_cpu_prefer_vector_width=512", ()),
    "one-thread": ("--xla_cpu_multi_thread_eigen=false", ()),
    "2-host-devices": ("--xla_force_host_platform_device_count=2", ()),
    "data=2": ("--xla_force_host_platform_device_count=2", ("--mesh", "data=2")),
    "data=2+bf16": ("--xla_force_host_platform_device_count=2", ("--mesh", "data=2", "--dtype", "bfloat16")),
    "batch-64": ("", ("--batch", "64")),
    "batch-256": ("", ("--batch", "256")),
}


def summary(path: Path, names: list[str]) -> list[str]:
    """A Markdown table, one row per setting and case (dataset, batch): JAX UAM, torchunlearn UAM and plain-PyTorch
    UAM steps/s and the paired ratios JAX / torch, each the median over the runs recorded (``runs``: how many), and
    the highest load average of any block."""
    rows: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in common.read_jsonl(path):
        if rec.get("benchmark") != "peer" or rec.get("setting") not in names:
            continue
        row = rows[rec["setting"], rec["dataset"], rec["batch"]]
        if rec["record"] == "case":
            row[rec["method"] if rec["framework"] == "torch" else "jax-" + rec["method"]].append(
                rec["steps_per_s_median"])
            row["load"].extend(x for x in rec.get("loadavg_1m_blocks") or [rec.get("loadavg_1m")] if x is not None)
        elif rec["record"] == "ratio":
            for key, name in (("ratio_tu", "jax_uam_over_torch_uam"), ("ratio_plain", "jax_uam_over_torch_plain_uam")):
                if rec.get(name) is not None:
                    row[key].append(rec[name])

    def cell(values: list[float], spec: str, reduce=statistics.median) -> str:
        return format(reduce(values), spec) if values else "-"

    lines = ["| setting | data | batch | JAX UAM steps/s | torchunlearn UAM | torch UAM | JAX / torchunlearn | "
             "JAX / torch | runs | max load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name in names:
        keys = sorted(k for k in rows if k[0] == name) or [(name, "-", "-")]
        for key in keys:
            r = rows.get(key, {})
            lines.append(f"| {name} | {key[1]} | {key[2]} | {cell(r.get('jax-UAM', []), '.2f')} | "
                         f"{cell(r.get('torchunlearn-UAM', []), '.2f')} | {cell(r.get('torch-UAM', []), '.2f')} | "
                         f"{cell(r.get('ratio_tu', []), '.3f')} | {cell(r.get('ratio_plain', []), '.3f')} | "
                         f"{len(r.get('jax-UAM', [])) or '-'} | {cell(r.get('load', []), '.2f', max)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/speed_settings.jsonl")
    parser.add_argument("--only", help="comma-separated settings (default: all; --list shows them)")
    parser.add_argument("--list", action="store_true", help="print the settings and exit")
    parser.add_argument("--datasets", default="cifar", help="peer datasets (digits, cifar)")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per method (the peer's --repeats)")
    parser.add_argument("--min-time", type=float, default=1.0, help="seconds per block (the peer's --min-time)")
    parser.add_argument("--settle", type=float, default=180.0, help="the peer's --settle")
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"))
    parser.add_argument("--quick", action="store_true", help="the peer's --quick, JAX half only (smoke test)")
    args = parser.parse_args(argv)
    if args.list:
        for name, (flags, extra) in SETTINGS.items():
            print(f"{name:16s} XLA_FLAGS={flags!r} {' '.join(extra)}")
        return 0
    names = args.only.split(",") if args.only else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; known: {', '.join(SETTINGS)}")
    refused = []
    for name in names:
        flags, extra = SETTINGS[name]
        argv_peer = [sys.executable, "-m", "benchmarks.peer", "--models", "small_cnn", "--datasets",
                     *args.datasets.split(","), "--jax-methods", "UAM", "--setting", name, "--out", args.out,
                     "--settle", str(args.settle), *extra]
        if args.quick:
            argv_peer += ["--quick", "--no-torch", "--min-time", "0.01"]
        else:
            argv_peer += ["--repeats", str(args.repeats), "--min-time", str(args.min_time)]
            argv_peer += ["--torch-python", args.torch_python] if args.torch_python else []
        env = {**os.environ, "XLA_FLAGS": flags}
        common.progress(f"== {name}: XLA_FLAGS={flags!r} {' '.join(extra)}")
        code = subprocess.run(argv_peer, env=env, cwd=common.REPO).returncode
        if code:
            common.progress(f"   {name}: the peer exited {code}" + (" (refused: loaded machine)" if code == 3 else ""))
            refused.append(name)
    if Path(args.out).exists():
        print("\n".join(summary(Path(args.out), names)))
    return 1 if refused and len(refused) == len(names) else 0


if __name__ == "__main__":
    sys.exit(main())
