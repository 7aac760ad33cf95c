"""Multi-process (multi-host) runs: initialisation and per-host loading of the global batch.

Every host builds the *same* global batch order (the batching in ``rosu_jax.tasks.vision.data`` is a pure function of
the seed), but materialises only its own contiguous slice of each global batch::

    initialize(coordinator_address="10.0.0.1:1234", num_processes=2, process_id=rank)
    mesh = make_mesh("data=-1")                                   # all devices of all hosts
    for global_batch in batches:                                  # same order on every host
        local = host_local_batch(global_batch)                    # rows of this host only
        batch = make_global_batch(local, mesh)                    # one global jax.Array per leaf

(With a lazy loader, index the dataset with ``host_batch_slice`` instead of slicing a materialised batch.)
Process p holds rows ``host_batch_slice(B, p, P)`` of every global batch of size B; ``make_global_batch``
checks that this process's devices cover exactly those rows of the mesh's batch sharding.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from rosu_jax.core.types import PyTree
from rosu_jax.parallel.mesh import _check_batch, batch_sharding, num_batch_shards

_initialized = False


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    auto_detect: bool = False,
    **kwargs: Any,
) -> bool:
    """Call ``jax.distributed.initialize`` once; returns whether the distributed runtime is on.

    A no-op (returns False) for a single process: ``num_processes`` in ``(None, 1)`` and ``auto_detect``
    False. ``auto_detect=True`` lets JAX read the cluster environment (SLURM, Kubernetes, Cloud TPU, ...) for
    whatever is left as None. Calling it again (from here or after JAX was initialised elsewhere) does nothing.
    Extra keyword arguments go to ``jax.distributed.initialize`` (e.g. ``local_device_ids``).
    Must run before any other JAX call that touches devices.
    """
    global _initialized
    if _initialized or jax.distributed.is_initialized():
        _initialized = True
        return True
    if num_processes is not None and (isinstance(num_processes, bool) or int(num_processes) < 1):
        raise ValueError(f"num_processes must be a positive integer, got {num_processes!r}.")
    if num_processes in (None, 1) and not auto_detect:
        return False
    if num_processes is not None and num_processes > 1 and not auto_detect:
        if coordinator_address is None or process_id is None:
            raise ValueError(
                f"num_processes={num_processes} needs coordinator_address ('host:port' of process 0) and "
                "process_id (this process's rank), or auto_detect=True on a supported cluster."
            )
        if not 0 <= int(process_id) < num_processes:
            raise ValueError(f"process_id must be in 0..{num_processes - 1}, got {process_id!r}.")
    jax.distributed.initialize(coordinator_address, num_processes, process_id, **kwargs)
    _initialized = True
    return True


def _check_process(process_index: int, process_count: int) -> None:
    for name, value in (("process_index", process_index), ("process_count", process_count)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}.")
    if process_count < 1:
        raise ValueError(f"process_count must be >= 1, got {process_count}.")
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index must be in 0..{process_count - 1}, got {process_index}.")


def host_batch_slice(global_batch_size: int, process_index: int, process_count: int) -> slice:
    """Rows of a global batch that process ``process_index`` of ``process_count`` loads: the contiguous
    block ``[p * B/P, (p + 1) * B/P)``. ``B`` must be divisible by ``P``."""
    _check_process(process_index, process_count)
    if isinstance(global_batch_size, bool) or not isinstance(global_batch_size, int | np.integer):
        raise ValueError(f"global_batch_size must be an integer, got {global_batch_size!r}.")
    if global_batch_size < 1:
        raise ValueError(f"global_batch_size must be >= 1, got {global_batch_size}.")
    if global_batch_size % process_count:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the {process_count} processes; use a "
            f"multiple of {process_count} (e.g. {process_count * max(1, global_batch_size // process_count)})."
        )
    per_host = global_batch_size // process_count
    return slice(process_index * per_host, (process_index + 1) * per_host)


def host_local_batch(
    global_batch: PyTree, process_index: int | None = None, process_count: int | None = None
) -> PyTree:
    """This host's slice (``host_batch_slice``) of every leaf of a global batch dict (numpy arrays).

    ``process_index``/``process_count`` default to ``jax.process_index()``/``jax.process_count()``.
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    size = _check_batch(global_batch, 1, "global batch")
    rows = host_batch_slice(size, process_index, process_count)
    return jax.tree.map(lambda x: x[rows], global_batch)


def _process_rows(mesh: Mesh, global_size: int) -> tuple[int, int]:
    """The [start, stop) rows of the batch sharding held by this process's devices (must be contiguous)."""
    index_map = batch_sharding(mesh).addressable_devices_indices_map((global_size,))
    starts = sorted({idx[0].indices(global_size)[:2] for idx in index_map.values()})
    start, stop = starts[0][0], starts[0][0]
    for lo, hi in starts:
        if lo != stop:
            raise ValueError(
                "this process's devices do not hold one contiguous block of the batch on this mesh; build the "
                "mesh with rosu_jax.parallel.make_mesh() (devices=None) so that each process's devices are "
                "adjacent along the batch axes."
            )
        stop = hi
    return start, stop


def make_global_batch(local_batch: PyTree, mesh: Mesh) -> PyTree:
    """Global ``jax.Array``s on ``batch_sharding(mesh)`` from each process's local rows
    (``jax.make_array_from_process_local_data``); single-process it equals ``shard_batch``.

    Every process passes the same number of rows, ``host_local_batch`` of the same global batch. Checks that
    the global size is divisible by ``data * fsdp`` and that this process's devices hold exactly rows
    ``host_batch_slice(global_size, jax.process_index(), jax.process_count())``.
    """
    local_size = _check_batch(local_batch, 1, "local batch")
    process_count = jax.process_count()
    global_size = local_size * process_count
    shards = num_batch_shards(mesh)
    if global_size % shards:
        raise ValueError(
            f"global batch size {global_size} ({local_size} rows x {process_count} process(es)) is not divisible "
            f"by the {shards} data shards of the mesh (data x fsdp); use a multiple of {shards}."
        )
    expected = host_batch_slice(global_size, jax.process_index(), process_count)
    start, stop = _process_rows(mesh, global_size)
    if (start, stop) != (expected.start, expected.stop):
        raise ValueError(
            f"on this mesh process {jax.process_index()} holds rows [{start}, {stop}) of the global batch, but "
            f"host_batch_slice gives [{expected.start}, {expected.stop}); build the mesh with "
            "rosu_jax.parallel.make_mesh() so that the device order follows the process order."
        )
    sharding = batch_sharding(mesh)
    return jax.tree.map(
        lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x), (global_size, *np.shape(x)[1:])),
        local_batch,
    )


__all__ = ["host_batch_slice", "host_local_batch", "initialize", "make_global_batch"]


def batch_placer(mesh: Mesh):
    """``global numpy batch -> global jax.Array batch on the mesh``: one process device_puts it; with several
    processes each keeps only its own rows (``host_local_batch``) and the global array is assembled."""
    from rosu_jax.parallel.mesh import shard_batch

    if jax.process_count() == 1:
        return lambda batch: shard_batch(batch, mesh)
    return lambda batch: make_global_batch(host_local_batch(batch), mesh)
