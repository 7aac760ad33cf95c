"""The main job: dataset → split → original → Retrain → every method → metrics → rows.

Nothing flows backwards: evaluation only reads weights, the report only reads rows. Every finished piece is on
disk before the next starts (training checkpoints with orbax after each epoch; one JSON file per finished
method row), so an interrupted run started again with the same config resumes where it stopped and ends with
the same rows as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rosu_jax.data import dataset_stats, load_dataset, make_split, normalize_images, subsample_per_class
from rosu_jax.evaluation import avg_gap, compute_metrics, predict_logits
from rosu_jax.models import build_model
from rosu_jax.parallel.mesh import make_mesh
from rosu_jax.runs.config import RunConfig, stable_hash
from rosu_jax.runs.train import train_classifier
from rosu_jax.runs.unlearn import StepperCache, run_unlearning
from rosu_jax.steps.registry import MethodConfig

PyTree = Any
METRICS = ("UA", "RA", "TA", "MIA")


def default_work_dir() -> Path:
    """Where checkpoints and finished rows live when no --work-dir is given."""
    base = os.environ.get("ROSU_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rosu_jax")
    return Path(base) / "runs"


@dataclasses.dataclass
class RunOutput:
    rows: list[dict]
    histories: dict[str, dict[str, list[float]]]  # "<scenario>/<seed>/<method>/<lr>" -> per-step series


def evaluate(apply_fn, params, model_state, subsets, mean, std) -> dict[str, float]:
    """UA, RA, TA and MIA-efficacy of one model on one split (eval mode, no augmentation).

    A diverged model (non-finite logits) is still scored, with NaN logits read as 0 and ±inf clipped, so the
    run goes on; its row carries ``all_finite = False``.
    """
    normalize = lambda x: normalize_images(x, mean, std)
    logits = {
        name: np.nan_to_num(
            predict_logits(apply_fn, params, model_state, subsets[name][0], normalize=normalize),
            nan=0.0,
            posinf=1e30,
            neginf=-1e30,
        )
        for name in ("forget", "retain", "test")
    }
    return compute_metrics(
        logits["forget"],
        subsets["forget"][1],
        logits["retain"],
        subsets["retain"][1],
        logits["test"],
        subsets["test"][1],
    )


class RowCache:
    """One JSON file per finished row, named by the hash of everything that determines it."""

    def __init__(self, directory: Path):
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> dict | None:
        p = self.path(key)
        return json.loads(p.read_text()) if p.exists() else None

    def save(self, key: str, record: dict) -> None:
        tmp = self.path(key).with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(self.path(key))


MINMAX_METHODS = ("UAM", "UAM+λ", "ROSU")
AMPLIFIED_METHODS = ("UAM+λ", "ROSU")


def method_variants(config: RunConfig, method: str) -> list[MethodConfig]:
    """The method's configs to run: its own, or the product of the lr / ρ / λ grids that apply to it."""
    base = config.method_config(method)
    lrs = config.lr_grid or (base.lr,)
    rhos = (config.rho_grid or (base.rho,)) if method in MINMAX_METHODS else (base.rho,)
    amps = (
        (config.amplification_grid or (base.amplification,)) if method in AMPLIFIED_METHODS else (base.amplification,)
    )
    return [base.replace(lr=lr, rho=rho, amplification=amp) for lr in lrs for rho in rhos for amp in amps]


def variant_label(method: str, config: MethodConfig) -> str:
    """e.g. 'lr=0.1' or 'lr=0.1 ρ=0.5 λ=0.05' (the hyperparameters that matter for the method)."""
    label = f"lr={config.lr:g}"
    if method in MINMAX_METHODS:
        label += f" ρ={config.rho:g}"
    if method in AMPLIFIED_METHODS:
        label += f" λ={config.amplification:g}"
    return label


@dataclasses.dataclass
class _ScenarioContext:
    """What every unlearning run of one (seed, scenario) shares."""

    config: RunConfig
    apply_fn: Callable
    num_classes: int
    original: Any  # TrainedModel
    subsets: dict
    retrain_metrics: dict
    retrain_seconds: float
    base_row: dict
    seed: int
    mean: np.ndarray
    std: np.ndarray
    steppers: StepperCache
    progress: bool
    mesh: Any


def _unlearn_and_score(ctx: _ScenarioContext, method: str, method_config: MethodConfig) -> dict:
    """One unlearning run from the original weights, evaluated: {"row": ..., "history": ...}."""
    result = run_unlearning(
        method,
        method_config,
        ctx.apply_fn,
        ctx.num_classes,
        ctx.original.params,
        ctx.original.model_state,
        ctx.subsets["forget"],
        ctx.subsets["retain"],
        epochs=ctx.config.unlearn_epochs,
        batch_size=ctx.config.unlearn_batch_size,
        seed=ctx.seed,
        mean=ctx.mean,
        std=ctx.std,
        steppers=ctx.steppers,
        progress=ctx.progress,
        mesh=ctx.mesh,
    )
    metrics = evaluate(ctx.apply_fn, result.params, result.model_state, ctx.subsets, ctx.mean, ctx.std)
    row = ctx.base_row | {
        "method": method,
        **metrics,
        "avg_gap": avg_gap(metrics, ctx.retrain_metrics),
        "seconds": result.seconds,
        "rte_ratio": result.seconds / ctx.retrain_seconds,
        "compile_s": result.compile_s,
        "steps": result.steps,
        "gradient_evaluations": result.gradient_evaluations,
        "lr": method_config.lr,
        "variant": variant_label(method, method_config),
        "all_finite": result.all_finite,
    }
    if method in MINMAX_METHODS:
        row |= {"rho": method_config.rho, "amplification": method_config.amplification if method != "UAM" else 0.0}
        if "coupling" in result.history:
            row["mean_coupling"] = float(np.mean(result.history["coupling"]))
    return {"row": row, "history": {k: v.tolist() for k, v in result.history.items()}}


def run_pipeline(
    config: RunConfig,
    *,
    work_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: None,
) -> RunOutput:
    """Run every (seed, scenario, method[, lr]) of ``config``; return rows and per-step histories.

    ``config.mesh`` (e.g. ``"data=8"``) runs training and unlearning on a device mesh (``rosu_jax.parallel``).
    """
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir()
    dataset = load_dataset(config.dataset, config.data_dir)
    if config.train_per_class is not None:
        dataset = subsample_per_class(dataset, config.train_per_class, seed=0)
    mean, std = dataset_stats(dataset.x_train)
    model_kwargs = dict(config.model_kwargs)
    apply_fn, init_params, init_state = build_model(
        config.model, dataset.num_classes, dataset.image_shape[-1], seed=0, **model_kwargs
    )
    data_key = {
        "dataset": config.dataset,
        "data_dir": config.data_dir,
        "n_train": len(dataset.x_train),
        "train_per_class": config.train_per_class,
        "model": config.model,
        "model_kwargs": model_kwargs,
        "train": dataclasses.asdict(config.train),
    }
    rows_cache = RowCache(work_dir / "rows")
    steppers = StepperCache()
    mesh = make_mesh(config.mesh) if config.mesh else None
    variants = sum(len(method_variants(config, m)) for m in config.methods)
    total = len(config.seeds) * (1 + len(config.scenarios) * (1 + variants))
    bar = tqdm(total=total, desc=f"{config.dataset}/{config.model}", disable=not progress)
    rows: list[dict] = []
    histories: dict[str, dict[str, list[float]]] = {}
    try:
        for seed in config.seeds:
            _, seed_params, seed_state = (
                build_model(config.model, dataset.num_classes, dataset.image_shape[-1], seed=seed, **model_kwargs)
                if seed != 0
                else (apply_fn, init_params, init_state)
            )
            bar.set_postfix_str(f"seed {seed}: original")
            train = functools.partial(
                train_classifier,
                apply_fn,
                seed_params,
                seed_state,
                recipe=config.train,
                seed=seed,
                mean=mean,
                std=std,
                progress=progress,
                mesh=mesh,
            )
            original = train(
                dataset.x_train,
                dataset.y_train,
                description="original",
                checkpoint_dir=work_dir / "checkpoints" / f"original-{stable_hash([data_key, seed])}",
            )
            log(f"original (seed {seed}): {'restored' if original.restored else 'trained'} in {original.seconds:.1f} s")
            bar.update(1)
            for scenario in config.scenarios:
                split = make_split(
                    dataset,
                    scenario,
                    forget_class=config.forget_class,
                    fraction=config.forget_fraction,
                    seed=seed,
                )
                subsets = split.subsets(dataset)
                split_key = {
                    "scenario": scenario,
                    "forget_class": config.forget_class,
                    "fraction": config.forget_fraction,
                    "seed": seed,
                }
                base = {"dataset": config.dataset, "model": config.model, "scenario": scenario, "seed": seed}
                bar.set_postfix_str(f"seed {seed}: {scenario} Retrain")
                retrain = train(
                    *subsets["retain"],
                    description=f"Retrain {scenario}",
                    checkpoint_dir=work_dir / "checkpoints" / f"retrain-{stable_hash([data_key, split_key])}",
                )
                log(f"Retrain ({scenario}, seed {seed}): {'restored' if retrain.restored else 'trained'}")
                retrain_metrics = evaluate(apply_fn, retrain.params, retrain.model_state, subsets, mean, std)
                rows.append(
                    base
                    | {
                        "method": "Retrain",
                        **retrain_metrics,
                        "avg_gap": 0.0,
                        "seconds": retrain.seconds,
                        "rte_ratio": 1.0,
                    }
                )
                original_metrics = evaluate(apply_fn, original.params, original.model_state, subsets, mean, std)
                rows.append(
                    base
                    | {
                        "method": "Original",
                        **original_metrics,
                        "avg_gap": avg_gap(original_metrics, retrain_metrics),
                        "seconds": original.seconds,
                        "rte_ratio": original.seconds / retrain.seconds,
                    }
                )
                bar.update(1)
                context = _ScenarioContext(
                    config,
                    apply_fn,
                    dataset.num_classes,
                    original,
                    subsets,
                    retrain_metrics,
                    retrain.seconds,
                    base,
                    seed,
                    mean,
                    std,
                    steppers,
                    progress,
                    mesh,
                )
                for method in config.methods:
                    for method_config in method_variants(config, method):
                        bar.set_postfix_str(f"seed {seed}: {scenario} {method} {variant_label(method, method_config)}")
                        key = stable_hash(
                            [
                                data_key,
                                split_key,
                                method,
                                dataclasses.asdict(method_config),
                                config.unlearn_epochs,
                                config.unlearn_batch_size,
                            ]
                        )
                        record = rows_cache.load(key)
                        if record is None:
                            record = _unlearn_and_score(context, method, method_config)
                            rows_cache.save(key, record)
                        else:
                            # the retrain time is re-measured each run: keep RTE ratios consistent with it
                            record["row"]["rte_ratio"] = record["row"]["seconds"] / retrain.seconds
                        rows.append(record["row"])
                        histories[f"{scenario}/{seed}/{method}/{record['row']['variant']}"] = record["history"]
                        bar.update(1)
    finally:
        bar.close()
    return RunOutput(rows, histories)
