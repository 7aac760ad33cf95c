"""Orbax checkpoints of run states: save every so often, resume from the latest, restore onto any sharding.

A checkpoint holds a pytree ``state`` (params, model state, optimizer state, counters) and a JSON ``meta`` dict
(epoch, config, what produced it). Restoring needs a *template* pytree of the same structure: its leaves'
shapes, dtypes and shardings decide how the arrays come back, so a state saved on one mesh restores onto another.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import jax
import orbax.checkpoint as ocp

from rosu_jax.core.types import PyTree


def _abstract(template: PyTree) -> PyTree:
    """ShapeDtypeStructs (with shardings where the template has them) for a restore target."""

    def leaf(x):
        if isinstance(x, jax.ShapeDtypeStruct):
            return x
        sharding = getattr(x, "sharding", None)
        return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)

    return jax.tree.map(leaf, template)


class Checkpointer:
    """A directory of numbered checkpoints (``max_to_keep`` newest kept)."""

    def __init__(self, directory: str | os.PathLike, *, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        self.directory.mkdir(parents=True, exist_ok=True)
        options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
        self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: PyTree, meta: dict | None = None) -> None:
        """Save and wait until it is on disk (a killed run never leaves a half-written latest checkpoint)."""
        self._manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta or {})),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore(self, template: PyTree, step: int | None = None) -> tuple[PyTree, dict]:
        """Restore ``step`` (default: the newest intact one) into the structure, dtypes and shardings of
        ``template``. A damaged newest checkpoint is reported, removed and skipped for the one before it."""
        steps = [step] if step is not None else sorted(self._manager.all_steps(), reverse=True)
        if not steps:
            raise FileNotFoundError(f"no checkpoint in {self.directory}.")
        errors = []
        for candidate in steps:
            try:
                restored = self._manager.restore(
                    candidate,
                    args=ocp.args.Composite(
                        state=ocp.args.StandardRestore(_abstract(template)), meta=ocp.args.JsonRestore()
                    ),
                )
            except Exception as err:  # orbax raises many kinds (ValueError, OSError, tensorstore errors)
                errors.append(f"step {candidate}: {type(err).__name__}: {str(err)[:200]}")
                if step is None:  # removed, so that training can save that step again
                    warnings.warn(
                        f"checkpoint {self.directory}/{candidate} is damaged; removed ({errors[-1]})", stacklevel=2
                    )
                    self._manager.delete(candidate)
                continue
            return restored.state, dict(restored.meta or {})
        raise ValueError(
            f"no intact checkpoint in {self.directory} ({'; '.join(errors)}); delete that folder to start this "
            "training again."
        )

    def close(self) -> None:
        self._manager.close()

    def __enter__(self) -> Checkpointer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
