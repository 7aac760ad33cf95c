"""Functional split/merge boundary between Flax NNX modules and pure, jit-able functions.

Calling convention::

    apply_fn, params, model_state = split_model(model)
    logits, new_model_state = apply_fn(params, model_state, images, train=True)

* ``params``: nested ``dict`` (str keys) of float32 ``jax.Array`` -- the ``nnx.Param`` leaves.
* ``model_state``: nested ``dict`` of ``jax.Array`` -- the ``nnx.BatchStat`` leaves (BatchNorm running
  ``mean``/``var``); ``{}`` for a model without BatchNorm.
* ``apply_fn(params, model_state, images, *, train)`` is pure: it merges fresh modules from the graphdef on
  every call and never mutates its inputs. ``images`` are NHWC floats (already normalised).
  ``train=True`` uses batch statistics and returns updated running statistics; ``train=False`` uses the
  running statistics and returns ``model_state`` itself unchanged. ``train`` must be a Python bool
  (static under ``jax.jit``). Logits are float32.
* ``jax.grad`` w.r.t. ``params`` returns a dict with exactly the structure of ``params``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
from flax import nnx
from flax.nnx import traversals

Params = dict[str, Any]
ModelState = dict[str, Any]
ApplyFn = Callable[..., tuple[jax.Array, ModelState]]


class ApplyInfo(NamedTuple):
    """Static pieces needed to rebuild the module: graphdef, state templates and the other state."""

    graphdef: Any
    param_template: Any
    stat_template: Any
    rest: Any


def _fill(template, pure: dict) -> Any:
    """Build a new nnx.State shaped like ``template`` whose leaves take their values from ``pure``."""
    flat_pure = traversals.flatten_mapping(pure) if pure else {}
    flat_template = list(nnx.to_flat_state(template))
    if len(flat_pure) != len(flat_template):
        raise ValueError(f"expected {len(flat_template)} leaves, got {len(flat_pure)}")
    items = []
    for path, var in flat_template:
        key = tuple(str(k) if isinstance(k, int) else k for k in path)
        value = flat_pure[path] if path in flat_pure else flat_pure.get(key)
        if value is None:
            raise ValueError(f"missing leaf {'/'.join(map(str, path))}")
        items.append((path, var.replace(value)))
    return nnx.from_flat_state(items)


def _pure(state) -> dict:
    return dict(nnx.to_pure_dict(state))


def merge_model(info: ApplyInfo, params: Params, model_state: ModelState) -> nnx.Module:
    """Rebuild a fresh ``nnx.Module`` from ``info`` (see ``split_model``) and pure-dict params/state."""
    return nnx.merge(
        info.graphdef, _fill(info.param_template, params), _fill(info.stat_template, model_state), info.rest
    )


def make_apply_fn(info: ApplyInfo) -> ApplyFn:
    """The pure ``apply_fn(params, model_state, images, *, train) -> (logits, new_model_state)``."""

    def apply_fn(params: Params, model_state: ModelState, images: jax.Array, *, train: bool):
        model = merge_model(info, params, model_state)
        logits = model(images, train=bool(train))
        if not train:
            return logits, model_state
        return logits, _pure(nnx.state(model, nnx.BatchStat))

    apply_fn.apply_info = info  # type: ignore[attr-defined]
    return apply_fn


def split_model(model: nnx.Module) -> tuple[ApplyFn, Params, ModelState]:
    """Split ``model`` into ``(apply_fn, params, model_state)``; see the module docstring."""
    graphdef, param_state, stat_state, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    info = ApplyInfo(graphdef, param_state, stat_state, rest)
    return make_apply_fn(info), _pure(param_state), _pure(stat_state)
