"""Device meshes and shardings for unlearning steps: data parallelism and FSDP-style parameter sharding.

Every mesh has the two axes ``('data', 'fsdp')`` (size 1 where unused), both ``AxisType.Auto``:

* the leading (batch) dimension of every batch array is split over **both** axes (``batch_sharding``), so
  with ``data=2,fsdp=4`` each of the 8 devices holds 1/8 of the batch (FSDP is data parallelism too);
* parameters, and optimizer-state leaves that mirror them, are either replicated or split over ``'fsdp'``
  along one dimension (``param_sharding``); XLA's partitioner inserts the all-gathers/reduce-scatters.

Because the step is one ``jax.jit`` over global arrays, every inner product of the ROSU/UAM geometry
(⟨g_f, g_r⟩, ‖g_f‖, ‖g_r‖) is taken over the *global* gradients: the sharded step computes the same update as
the single-device step, up to float reassociation in the cross-device sums.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from rosu_jax.core.tree_math import SMALL_LEAF_SIZE
from rosu_jax.core.types import PyTree
from rosu_jax.steps.state import Stepper, UnlearnState

MESH_AXES = ("data", "fsdp")
BATCH_AXES = ("data", "fsdp")
# Leaves smaller than this stay replicated; the tree maths reduces exactly these small leaves together, so no
# sharded leaf is ever gathered for a reduction (one definition: rosu_jax.core.tree_math.SMALL_LEAF_SIZE).
DEFAULT_MIN_SHARD_SIZE = SMALL_LEAF_SIZE
_EXAMPLE = "e.g. 'data=8', 'data=2,fsdp=4' or 'fsdp=-1' (-1: the remaining devices)"


def parse_mesh_spec(spec: str | None, num_devices: int | None = None) -> dict[str, int]:
    """Parse ``"data=2,fsdp=4"`` into ``{'data': 2, 'fsdp': 4}`` (both axes always present).

    ``'fsdp'`` left out has size 1; ``'data'`` left out takes the remaining devices (``"fsdp=4"`` on 8
    devices -> data=2). One axis may be ``-1``: it takes the remaining devices. ``None`` or ``""`` puts every
    device on ``'data'``.
    ``num_devices`` defaults to ``jax.device_count()`` (all devices of all processes). The product of the
    sizes must equal ``num_devices``; a ``ValueError`` says how many devices there are otherwise.
    """
    n = jax.device_count() if num_devices is None else int(num_devices)
    if n < 1:
        raise ValueError(f"num_devices must be >= 1, got {num_devices!r}.")
    if spec is not None and not isinstance(spec, str):
        raise ValueError(f"mesh spec must be a string ({_EXAMPLE}), got {spec!r}.")
    if spec is None or not spec.strip():
        return {"data": n, "fsdp": 1}
    sizes: dict[str, int] = {}
    for token in spec.split(","):
        token = token.strip()
        name, sep, value = token.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise ValueError(f"bad mesh spec {spec!r}: {token!r} is not 'axis=size' ({_EXAMPLE}).")
        if name not in MESH_AXES:
            raise ValueError(f"bad mesh spec {spec!r}: unknown axis {name!r}; the axes are {MESH_AXES} ({_EXAMPLE}).")
        if name in sizes:
            raise ValueError(f"bad mesh spec {spec!r}: axis {name!r} is given twice.")
        try:
            size = int(value)
        except ValueError:
            raise ValueError(f"bad mesh spec {spec!r}: size {value!r} of axis {name!r} is not an integer.") from None
        if size == 0 or size < -1:
            raise ValueError(f"bad mesh spec {spec!r}: size of axis {name!r} must be >= 1 or -1, got {size}.")
        sizes[name] = size
    inferred = [name for name, size in sizes.items() if size == -1]
    if len(inferred) > 1:
        raise ValueError(f"bad mesh spec {spec!r}: at most one axis may be -1.")
    if not inferred and "data" not in sizes:
        inferred = ["data"]
    known = math.prod(size for name, size in sizes.items() if name not in inferred)
    if inferred:
        if n % known:
            raise ValueError(
                f"mesh spec {spec!r} does not fit {n} device(s): {known} does not divide {n} ({_EXAMPLE})."
            )
        sizes[inferred[0]] = n // known
    result = {axis: sizes.get(axis, 1) for axis in MESH_AXES}
    if math.prod(result.values()) != n:
        raise ValueError(
            f"mesh spec {spec!r} gives {math.prod(result.values())} device(s) but there are {n}: the axis sizes "
            f"must multiply to {n} (e.g. 'data={n}')."
        )
    return result


def make_mesh(spec: str | None = None, devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A ``Mesh`` with axes ``('data', 'fsdp')`` (``AxisType.Auto``) over ``devices`` (default: all).

    With ``devices=None`` it uses ``jax.make_mesh``, which orders the devices by topology and, across
    processes, by process (so process p holds the p-th contiguous block of the batch, see
    ``rosu_jax.parallel.distributed``). Given devices are used in the order given, data-major.
    """
    auto = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    if devices is None:
        sizes = parse_mesh_spec(spec)
        return jax.make_mesh(tuple(sizes[a] for a in MESH_AXES), MESH_AXES, axis_types=auto)
    devices = list(devices)
    sizes = parse_mesh_spec(spec, num_devices=len(devices))
    grid = np.empty(len(devices), dtype=object)
    grid[:] = devices
    return Mesh(grid.reshape(tuple(sizes[a] for a in MESH_AXES)), MESH_AXES, axis_types=auto)


def num_batch_shards(mesh: Mesh) -> int:
    """How many pieces the batch dimension is split into (``data * fsdp``)."""
    return math.prod(mesh.shape[a] for a in BATCH_AXES)


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) dimension split over ``('data', 'fsdp')``; the other dimensions whole."""
    return NamedSharding(mesh, P(BATCH_AXES))


def replicated(mesh: Mesh) -> NamedSharding:
    """The same full array on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def leaf_partition_spec(shape: Sequence[int], fsdp: int, min_size: int = DEFAULT_MIN_SHARD_SIZE) -> P:
    """The FSDP rule for one array shape: ``P()`` (replicated), or ``'fsdp'`` on the largest dimension whose
    size is divisible by ``fsdp`` (ties: the last such dimension) when ``fsdp > 1`` and the array has at
    least ``min_size`` elements."""
    shape = tuple(int(d) for d in shape)
    if fsdp <= 1 or not shape or math.prod(shape) < min_size:
        return P()
    candidates = [(d, i) for i, d in enumerate(shape) if d % fsdp == 0]
    if not candidates:
        return P()
    _, axis = max(candidates)
    return P(*([None] * axis + ["fsdp"]))


def param_sharding(mesh: Mesh, tree: PyTree, *, min_size: int = DEFAULT_MIN_SHARD_SIZE) -> PyTree:
    """A ``NamedSharding`` per leaf of ``tree`` (params, or any optimizer state mirroring them) by shape:
    see ``leaf_partition_spec``. Scalars and small leaves are replicated; ``None`` subtrees stay ``None``.
    Leaves may be arrays or ``jax.ShapeDtypeStruct``s."""
    fsdp = mesh.shape["fsdp"]
    return jax.tree.map(lambda x: NamedSharding(mesh, leaf_partition_spec(np.shape(x), fsdp, min_size)), tree)


def state_sharding(state: UnlearnState, mesh: Mesh, *, min_size: int = DEFAULT_MIN_SHARD_SIZE) -> UnlearnState:
    """The shardings ``shard_state`` uses, as an ``UnlearnState`` of ``NamedSharding``s: params, opt_state,
    model_state (BatchNorm statistics stay replicated, being small; frozen weights are sharded like params) and
    extras by ``param_sharding``; step replicated."""
    rep = replicated(mesh)
    return UnlearnState(
        params=param_sharding(mesh, state.params, min_size=min_size),
        model_state=param_sharding(mesh, state.model_state, min_size=min_size),
        opt_state=param_sharding(mesh, state.opt_state, min_size=min_size),
        step=jax.tree.map(lambda _: rep, state.step),
        extras=param_sharding(mesh, state.extras, min_size=min_size),
    )


def shard_state(state: UnlearnState, mesh: Mesh, *, min_size: int = DEFAULT_MIN_SHARD_SIZE) -> UnlearnState:
    """``jax.device_put`` every leaf of ``state`` onto ``state_sharding(state, mesh)``."""
    return jax.device_put(state, state_sharding(state, mesh, min_size=min_size))


def _check_batch(batch: PyTree, shards: int, what: str = "batch") -> int:
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in jax.tree.leaves(batch)}
    if None in sizes:
        raise ValueError(f"every leaf of the {what} needs a leading batch dimension; got a scalar leaf.")
    if len(sizes) > 1:
        raise ValueError(f"the leaves of the {what} have different leading (batch) sizes: {sorted(sizes)}.")
    size = sizes.pop() if sizes else 0
    if size % shards:
        raise ValueError(
            f"{what} size {size} is not divisible by the {shards} data shards of the mesh (data x fsdp); "
            f"use a {what} size that is a multiple of {shards}."
        )
    return size


def shard_batch(batch: PyTree, mesh: Mesh) -> PyTree:
    """Put a (numpy or jax) batch dict onto ``batch_sharding(mesh)``; single-process (for several processes
    use ``rosu_jax.parallel.make_global_batch`` on each host's slice). The batch size must be divisible by
    ``data * fsdp``."""
    _check_batch(batch, num_batch_shards(mesh))
    return jax.device_put(batch, batch_sharding(mesh))


def sharded_step(
    stepper: Stepper,
    mesh: Mesh,
    state_template: UnlearnState,
    *,
    min_size: int = DEFAULT_MIN_SHARD_SIZE,
    donate_state: bool = False,
    **jit_kwargs: Any,
):
    """Wrap ``stepper.step`` in ``jax.jit`` with explicit in/out shardings for ``mesh``.

    ``step(state, forget_batch, retain_batch, key) -> (state, metrics)``: the state goes in and comes out on
    ``state_sharding(state_template, mesh, min_size=min_size)`` (the layout ``shard_state`` produces with the
    same ``min_size``), both batches on ``batch_sharding(mesh)``, the key and every metric replicated. Because
    ``out_shardings`` equals the state's ``in_shardings``, the returned state can be fed straight back and the
    layout never drifts (and with ``donate_state`` its buffers are reused).

    The stepper may come from the registry with ``jit=True`` or ``jit=False``: an inner ``jax.jit`` is inlined
    into this one, so building it with ``jit=False`` only avoids a redundant wrapper. Pass numpy batches or
    arrays already on the batch sharding; pass a state placed by ``shard_state`` (arrays committed elsewhere
    are rejected by ``jit``). Other keyword arguments go to ``jax.jit`` (e.g. ``compiler_options``).
    """
    for name in ("in_shardings", "out_shardings", "donate_argnums", "donate_argnames"):
        if name in jit_kwargs:
            raise ValueError(f"sharded_step sets {name} itself; use min_size / donate_state instead.")
    state_shardings = state_sharding(state_template, mesh, min_size=min_size)
    batch = batch_sharding(mesh)
    rep = replicated(mesh)
    shards = num_batch_shards(mesh)
    jitted = jax.jit(
        stepper.step,
        in_shardings=(state_shardings, batch, batch, rep),
        out_shardings=(state_shardings, rep),
        donate_argnums=(0,) if donate_state else (),
        **jit_kwargs,
    )

    def step(state: UnlearnState, forget_batch, retain_batch, key: jax.Array):
        _check_batch(forget_batch, shards, "forget batch")
        _check_batch(retain_batch, shards, "retain batch")
        return jitted(state, forget_batch, retain_batch, key)

    step.jitted = jitted  # the underlying jax.jit object (e.g. for .lower())
    step.state_shardings = state_shardings
    return step


__all__ = [
    "BATCH_AXES",
    "DEFAULT_MIN_SHARD_SIZE",
    "MESH_AXES",
    "batch_sharding",
    "leaf_partition_spec",
    "make_mesh",
    "num_batch_shards",
    "param_sharding",
    "parse_mesh_spec",
    "replicated",
    "shard_batch",
    "shard_state",
    "sharded_step",
    "state_sharding",
]
