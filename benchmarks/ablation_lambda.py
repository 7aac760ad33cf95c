"""Ablation of ROSU's amplification λ and radius ρ on digits (the evidence behind the default λ).

Runs ROSU and UAM+λ (the same step with the projection off) over a grid of (λ, ρ) on both scenarios of the digits
default, through the pipeline's grids (one original model and one Retrain for every point), and writes one record
per row (``ablation``): UA, RA, TA, MIA, Avg.Gap and the mean coupling. The table of the last full run, with its
reading, is ``results/ablation.md``.

  python -m benchmarks.ablation_lambda --out benchmarks/results/ablation.jsonl
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from benchmarks import common
from rosu_jax.runs import RunConfig
from rosu_jax.runs.pipeline import run_pipeline
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig

METHODS = ("ROSU", "UAM+λ")
GRIDS = ({"amplification": (0.0, 0.01, 0.02, 0.05, 0.1, 0.2), "rho": (0.5,)},  # λ at the default ρ
         {"amplification": (0.05,), "rho": (0.2, 1.0)})  # ρ at the default λ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/ablation.jsonl", help="JSONL file to append to")
    parser.add_argument("--quick", action="store_true", help="one point, 30 images per class, one epoch (smoke test)")
    parser.add_argument("--work-dir", help="checkpoints and cached rows (default: a temporary folder)")
    args = parser.parse_args(argv)
    task, grids = VisionConfig(), GRIDS
    if args.quick:
        task = VisionConfig(train=TrainingRecipe(epochs=1), unlearn_epochs=1, scenarios=("classwise",),
                            train_per_class=30)
        grids = ({"amplification": (0.05,), "rho": (0.5,)},)
    env = common.environment()
    with tempfile.TemporaryDirectory(prefix="rosu-ablation-") as tmp:
        for grid in grids:
            output = run_pipeline(RunConfig(task=task, methods=METHODS, grids=grid), work_dir=args.work_dir or tmp,
                                  progress=False)
            for row in (r for r in output.rows if r["method"] in METHODS):
                lam, rho = row["amplification"], row["rho"]
                common.write_jsonl(args.out, common.record(
                    "ablation", f"{row['scenario']}/{row['method']}/λ={lam}/ρ={rho}", env, scenario=row["scenario"],
                    method=row["method"], amplification=lam, rho=rho, lr=row["lr"],
                    **{k: row[k] for k in ("UA", "RA", "TA", "MIA", "avg_gap", "mean_coupling")}))
                common.progress(f"{row['scenario']}/{row['method']} λ={lam} ρ={rho}: UA {row['UA']:.1f} "
                                f"RA {row['RA']:.1f} TA {row['TA']:.1f} MIA {row['MIA']:.1f} gap {row['avg_gap']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
