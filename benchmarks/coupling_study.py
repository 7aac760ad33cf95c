"""Where should ROSU win? ROSU, UAM and UAM+λ side by side across settings of low and high coupling.

For each setting (digits; digits with the original model trained for 3 epochs, an under-fitted model of high |κ|;
CIFAR-10 from an image folder; each class-wise and random forgetting) and each seed, the
project's own pipeline runs the three methods at equal ρ (and equal λ for ROSU and UAM+λ) with the measured
surrogate retain increase L_r(θ+δ) − L_r(θ) at every step, and the coupling diagnosis measures κ at the original
weights with the forget loss normalised by the running BatchNorm statistics (the project's choice) and by the forget
batch's own statistics (what a plain training-mode measurement does). Records (``coupling_study``) per setting,
seed and method: the final metrics, the mean κ along the run, the mean surrogate increase; then ``STUDY.md`` (mean ±
std over seeds, paired 95% intervals of the Avg.Gap differences, reported as found) and two plots.

CIFAR-10: the fast residual network (``presets.fast_resnet_task``, >= 80% test accuracy) trained once
(``model_seed`` 0: one original model, one split and one Retrain per scenario, so the seeds vary only the unlearning
runs' batch order), data-parallel over two host CPU devices, each unlearning run capped at ``--unlearn-steps``
steps of 256 (a CPU budget; the protocol's runs are 10 epochs).

  python -m benchmarks.coupling_study --out benchmarks/results/coupling_study            # digits, 5 seeds
  python -m benchmarks.coupling_study --settings digits,cifar10 --data-dir DIR --out ...  # and a CIFAR-10 folder
  python -m benchmarks.coupling_study --settings digits-underfit --out ...                 # the high-|κ| regime
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

import jax
import numpy as np

from benchmarks import common
from rosu_jax.runs import RunConfig
from rosu_jax.runs.diagnose import diagnose
from rosu_jax.runs.pipeline import run_pipeline
from rosu_jax.runs.stats import mean_std, paired_interval
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig

METHODS = ("UAM", "UAM+λ", "ROSU")
REFERENCES = ("Retrain", "Original")
CIFAR_UNLEARN_STEPS = 60
DEFAULT_EPOCHS = TrainingRecipe().epochs  # the default job's training
UNDERFIT_EPOCHS = 3


@dataclasses.dataclass(frozen=True)
class Study:
    task: VisionConfig
    mesh: str | None = None
    note: str = ""


RHO, AMPLIFICATION = 0.5, 0.05


def settings(names: list[str], data_dir: str | None, quick: bool, unlearn_steps: int) -> dict[str, Study]:
    """The study's settings by name ('digits', 'digits-underfit', 'cifar10'), each with both scenarios."""
    out = {}
    if "digits" in names:
        out["digits"] = Study(
            _quick_digits(epochs=2) if quick else VisionConfig(),
            note="the default job: every seed trains its own original model and Retrain on its own split.",
        )
    if "digits-underfit" in names:  # fewer training epochs: the regime of high |κ| (see SWEEP.md)
        out["digits-underfit"] = Study(
            _quick_digits(epochs=1) if quick else VisionConfig(train=TrainingRecipe(epochs=UNDERFIT_EPOCHS)),
            note=f"the default job with the original model and Retrain trained for {UNDERFIT_EPOCHS} epoch(s) "
            f"instead of {DEFAULT_EPOCHS}: an under-fitted model, whose forget and retain gradients share the "
            "direction 'fit the data better' (random forgetting) or oppose each other (class-wise).",
        )
    if "cifar10" in names:
        folder = common.cifar10_dir(data_dir)
        if folder is None:
            common.progress("cifar10: no folder of CIFAR-10 images (--data-dir or CIFAR_DIR); skipped")
        else:
            from rosu_jax.tasks.vision.presets import fast_resnet_task

            task = dataclasses.replace(
                fast_resnet_task("folder", data_dir=str(folder)), model_seed=0, unlearn_steps=unlearn_steps
            )
            if quick:
                task = dataclasses.replace(task, train_per_class=20, train=TrainingRecipe(epochs=1))
            out["cifar10"] = Study(
                task,
                mesh="data=2" if jax.device_count() >= 2 and not quick else None,
                note=f"the fast residual network, one original model and one Retrain per scenario (model seed 0; "
                f"the seeds vary the unlearning batches), {task.unlearn_steps} unlearning steps of "
                f"{task.unlearn_batch_size} per run.",
            )
    return out


def _quick_digits(epochs: int) -> VisionConfig:
    """The digits job at smoke-test size."""
    return VisionConfig(train=TrainingRecipe(epochs=epochs), unlearn_epochs=1, train_per_class=40)


def run_setting(name: str, study: Study, seeds: tuple[int, ...], work_dir: str, env: dict, out: Path):
    task = study.task
    config = RunConfig(
        task=task,
        mesh=study.mesh,
        methods=METHODS,
        seeds=seeds,
        overrides={
            "*": {"rho": RHO, "measure_surrogate": True},
            "UAM+λ": {"amplification": AMPLIFICATION},
            "ROSU": {"amplification": AMPLIFICATION},
        },
    )
    output = run_pipeline(config, work_dir=work_dir, progress=False, log=common.progress)
    at_original = {}
    for mode in ("running", "batch"):  # κ at the original weights, forget loss in both BatchNorm modes
        report = diagnose(
            dataclasses.replace(config, task=dataclasses.replace(task, forget_batchnorm=mode)),
            batches=10,
            rho=RHO,
            work_dir=work_dir,
            progress=False,
        )
        at_original[mode] = {s: v["coupling"] for s, v in report["scenarios"].items()}
    records = []
    for row in output.rows:
        if row["method"] not in METHODS + REFERENCES:
            continue
        history = output.histories.get(f"{row['scenario']}/{row['seed']}/{row['method']}/{row.get('variant')}", {})
        increase = [v for v in history.get("surrogate_retain_increase", []) if v is not None]
        kappa = [v for v in history.get("coupling", []) if v is not None]
        rec = common.record(
            "coupling_study",
            f"{name}/{row['scenario']}/{row['method']}/seed{row['seed']}",
            env,
            setting=name,
            note=study.note,
            mesh=study.mesh,
            scenario=row["scenario"],
            method=row["method"],
            seed=row["seed"],
            status=row["status"],
            **{k: row.get(k) for k in ("UA", "RA", "TA", "MIA", "avg_gap", "seconds")},
            mean_coupling=float(np.mean(kappa)) if kappa else None,
            mean_surrogate_increase=float(np.mean(increase)) if increase else None,
            coupling_at_original_running=at_original["running"][row["scenario"]],
            coupling_at_original_batch=at_original["batch"][row["scenario"]],
            step_coupling=history.get("coupling"),
            step_surrogate_increase=history.get("surrogate_retain_increase"),
            step_index=history.get("probe_step"),
        )
        common.write_jsonl(out / "records.jsonl", rec)
        records.append(rec)
    return records


def summarize(records: list[dict]) -> str:
    """STUDY.md: per setting and scenario, each method's mean ± std, κ, surrogate increase, and the paired
    differences of Avg.Gap (ROSU − UAM, ROSU − UAM+λ) with 95% intervals."""
    lines = [
        "# Coupling study: ROSU vs UAM vs UAM+λ",
        "",
        f"ρ = {RHO}, λ = {AMPLIFICATION} (UAM: λ = 0 as published); every number is a mean ± std over seeds; "
        "Δ = ROSU − other, paired over seeds, 95% t-interval (negative: ROSU closer to Retrain). What moves κ at the "
        "original model (fit, batch size, BatchNorm mode): `SWEEP.md` (`--kappa-sweep`).",
        "",
    ]
    cases = sorted({(r["setting"], r["scenario"]) for r in records})
    for setting, scenario in cases:
        case = [r for r in records if (r["setting"], r["scenario"]) == (setting, scenario)]
        rows = [r for r in case if r["status"] == "ok"]
        first = rows[0] if rows else {}
        lines += [
            f"## {setting} — {scenario}",
            "",
            f"Setting: {case[0].get('note', '')}",
            "",
            f"κ at the original weights (10 batch pairs): forget loss with running BatchNorm statistics "
            f"{first.get('coupling_at_original_running', float('nan')):+.3f}, with the forget batch's own "
            f"statistics {first.get('coupling_at_original_batch', float('nan')):+.3f}.",
            "",
            "| method | UA | RA | TA | MIA | Avg.Gap | mean κ (run) | surrogate increase | ROSU − method [95% CI] |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        by_method = {m: {r["seed"]: r for r in rows if r["method"] == m} for m in METHODS + REFERENCES}
        for method in REFERENCES + METHODS:
            runs = list(by_method[method].values())
            failed = [f"seed {r['seed']} {r['status']}" for r in case if r["method"] == method and r["status"] != "ok"]
            if failed:  # a collapsed or diverged run is not a result: named, and left out of the statistics
                lines.append(f"| {method} ({', '.join(failed)}) | | | | | | | | |")
            if not runs:
                lines.append(f"| {method} | no ok run | | | | | | | |")
                continue
            if method in REFERENCES:
                cells = [_ms([r[k] for r in runs]) for k in ("UA", "RA", "TA", "MIA", "avg_gap")]
                lines.append(f"| {method} | " + " | ".join(cells) + " | | | |")
                continue
            cells = [_ms([r[k] for r in runs]) for k in ("UA", "RA", "TA", "MIA", "avg_gap", "mean_coupling")]
            cells.append(_ms([r["mean_surrogate_increase"] for r in runs], ".3g"))
            rosu = by_method["ROSU"]
            seeds = sorted(set(rosu) & set(by_method[method]))
            interval = paired_interval([rosu[s]["avg_gap"] - by_method[method][s]["avg_gap"] for s in seeds])
            cells.append(
                ""
                if method == "ROSU" or interval is None
                else f"{interval[0]:+.2f} [{interval[1]:+.2f}, {interval[2]:+.2f}]"
            )
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


def _ms(values, fmt: str = ".2f") -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean, std = mean_std(values)
    return f"{mean:{fmt}} ± {std:{fmt.lstrip('+')}}"


def plot(records: list[dict], out: Path) -> None:
    """surrogate_vs_coupling.png (per-step surrogate increase against κ, ROSU and UAM) and gap_vs_coupling.png
    (per seed: ROSU − UAM and ROSU − UAM+λ final Avg.Gap against ROSU's mean κ)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, marker in (("ROSU", "o"), ("UAM", "x"), ("UAM+λ", "+")):
        xs, ys = [], []
        for r in records:
            if r["method"] != method or not r.get("step_surrogate_increase") or not r.get("step_coupling"):
                continue
            steps = r["step_index"] or range(len(r["step_coupling"]))
            for step, kappa in zip(steps, r["step_coupling"], strict=False):
                increase = r["step_surrogate_increase"][step]
                if kappa is not None and increase is not None:
                    xs.append(kappa)
                    ys.append(increase)
        ax.scatter(xs, ys, s=6, marker=marker, alpha=0.5, label=method)
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("κ = cos(g_f, g_r) at the step")
    ax.set_ylabel("L_r(θ+δ) − L_r(θ)")
    ax.set_title("surrogate retain increase against coupling")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "surrogate_vs_coupling.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for other, marker in (("UAM", "x"), ("UAM+λ", "+")):
        xs, ys = [], []
        for r in records:
            if r["method"] != "ROSU" or r["status"] != "ok":
                continue
            twin = next(
                (
                    t
                    for t in records
                    if t["method"] == other
                    and t["seed"] == r["seed"]
                    and (t["setting"], t["scenario"]) == (r["setting"], r["scenario"])
                    and t["status"] == "ok"
                ),
                None,
            )
            if twin is not None and r["mean_coupling"] is not None:
                xs.append(r["mean_coupling"])
                ys.append(r["avg_gap"] - twin["avg_gap"])
        ax.scatter(xs, ys, marker=marker, label=f"ROSU − {other}")
    ax.axhline(0, color="k", lw=0.5)
    ax.set_xlabel("mean κ along ROSU's run")
    ax.set_ylabel("Δ Avg.Gap (negative: ROSU closer to Retrain)")
    ax.set_title("final Avg.Gap difference against coupling (one point per setting and seed)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "gap_vs_coupling.png", dpi=110)
    plt.close(fig)


SWEEP_EPOCHS = (1, UNDERFIT_EPOCHS, DEFAULT_EPOCHS)
SWEEP_BATCHES = (16, 64, 256, 1024)


def coupling_sweep(seeds: tuple[int, ...], work_dir: str, env: dict, out: Path, quick: bool) -> list[dict]:
    """κ at the original digits model across the three things that move it: how well the model is fitted (training
    epochs), the batch size of the forget and retain gradients, and the forget loss's BatchNorm mode. One record per
    (epochs, batch, mode, scenario, seed), then ``SWEEP.md`` and ``kappa_sweep.png``."""
    epochs_grid, batch_grid = ((1, 2), (16, 64)) if quick else (SWEEP_EPOCHS, SWEEP_BATCHES)
    records = []
    for epochs in epochs_grid:
        for batch in batch_grid:
            for mode in ("running", "batch"):
                for seed in seeds:
                    task = VisionConfig(
                        train=TrainingRecipe(epochs=epochs),
                        unlearn_batch_size=batch,
                        forget_batchnorm=mode,
                        **({"train_per_class": 40} if quick else {}),
                    )
                    report = diagnose(
                        RunConfig(task=task, seeds=(seed,)), batches=10, rho=RHO, work_dir=work_dir, progress=False
                    )
                    for scenario, summary in report["scenarios"].items():
                        rec = common.record(
                            "coupling_sweep",
                            f"digits/e{epochs}/b{batch}/{mode}/{scenario}/seed{seed}",
                            env,
                            epochs=epochs,
                            batch_size=batch,
                            forget_batchnorm=mode,
                            scenario=scenario,
                            seed=seed,
                            coupling=summary["coupling"],
                        )
                        common.write_jsonl(out / "sweep.jsonl", rec)
                        records.append(rec)
                common.progress(f"sweep: {epochs} epoch(s), batch {batch}, {mode} statistics done")
    (out / "SWEEP.md").write_text(summarize_sweep(records))
    plot_sweep(records, out)
    return records


def summarize_sweep(records: list[dict]) -> str:
    """SWEEP.md: mean ± std over seeds of κ at the original model, per fit level, batch size and BatchNorm mode."""
    scenarios = sorted({r["scenario"] for r in records})
    lines = [
        "# κ at the original model: fit, batch size and BatchNorm mode (digits)",
        "",
        "κ = cos(g_f, g_r) of the forget and retain gradients at the original model, averaged over up to 10 batch "
        f"pairs; mean ± std over seeds {sorted({r['seed'] for r in records})} (each seed its own original model and "
        f"split). Epochs: the original model's training ({DEFAULT_EPOCHS} is the default job).",
        "",
        "| epochs | batch | BatchNorm (forget loss) | " + " | ".join(f"κ {s}" for s in scenarios) + " |",
        "|---|---|---|" + "---|" * len(scenarios),
    ]
    for epochs, batch, mode in sorted({(r["epochs"], r["batch_size"], r["forget_batchnorm"]) for r in records}):
        cells = [_ms(_sweep_values(records, epochs, batch, mode, s), "+.3f") for s in scenarios]
        lines.append(f"| {epochs} | {batch} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _sweep_values(records: list[dict], epochs: int, batch: int, mode: str, scenario: str) -> list[float]:
    key = (epochs, batch, mode, scenario)
    fields = ("epochs", "batch_size", "forget_batchnorm", "scenario")
    return [r["coupling"] for r in records if tuple(r[f] for f in fields) == key]


def plot_sweep(records: list[dict], out: Path) -> None:
    """kappa_sweep.png: κ (mean over seeds) against the batch size, one line per fit level, scenario and mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted({r["scenario"] for r in records})
    points = sorted({r["batch_size"] for r in records})
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 4.2), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for epochs in sorted({r["epochs"] for r in records}):
            for mode, style in (("running", "-"), ("batch", "--")):
                means = [np.mean(_sweep_values(records, epochs, b, mode, scenario)) for b in points]
                ax.plot(points, means, style, marker="o", label=f"{epochs} epoch(s), {mode} BN")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size of g_f and g_r")
        ax.set_ylabel("κ at the original model")
        ax.set_title(f"digits, {scenario}")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "kappa_sweep.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/coupling_study", help="folder of the records and report")
    parser.add_argument("--settings", default="digits", help="comma-separated: digits, digits-underfit, cifar10")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated seeds (at least 5 for the study)")
    parser.add_argument("--data-dir", help="a folder of CIFAR-10 images in class sub-folders (or CIFAR_DIR)")
    parser.add_argument("--work-dir", help="checkpoints and cached rows (default: a temporary folder)")
    parser.add_argument(
        "--unlearn-steps",
        type=int,
        default=CIFAR_UNLEARN_STEPS,
        help=f"CIFAR-10: steps of 256 per unlearning run (default {CIFAR_UNLEARN_STEPS})",
    )
    parser.add_argument(
        "--kappa-sweep",
        action="store_true",
        help="instead of the study: κ at the original digits model across fit (epochs), batch size "
        "and BatchNorm mode, into sweep.jsonl, SWEEP.md and kappa_sweep.png",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for smoke tests")
    args = parser.parse_args(argv)
    if "device_count" not in os.environ.get("XLA_FLAGS", ""):  # CIFAR-10 runs data-parallel over 2 host devices
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count=2".strip()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = tuple(int(s) for s in args.seeds.split(","))
    env = common.environment()
    records = []
    with tempfile.TemporaryDirectory(prefix="rosu-coupling-") as tmp:
        work_dir = args.work_dir or tmp
        if args.kappa_sweep:
            (out / "sweep.jsonl").unlink(missing_ok=True)
            coupling_sweep(seeds, work_dir, env, out, args.quick)
            common.progress(f"wrote {out / 'SWEEP.md'}")
            return 0
        (out / "records.jsonl").unlink(missing_ok=True)
        studies = settings(args.settings.split(","), args.data_dir, args.quick, args.unlearn_steps)
        for name, study in studies.items():
            common.progress(f"{name}: {len(seeds)} seed(s)")
            records += run_setting(name, study, seeds, work_dir, env, out)
    (out / "STUDY.md").write_text(summarize(records))
    plot(records, out)
    (out / "command.json").write_text(json.dumps({"argv": sys.argv[1:] if argv is None else argv}, indent=1))
    common.progress(f"wrote {out / 'STUDY.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
