"""Train a task's original model and its reference model, checkpointed with orbax after every epoch.

A training run is keyed by everything that determines its result, so a finished run is restored instead of
retrained and an interrupted one continues at its last saved epoch. Batches are a pure function of (seed, epoch)
and the step key of (seed, step), so a resumed run ends with the same weights as an uninterrupted one. A run whose
loss or weights become non-finite stops with ``TrainingDiverged`` (the epoch is not saved).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rosu_jax.core.types import PyTree
from rosu_jax.parallel.distributed import batch_placer
from rosu_jax.parallel.mesh import shard_state, sharded_step
from rosu_jax.runs.checkpoint import Checkpointer
from rosu_jax.steps import make_recipe_step
from rosu_jax.steps.state import LossFn
from rosu_jax.tasks.base import TrainingData, TrainingRecipe
from rosu_jax.transforms.optimizers import make_optimizer
from rosu_jax.transforms.recipes import fine_tune


class TrainingDiverged(RuntimeError):
    """The loss or the weights became non-finite while training."""


@dataclasses.dataclass
class TrainedModel:
    params: PyTree
    model_state: PyTree
    seconds: float  # training wall time, summed over the sessions that trained it
    restored: bool  # True when a finished checkpoint was reused


def training_optimizer(recipe: TrainingRecipe, total_steps: int):
    warmup = int(round(recipe.warmup_epochs * total_steps / recipe.epochs))
    return make_optimizer(
        recipe.optimizer,
        recipe.lr,
        total_steps,
        schedule=recipe.schedule,
        momentum=recipe.momentum,
        weight_decay=recipe.weight_decay,
        warmup_steps=warmup,
    )


def train_model(
    loss_fn: LossFn,
    params: PyTree,
    model_state: PyTree,
    data: TrainingData,
    recipe: TrainingRecipe,
    *,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    description: str = "train",
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    mesh: Mesh | None = None,
) -> TrainedModel:
    """Descend ``loss_fn`` over ``data`` for ``recipe.epochs``; resume from ``checkpoint_dir`` when it has a save.

    ``on_epoch_end(epoch)`` is called after each saved epoch (tests use it to interrupt a run). With a ``mesh``
    the state is sharded (``rosu_jax.parallel``) and checkpoints restore onto that mesh whatever mesh saved them.
    """
    if data.num_examples == 0 or data.steps_per_epoch == 0:
        raise ValueError(f"{description}: no training examples.")
    total_steps = data.steps_per_epoch * recipe.epochs
    stepper = make_recipe_step(None, loss_fn, fine_tune(training_optimizer(recipe, total_steps)))
    state = stepper.init(params, model_state)
    step = stepper.step
    place_batch = lambda b: b
    if mesh is not None:
        state = shard_state(state, mesh)
        step = sharded_step(stepper, mesh, state)
        place_batch = batch_placer(mesh)
    start_epoch, seconds = 0, 0.0
    checkpointer = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    if checkpointer is not None and checkpointer.latest_step() is not None:
        state, meta = checkpointer.restore(state)
        start_epoch, seconds = int(meta["epoch"]), float(meta["seconds"])
        if start_epoch >= recipe.epochs:
            checkpointer.close()
            return TrainedModel(state.params, state.model_state, seconds, restored=True)

    base_key = jax.random.key(seed)
    bar = tqdm(total=recipe.epochs, initial=start_epoch, desc=description, disable=not progress, leave=False)
    try:
        for epoch in range(start_epoch, recipe.epochs):
            started = time.perf_counter()
            metrics = None
            for i, batch in enumerate(data.batches(epoch)):
                key = jax.random.fold_in(base_key, epoch * data.steps_per_epoch + i)
                state, metrics = step(state, None, place_batch(batch), key)
            state = jax.block_until_ready(state)
            seconds += time.perf_counter() - started
            loss = float(metrics["retain_loss"])
            if not (np.isfinite(loss) and bool(metrics["all_finite"])):
                raise TrainingDiverged(
                    f"{description}: training diverged in epoch {epoch + 1} (loss {loss}, weights "
                    f"{'finite' if bool(metrics['all_finite']) else 'non-finite'}); lower the training learning "
                    f"rate (train.lr = {recipe.lr:g}, e.g. --train-lr {recipe.lr / 10:g})."
                )
            if checkpointer is not None:
                checkpointer.save(epoch + 1, state._replace(extras=None), {"epoch": epoch + 1, "seconds": seconds})
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.close()
    return TrainedModel(state.params, state.model_state, seconds, restored=False)
