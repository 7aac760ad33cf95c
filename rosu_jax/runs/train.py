"""Train the original model and Retrain, checkpointed with orbax after every epoch and resumed from the last.

A training run is keyed by everything that determines its result (dataset, model, seed, recipe, and for Retrain
the split), so a finished run is restored instead of retrained, and an interrupted one continues at its last
saved epoch. Batches are a pure function of (seed, epoch) and the step key of (seed, step), so a resumed run ends
with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
import optax
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rosu_jax.data.batching import iterate_batches, num_batches
from rosu_jax.parallel.distributed import batch_placer
from rosu_jax.parallel.mesh import shard_state, sharded_step
from rosu_jax.runs.checkpoint import Checkpointer
from rosu_jax.runs.config import TrainRecipe
from rosu_jax.steps.baselines import make_ft_step
from rosu_jax.steps.state import UnlearnState
from rosu_jax.transforms.schedules import cosine_decay, piecewise_constant

PyTree = Any


@dataclasses.dataclass
class TrainedModel:
    params: PyTree
    model_state: PyTree
    seconds: float  # training wall time, summed over the sessions that trained it
    restored: bool  # True when a finished checkpoint was reused


def training_optimizer(recipe: TrainRecipe, total_steps: int) -> optax.GradientTransformation:
    if recipe.schedule == "cosine":
        lr = cosine_decay(recipe.lr, total_steps)
    elif recipe.schedule == "step":  # ×0.1 at 50% and 75% of training, the classic CIFAR recipe
        lr = piecewise_constant(recipe.lr, {int(total_steps * 0.5): 0.1, int(total_steps * 0.75): 0.1})
    else:
        lr = recipe.lr
    parts = [optax.add_decayed_weights(recipe.weight_decay)] if recipe.weight_decay else []
    parts.append(optax.sgd(lr, momentum=recipe.momentum or None))
    return optax.chain(*parts)


def train_classifier(
    apply_fn: Callable,
    params: PyTree,
    model_state: PyTree,
    x: np.ndarray,
    y: np.ndarray,
    recipe: TrainRecipe,
    *,
    seed: int,
    mean: np.ndarray,
    std: np.ndarray,
    checkpoint_dir: str | Path | None = None,
    description: str = "train",
    progress: bool = True,
    on_epoch_end: Callable[[int], None] | None = None,
    mesh: Mesh | None = None,
) -> TrainedModel:
    """Train with cross-entropy from (params, model_state); resume from ``checkpoint_dir`` when it has a save.

    ``on_epoch_end(epoch)`` is called after each saved epoch (tests use it to interrupt a run). With a ``mesh``
    the state is sharded (``rosu_jax.parallel``) and checkpoints restore onto that mesh whatever mesh saved them.
    """
    if len(x) == 0:
        raise ValueError(f"{description}: no training examples.")
    batch_size = min(recipe.batch_size, len(x))
    steps_per_epoch = num_batches(len(x), batch_size, drop_last=True)
    total_steps = steps_per_epoch * recipe.epochs
    stepper = make_ft_step(apply_fn, training_optimizer(recipe, total_steps))
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
            batches = iterate_batches(
                x,
                y,
                batch_size,
                seed=seed,
                epoch=epoch,
                drop_last=True,
                augment=recipe.augment,
                mean=mean,
                std=std,
            )
            metrics = None
            for i, batch in enumerate(batches):
                key = jax.random.fold_in(base_key, epoch * steps_per_epoch + i)
                state, metrics = step(state, None, place_batch(batch), key)
            state = jax.block_until_ready(state)
            seconds += time.perf_counter() - started
            if checkpointer is not None:
                checkpointer.save(epoch + 1, _as_saveable(state), {"epoch": epoch + 1, "seconds": seconds})
            bar.update(1)
            if metrics is not None:
                bar.set_postfix(loss=f"{float(metrics['retain_loss']):.3f}")
            if on_epoch_end is not None:
                on_epoch_end(epoch + 1)
    finally:
        bar.close()
        if checkpointer is not None:
            checkpointer.close()
    return TrainedModel(state.params, state.model_state, seconds, restored=False)


def _as_saveable(state: UnlearnState) -> UnlearnState:
    return state._replace(extras=None)
