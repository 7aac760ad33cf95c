"""Ablation of ROSU's amplification λ and radius ρ on digits (the evidence behind the default λ).

For every (λ, ρ) it runs ROSU and "UAM+λ" (the same step with the projection off) on both scenarios of the
embedded digits demo, from the same original model and against the same Retrain, and writes one JSON line per
run (benchmark='ablation') with UA, RA, TA, MIA, Avg.Gap and the mean coupling.

    python benchmarks/ablation_lambda.py --out benchmarks/results/ablation.jsonl
    python benchmarks/ablation_lambda.py --quick --out /tmp/ablation.jsonl     # smoke run
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import environment, progress, write_jsonl  # noqa: E402

from rosu_jax.runs.config import TrainRecipe, default_config  # noqa: E402
from rosu_jax.runs.pipeline import run_pipeline  # noqa: E402

LAMBDAS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2)
RHOS = (0.2, 0.5, 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSONL file to append to")
    parser.add_argument("--quick", action="store_true", help="tiny grid, 2 training epochs (smoke test)")
    parser.add_argument("--work-dir", help="checkpoints and cached rows (default: a temporary directory)")
    args = parser.parse_args(argv)

    base = default_config().replace(methods=("ROSU", "UAM+λ"))
    grid = [(lam, 0.5) for lam in LAMBDAS] + [(0.05, rho) for rho in RHOS if rho != 0.5]
    if args.quick:
        base = base.replace(train=TrainRecipe(epochs=2), unlearn_epochs=1, scenarios=("classwise",))
        grid = [(0.0, 0.5), (0.05, 0.5)]
    env = environment()
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = args.work_dir or tmp
        for lam, rho in grid:
            configs = tuple(
                (name, base.method_config(name).replace(amplification=lam, rho=rho)) for name in base.methods
            )
            output = run_pipeline(base.replace(method_configs=configs), work_dir=work_dir, progress=False)
            for row in output.rows:
                if row["method"] in base.methods:
                    record = {"benchmark": "ablation", "case": f"{row['scenario']}/{row['method']}/λ={lam}/ρ={rho}",
                              "scenario": row["scenario"], "method": row["method"], "amplification": lam, "rho": rho,
                              "lr": row["lr"], **{k: row[k] for k in ("UA", "RA", "TA", "MIA", "avg_gap")},
                              "mean_coupling": row.get("mean_coupling"), **env}
                    write_jsonl(args.out, record)
                    progress(f"{record['case']}: UA {row['UA']:.1f} RA {row['RA']:.1f} TA {row['TA']:.1f} "
                             f"MIA {row['MIA']:.1f} gap {row['avg_gap']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
