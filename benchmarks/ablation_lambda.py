"""Ablation of ROSU's amplification λ and radius ρ on digits (the evidence behind the default λ): ROSU and UAM+λ (the
projection off) over a (λ, ρ) grid, both scenarios, over seeds, through the pipeline's grids; one ``ablation`` record
per row, then ``ablation.md`` beside them (mean ± std over seeds, paired 95% interval of ROSU − UAM+λ).

  python -m benchmarks.ablation_lambda --seeds 0,1,2,3,4 --out benchmarks/results/ablation.jsonl
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import common
from rosu_jax.runs import RunConfig
from rosu_jax.runs.pipeline import run_pipeline
from rosu_jax.runs.stats import mean_std, paired_interval
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig

METHODS = ("ROSU", "UAM+λ")
FIELDS = ("scenario", "method", "amplification", "rho", "lr", "seed", "status", "UA", "RA", "TA", "MIA", "avg_gap",
          "mean_coupling")  # of a pipeline row, in each record
METRICS = ("UA", "RA", "TA", "MIA")
GRIDS = (
    {"amplification": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2), "rho": (0.5,)},  # λ at the default ρ
    {"amplification": (0.05,), "rho": (0.2, 1.0)},
)  # ρ at the default λ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/ablation.jsonl", help="JSONL file to append to")
    parser.add_argument("--quick", action="store_true", help="one point, 30 images per class, one epoch (smoke test)")
    parser.add_argument("--work-dir", help="checkpoints and cached rows (default: a temporary folder)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (default 0..4)")
    args = parser.parse_args(argv)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    task = VisionConfig(train=TrainingRecipe(epochs=1), unlearn_epochs=1, scenarios=("classwise",),
                        train_per_class=30) if args.quick else VisionConfig()
    grids = ({"amplification": (0.05,), "rho": (0.5,)},) if args.quick else GRIDS
    env = common.environment()
    with tempfile.TemporaryDirectory(prefix="rosu-ablation-") as tmp:
        for grid in grids:
            output = run_pipeline(RunConfig(task=task, methods=METHODS, grids=grid, seeds=seeds),
                                  work_dir=args.work_dir or tmp, progress=False)
            for row in (r for r in output.rows if r["method"] in METHODS):
                name, lam, rho = f"{row['scenario']}/{row['method']}", row["amplification"], row["rho"]
                case = f"{name}/λ={lam}/ρ={rho}/seed{row['seed']}"
                common.write_jsonl(args.out, common.record("ablation", case, env, **{k: row[k] for k in FIELDS}))
                common.progress(f"{name} λ={lam} ρ={rho}: " + " ".join(f"{k} {row[k]:.1f}" for k in METRICS)
                                + f" gap {row['avg_gap']:.2f}")
    command = " ".join(["python -m benchmarks.ablation_lambda", *(argv or sys.argv[1:])])
    Path(args.out).with_suffix(".md").write_text(summary(common.read_jsonl(args.out), command))
    return 0


def summary(records: list[dict], command: str) -> str:
    """Per scenario and (λ, ρ): ROSU's and UAM+λ's Avg.Gap, mean ± std over seeds, and ROSU − UAM+λ paired."""
    seeds = sorted({r["seed"] for r in records})
    lines = [f"# Ablation of λ and ρ (digits, small CNN, lr 0.1, 5 unlearning epochs, seeds {seeds})", "",
             f"Command: `{command}`. Avg.Gap mean ± std over the seeds whose model is ok; Δ = ROSU − UAM+λ paired "
             "over seeds with its 95% t-interval (negative: ROSU closer to Retrain).", "",
             "| scenario | λ | ρ | ROSU Avg.Gap | UAM+λ Avg.Gap | Δ [95% CI] | ROSU UA/RA/TA/MIA |",
             "|---|---|---|---|---|---|---|"]
    points = sorted({(r["scenario"], r["amplification"], r["rho"]) for r in records})
    for scenario, lam, rho in points:
        rosu, uam = ({r["seed"]: r for r in records if r["status"] == "ok"
                      and (r["scenario"], r["amplification"], r["rho"], r["method"]) == (scenario, lam, rho, m)}
                     for m in METHODS)
        both = sorted(set(rosu) & set(uam))
        interval = paired_interval([rosu[s]["avg_gap"] - uam[s]["avg_gap"] for s in both])
        delta = "–" if interval is None else f"{interval[0]:+.2f} [{interval[1]:+.2f}, {interval[2]:+.2f}]"
        metrics = "/".join(f"{np.mean([r[k] for r in rosu.values()]):.1f}" for k in METRICS) if rosu else "–"
        lines.append(f"| {scenario} | {lam:g} | {rho:g} | {_ms([r['avg_gap'] for r in rosu.values()])} | "
                     f"{_ms([r['avg_gap'] for r in uam.values()])} | {delta} | {metrics} |")
    return "\n".join(lines) + "\n"


def _ms(values: list[float]) -> str:
    return "{:.2f} ± {:.2f}".format(*mean_std(values)) if values else "–"


if __name__ == "__main__":
    sys.exit(main())
