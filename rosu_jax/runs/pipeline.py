"""The generic job: data → (per seed) original model → (per scenario) reference model → every method → rows.

Nothing flows backwards: evaluation only reads weights, the report only reads rows. Everything is checked before
any training (settings, data, splits, the mesh, the output folder), one process works in a work directory at a
time, and every finished piece is on disk before the next starts (orbax checkpoints after each training epoch; one
JSON file per finished row), so an interrupted run started again resumes where it stopped and ends with the same
rows. Cached pieces are keyed by the data's contents, every setting that changes the numbers (the mesh too) and the
code; each restore is logged with what matched.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rosu_jax.methods import get_method
from rosu_jax.methods.registry import methods_for
from rosu_jax.parallel.mesh import make_mesh
from rosu_jax.runs.cache import RowCache, code_fingerprint, default_work_dir, strict
from rosu_jax.runs.config import RunConfig, method_variants, stable_hash
from rosu_jax.runs.lock import WorkDirLock
from rosu_jax.runs.relearn import relearn_curve
from rosu_jax.runs.train import TrainedModel, train_model
from rosu_jax.runs.unlearn import StepperCache, run_unlearning
from rosu_jax.tasks import make_task
from rosu_jax.tasks.base import Evaluation, Setting, Task

REFERENCE_ROWS = ("Retrain", "Original")


@dataclasses.dataclass
class RunOutput:
    rows: list[dict]
    histories: dict[str, dict[str, list]]  # "<scenario>/<seed>/<method>/<variant>" -> per-step series
    artifacts: dict[str, dict] = dataclasses.field(default_factory=dict)  # same keys -> the task's JSON documents


@dataclasses.dataclass
class Run:
    """What every part of one run shares."""

    config: RunConfig
    task: Task
    variants: list  # [(method name, settings)]
    work_dir: Path
    mesh: Mesh | None
    progress: bool
    log: Callable[[str], None]
    fresh: bool
    save_dir: Path | None = None  # --save-models: every finished model is exported under it
    steppers: StepperCache = dataclasses.field(default_factory=StepperCache)
    relearn_steppers: dict = dataclasses.field(default_factory=dict)

    def key(self, *parts) -> str:
        """The cache key of a piece: the given parts plus the mesh and the code fingerprint."""
        return stable_hash([*parts, {"mesh": self.config.mesh, "code": code_fingerprint()}])


def plan(config: RunConfig, task: Task) -> list:
    """The method variants to run, checked: every method applies to the task, every hyperparameter is valid."""
    names = config.methods or task.default_methods or methods_for(task.provides)
    for name in names:
        missing = get_method(name).requires - task.provides
        if missing:
            raise ValueError(
                f"method {name} needs the loss term(s) {', '.join(sorted(missing))}, which the {task.name} task does "
                f"not provide; methods for this task: {', '.join(methods_for(task.provides))}."
            )
    for target in config.grids:
        method, _, field = target.rpartition(".")
        owners = [n for n in names if (not method or n == method) and field in get_method(n).grid_fields()]
        if not owners:
            raise ValueError(
                f"grid {target}: no selected method has a grid-able hyperparameter {field!r}; "
                f"grid-able: {', '.join(sorted({f for n in names for f in get_method(n).grid_fields()}))}."
            )
    variants = method_variants(config, tuple(names), task.method_defaults())
    if config.tune:
        if task.summary is None:
            raise ValueError(
                f"--tune chooses each method's variant by the task's summary metric; the {task.name} task "
                "has none (it reports several numbers side by side)."
            )
        counts = {name: sum(v == name for v, _ in variants) for name in names}
        if len(set(counts.values())) > 1:
            raise ValueError(
                "--tune gives every method the same tuning budget, but the grids give "
                + ", ".join(f"{n} {k} point(s)" for n, k in counts.items())
                + "; use grids every method has (e.g. --lr-grid) or one --grid METHOD.NAME=... per method."
            )
    return variants


def run_pipeline(
    config: RunConfig,
    *,
    work_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: None,
    fresh: bool = False,
    wait_for_lock: bool = False,
    save_models: str | Path | None = None,
) -> RunOutput:
    """Run every (seed, scenario, method variant) of ``config``; return the rows and the per-step histories.

    ``save_models``: export every model trained here into a folder of it, in the task's format (``Task.export``):
    ``Original/seed<s>``, ``<scenario>/seed<s>/Retrain`` and ``<scenario>/seed<s>/<method>-<variant>`` (not
    diverged ones, not the sequential scenario's); a cached row whose model is not saved there yet is recomputed."""
    task = make_task(config.task)
    task.validate()
    variants = plan(config, task)
    mesh = make_mesh(config.mesh) if config.mesh else None
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir()
    for line in task.choices():
        log(line)
    with WorkDirLock(work_dir, wait=wait_for_lock):
        data = task.load()
        # Every split is made (and checked) before any training.
        settings = {(seed, s): task.setting(data, s, seed) for seed in config.seeds for s in task.scenarios()}
        if config.tune and any(task.validation(s) is None for s in settings.values()):
            raise ValueError(
                "--tune needs held-out validation data: set the task's validation_fraction (the CLI's "
                "--tune does, 0.2 by default)."
            )
        save_dir = None if save_models is None else Path(save_models)
        run = Run(config, task, variants, work_dir, mesh, progress, log, fresh, save_dir)
        try:
            _prefetch(run, settings)
            return _run(run, data, settings)
        finally:
            run.steppers.close()


def _prefetch(run: Run, settings: dict) -> None:
    """Start compiling every unlearning step now, in the background, in the order the runs will need them (the
    other seeds reuse them: same shapes)."""
    seed = run.config.seeds[0]
    params, model_state = run.task.unlearning_start(*(run.task.pretrained(seed) or run.task.init_model(seed)))
    terms = run.task.loss_terms()
    for scenario in run.task.scenarios():
        setting = settings[(seed, scenario)]
        for request in setting.requests or [setting]:
            data = run.task.unlearning_data(request, seed)
            for name, method_settings in run.variants:
                run.steppers.prefetch(get_method(name), method_settings, terms, params, model_state, data, run.mesh)


def _run(run: Run, data, settings: dict) -> RunOutput:
    config, task = run.config, run.task
    total = len(config.seeds) * (1 + len(task.scenarios()) * (1 + len(run.variants)))
    bar = tqdm(total=total, desc=task.name, disable=not run.progress)
    output = RunOutput([], {})
    rows_cache = RowCache(run.work_dir / "rows")
    try:
        for seed in config.seeds:
            bar.set_postfix_str(f"seed {seed}: original")
            model_seed = task.model_seed(seed)
            original = _train(run, "original", data.fingerprint, None, model_seed, task.training_data(data, model_seed))
            if task.pretrained(model_seed) is None:  # a given checkpoint is the user's already
                _export(run, ("Original", f"seed{model_seed}"), original, "the original model")
            bar.update(1)
            for scenario in task.scenarios():
                setting = settings[(seed, scenario)]
                if setting.requests:
                    _sequential(run, data, setting, original, rows_cache, output)
                    bar.update(1 + len(run.variants))
                    continue
                bar.set_postfix_str(f"seed {seed}: {scenario} reference")
                reference, rows, artifacts = _reference_rows(run, data, setting, original)
                output.rows += rows
                output.artifacts |= {
                    f"{scenario}/{seed}/{r['method']}/": a for r, a in zip(rows, artifacts, strict=True) if a
                }
                bar.update(1)
                for name, method_settings in run.variants:
                    method = get_method(name)
                    bar.set_postfix_str(f"seed {seed}: {scenario} {name} {method.label(method_settings)}")
                    key = run.key(
                        data.fingerprint,
                        setting.key,
                        seed,
                        task.model_key(),
                        task.unlearning_key(),
                        method.key(method_settings),
                        {"tune": config.tune, "relearn": config.relearn},
                    )
                    export = _export_parts(setting, name, method.label(method_settings))
                    record = None if run.fresh else rows_cache.load(key)
                    unsaved = run.save_dir is not None and not run.save_dir.joinpath(*export).exists()
                    if record is not None and unsaved and record["row"]["status"] != "diverged":
                        record = None  # its model is needed: recompute (same settings, same row)
                    if record is None:
                        record, result = _unlearn_and_score(run, setting, original, reference, method, method_settings)
                        rows_cache.save(key, record)
                        if result.diverged_at is None:
                            _export(run, export, result, f"{name} {method.label(method_settings)}")
                    else:
                        run.log(
                            f"{name} {method.label(method_settings)} ({scenario}, seed {seed}): restored row "
                            f"{key} (same data {data.fingerprint}, settings, mesh and code {code_fingerprint()})"
                        )
                    row = record["row"]
                    row["rte_ratio"] = _ratio(row["seconds"], reference["seconds"])
                    output.rows.append(row)
                    output.histories[f"{scenario}/{seed}/{name}/{row['variant']}"] = record["history"]
                    if record.get("artifact"):
                        output.artifacts[f"{scenario}/{seed}/{name}/{row['variant']}"] = record["artifact"]
                    bar.update(1)
    finally:
        bar.close()
    return output


def _sequential(run: Run, data, setting: Setting, original: TrainedModel, rows_cache: RowCache, output) -> None:
    """Deletion requests one after another: each request's Retrain (trained on what is retained after it), and per
    method a chain of unlearning runs, request r starting from the model request r − 1 left. Cached per chain."""
    task = run.task
    references = []
    for request in setting.requests:
        reference, rows, _ = _reference_rows(run, data, request, original)
        references.append(reference)
        output.rows += rows
    for name, method_settings in run.variants:
        method = get_method(name)
        key = run.key(
            data.fingerprint,
            [r.key for r in setting.requests],
            setting.seed,
            task.model_key(),
            task.unlearning_key(),
            method.key(method_settings),
        )
        records = None if run.fresh else rows_cache.load(key)
        if records is None:
            start, chain = original, []
            for request, reference in zip(setting.requests, references, strict=True):
                record, result = _unlearn_and_score(run, request, start, reference, method, method_settings)
                record["row"]["request"] = request.key["request"]
                chain.append(record)
                start = TrainedModel(result.params, result.model_state, result.seconds, restored=False)
            records = {"row": {"method": name, "requests": len(chain)}, "chain": chain}
            rows_cache.save(key, records)
        for record in records["chain"]:
            row = record["row"]
            output.rows.append(row)
            output.histories[f"{row['scenario']}/{row['seed']}/{name}/{row['variant']}"] = record["history"]


def _ratio(seconds: float, reference_seconds: float | None) -> float | None:
    return seconds / reference_seconds if reference_seconds else None


def _train(run: Run, what: str, fingerprint: str, setting: Setting | None, seed: int, training) -> TrainedModel:
    """Train (or restore) the original model (``setting`` None) or the reference model of ``setting``."""
    task = run.task
    given = task.pretrained(seed) if setting is None else None
    if given is not None:
        run.log(f"{what}: the given checkpoint")
        return TrainedModel(*given, seconds=0.0, restored=True)
    key = run.key(fingerprint, task.model_key(), seed, None if setting is None else setting.key)
    checkpoint_dir = run.work_dir / "checkpoints" / f"{what}-{key}"
    if run.fresh and checkpoint_dir.exists():
        shutil.rmtree(checkpoint_dir)
    params, model_state = task.init_model(seed)
    description = what if setting is None else f"{what} ({setting.scenario})"
    trained = train_model(
        task.training_loss(),
        params,
        model_state,
        training,
        task.training_recipe(),
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        description=description,
        progress=run.progress,
        mesh=run.mesh,
    )
    if trained.restored:
        run.log(
            f"{description}, seed {seed}: restored checkpoint {checkpoint_dir.name} (same data {fingerprint}, "
            f"model, training recipe, mesh and code)"
        )
    else:
        run.log(f"{description}, seed {seed}: trained in {trained.seconds:.1f} s")
    return trained


def _export_parts(setting: Setting, method: str, variant: str) -> tuple[str, ...]:
    """Where ``--save-models`` puts a method's model: scenario / seed / method and its variant, as folder names."""
    scenario, variant = (
        re.sub(r"[^A-Za-z0-9.=+_-]+", "_", text.replace("ρ", "rho").replace("λ", "lambda")).strip("_")
        for text in (setting.scenario, variant)
    )
    return scenario, f"seed{setting.seed}", f"{method}-{variant}" if variant else method


def _export(run: Run, parts: tuple[str, ...], model, what: str) -> None:
    """``run.task.export`` of ``model`` into ``run.save_dir/parts`` unless it is there (written to a ``.partial``
    folder first, so an interrupted export is never taken for a finished one)."""
    if run.save_dir is None:
        return
    folder = run.save_dir.joinpath(*parts)
    if folder.exists():
        return
    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.parent.mkdir(parents=True, exist_ok=True)
    run.task.export(model.params, model.model_state, partial)
    partial.rename(folder)
    run.log(f"{what}: saved to {folder}")


def _reference_rows(run: Run, data, setting: Setting, original: TrainedModel) -> tuple[dict, list[dict], list]:
    """The reference model of ``setting`` (trained, restored, or an evaluation read from the user's file), and the
    Retrain and Original rows. Returns (reference: its evaluation and training seconds, rows, their artifacts)."""
    task = run.task
    base = _base_row(run, setting)
    rows, artifacts = [], []
    reference_eval, reference_seconds, retrain = setting.reference_evaluation, None, None
    if reference_eval is None and setting.reference_training is not None:
        model_seed = task.model_seed(setting.seed)
        retrain = _train(run, task.reference_row, data.fingerprint, setting, model_seed, setting.reference_training)
        if not setting.scenario.startswith("sequential"):
            folder = _export_parts(setting, task.reference_row, "")[0], f"seed{model_seed}", task.reference_row
            _export(run, folder, retrain, task.reference_row)
        reference_eval = task.evaluate(retrain.params, retrain.model_state, setting)
        reference_seconds = retrain.seconds
        artifacts.append(reference_eval.artifact)
    elif reference_eval is not None:
        artifacts.append(None)  # read from the user's file
    if reference_eval is not None:
        rows.append(
            _row(
                base,
                task.reference_row,
                reference_eval,
                task.compare(reference_eval, reference_eval),
                seconds=reference_seconds,
                rte_ratio=1.0 if reference_seconds else None,
            )
        )
    evaluation_original = task.evaluate(original.params, original.model_state, setting)
    rows.append(
        _row(
            base,
            "Original",
            evaluation_original,
            task.compare(evaluation_original, reference_eval),
            seconds=original.seconds,
            rte_ratio=_ratio(original.seconds, reference_seconds),
        )
    )
    artifacts.append(evaluation_original.artifact)
    for row in rows:
        if row["status"] != "ok":
            run.log(
                f"warning: the {row['method']} model is {row['status']} ({setting.scenario}, seed {setting.seed}): "
                "its rows and every comparison with it are not results; train longer or with another lr."
            )
    # A task without a reference model (WMDP) compares every method with the model before unlearning.
    comparison = reference_eval if reference_eval is not None else evaluation_original
    reference = {"evaluation": comparison, "seconds": reference_seconds}
    if run.config.tune:  # the reference's scores on the validation data, for the methods' validation comparison
        validation = task.validation(setting)
        model = retrain if reference_eval is not None and setting.reference_evaluation is None else original
        reference["validation"] = task.evaluate(model.params, model.model_state, validation)
    return reference, rows, artifacts


def _base_row(run: Run, setting: Setting) -> dict:
    return {"task": run.task.name, **run.task.row_fields(), "scenario": setting.scenario, "seed": setting.seed}


def _row(base: dict, method: str, evaluation: Evaluation, comparison: dict, **fields) -> dict:
    status = (evaluation.details or {}).get("status", "ok") if isinstance(evaluation.details, dict) else "ok"
    return strict(base | {"method": method, **evaluation.metrics, **comparison, "status": status, **fields})


def _unlearn_and_score(run: Run, setting: Setting, original: TrainedModel, reference: dict, method, settings):
    """One unlearning run from ``original``, evaluated: (``{"row", "history", "artifact"}``, the run's result)."""
    task = run.task
    params, model_state = task.unlearning_start(original.params, original.model_state)  # before loss_terms()
    result = run_unlearning(
        method,
        settings,
        task.loss_terms(),
        params,
        model_state,
        task.unlearning_data(setting, setting.seed),
        seed=setting.seed,
        steppers=run.steppers,
        progress=run.progress,
        mesh=run.mesh,
    )
    evaluation = task.evaluate(result.params, result.model_state, setting)
    if result.diverged_at is not None:
        evaluation = Evaluation({k: None for k in evaluation.metrics}, {"status": "diverged"})
    coupling = result.history.get("coupling")
    finite = [c for c in coupling or [] if c is not None and np.isfinite(c)]
    row = _row(
        _base_row(run, setting),
        method.name,
        evaluation,
        task.compare(evaluation, reference["evaluation"]),
        variant=method.label(settings),
        **{name: getattr(settings, name) for name in method.grid_fields()},
        settings=dataclasses.asdict(settings),
        seconds=result.seconds,
        compile_s=result.compile_s,
        steps=result.steps,
        gradient_evaluations=result.gradient_evaluations,
        diverged_at_step=result.diverged_at,
        mean_coupling=float(np.mean(finite)) if finite else None,
        coupling_source=result.coupling_source,
    )
    history = dict(result.history)
    if run.config.tune:
        validation = task.validation(setting)
        scores = task.evaluate(result.params, result.model_state, validation)
        row["validation"] = strict({**scores.metrics, **task.compare(scores, reference["validation"])})
    if run.config.relearn and result.diverged_at is None:
        steps, scores = relearn_curve(
            task, result.params, result.model_state, setting, *run.config.relearn, run.relearn_steppers
        )
        row["relearn_forget_score"] = strict(scores[-1])
        history |= {"relearn_step": steps, "relearn_forget_score": scores}
    return {"row": row, "history": strict(history), "artifact": strict(evaluation.artifact)}, result
