"""Run one unlearning method from the original weights and time it.

An unlearning run makes ``epochs`` passes over the retain set (batches of ``batch_size``, last partial batch
dropped so one compiled step serves every batch) while the forget stream is cycled alongside, one forget batch
per step. The wall time (RTE) covers the whole run, compilation included; the first step's time is also reported
(``compile_s``) so short runs can be read fairly. Per-step diagnostics (coupling, norms, losses) are kept.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rosu_jax.data.batching import cycle_batches, iterate_batches, num_batches
from rosu_jax.parallel.distributed import batch_placer
from rosu_jax.parallel.mesh import shard_state, sharded_step
from rosu_jax.steps.registry import MethodConfig, get_method, method_extras
from rosu_jax.steps.state import Stepper

PyTree = Any

# Per-step metrics kept in the history (when a method reports them).
HISTORY_KEYS = (
    "coupling",
    "forget_norm",
    "retain_norm",
    "neutral_fraction",
    "predicted_retain_change_minmax",
    "predicted_retain_change",
    "surrogate_retain_increase",
    "forget_loss",
    "retain_loss",
)


@dataclasses.dataclass
class UnlearnResult:
    params: PyTree
    model_state: PyTree
    seconds: float
    compile_s: float
    steps: int
    gradient_evaluations: int
    history: dict[str, np.ndarray]
    all_finite: bool


class StepperCache:
    """Build each (method, config, apply_fn, steps) stepper once, and its mesh-sharded step once per mesh, so
    compiled steps are reused across scenarios and seeds with the same shapes."""

    def __init__(self):
        self._steppers: dict[tuple, Stepper] = {}
        self._sharded: dict[tuple, Callable] = {}

    def get(self, method: str, config: MethodConfig, apply_fn: Callable, num_classes: int, total_steps: int) -> Stepper:
        key = (method, config, id(apply_fn), num_classes, total_steps)
        if key not in self._steppers:
            self._steppers[key] = get_method(method).factory(apply_fn, num_classes, config, total_steps)
        return self._steppers[key]

    def step_fn(self, stepper: Stepper, mesh: Mesh | None, state_template: Any) -> Callable:
        """The stepper's step, or on a mesh the step jitted with the mesh's in/out shardings."""
        if mesh is None:
            return stepper.step
        key = (id(stepper), mesh)
        if key not in self._sharded:
            self._sharded[key] = sharded_step(stepper, mesh, state_template)
        return self._sharded[key]


def run_unlearning(
    method: str,
    config: MethodConfig,
    apply_fn: Callable,
    num_classes: int,
    params: PyTree,
    model_state: PyTree,
    forget: tuple[np.ndarray, np.ndarray],
    retain: tuple[np.ndarray, np.ndarray],
    *,
    epochs: int,
    batch_size: int,
    seed: int,
    mean: np.ndarray,
    std: np.ndarray,
    steppers: StepperCache | None = None,
    progress: bool = True,
    mesh: Mesh | None = None,
) -> UnlearnResult:
    """Unlearn ``forget`` from (params, model_state) with ``method``; return the new weights and the run's record.

    With a ``mesh`` the state is placed by ``rosu_jax.parallel.shard_state`` (params replicated or FSDP-sharded),
    batches are split over the mesh, and the step keeps that layout (``sharded_step``).
    """
    if len(forget[0]) == 0:
        raise ValueError("the forget set is empty: nothing to unlearn. Check the forget class or fraction.")
    if len(retain[0]) == 0:
        raise ValueError("the retain set is empty: every training example would be forgotten.")
    batch_size = min(batch_size, len(retain[0]))
    forget_batch_size = min(batch_size, len(forget[0]))
    steps_per_epoch = num_batches(len(retain[0]), batch_size, drop_last=True)
    total_steps = steps_per_epoch * epochs
    steppers = steppers or StepperCache()
    spec = get_method(method)

    started = time.perf_counter()
    extras = method_extras(
        spec,
        config,
        apply_fn,
        params,
        model_state,
        lambda: iterate_batches(*forget, forget_batch_size, seed=seed, shuffle=False, mean=mean, std=std),
    )
    stepper = steppers.get(method, config, apply_fn, num_classes, total_steps)
    state = stepper.init(params, model_state, extras)
    if mesh is not None:
        state = shard_state(state, mesh)
    step = steppers.step_fn(stepper, mesh, state)
    place_batch = (lambda b: b) if mesh is None else batch_placer(mesh)
    forget_stream = cycle_batches(*forget, forget_batch_size, seed=seed, mean=mean, std=std)
    base_key = jax.random.key(seed)
    records: list[dict] = []
    compile_s = 0.0
    bar = tqdm(total=total_steps, desc=method, disable=not progress, leave=False)
    try:
        for epoch in range(epochs):
            for i, retain_batch in enumerate(
                iterate_batches(*retain, batch_size, seed=seed, epoch=epoch, drop_last=True, mean=mean, std=std)
            ):
                key = jax.random.fold_in(base_key, epoch * steps_per_epoch + i)
                state, metrics = step(state, place_batch(next(forget_stream)), place_batch(retain_batch), key)
                records.append(
                    {k: metrics[k] for k in HISTORY_KEYS if k in metrics} | {"finite": metrics["all_finite"]}
                )
                if epoch == 0 and i == 0:
                    jax.block_until_ready(state)
                    compile_s = time.perf_counter() - started
                bar.update(1)
        state = jax.block_until_ready(state)
    finally:
        bar.close()
    seconds = time.perf_counter() - started
    history = {k: np.asarray([float(r[k]) for r in records]) for k in records[0] if k != "finite"} if records else {}
    all_finite = bool(all(bool(r["finite"]) for r in records))
    return UnlearnResult(
        state.params,
        state.model_state,
        seconds,
        compile_s,
        total_steps,
        stepper.gradient_evaluations,
        history,
        all_finite,
    )
