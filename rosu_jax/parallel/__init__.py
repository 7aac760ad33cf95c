"""Device meshes, shardings and multi-process batching for the unlearning steps (jit + NamedSharding only)."""

from rosu_jax.parallel.distributed import (
    batch_placer,
    host_batch_slice,
    host_local_batch,
    initialize,
    make_global_batch,
)
from rosu_jax.parallel.mesh import (
    BATCH_AXES,
    DEFAULT_MIN_SHARD_SIZE,
    MESH_AXES,
    batch_sharding,
    leaf_partition_spec,
    make_mesh,
    num_batch_shards,
    param_sharding,
    parse_mesh_spec,
    replicated,
    shard_batch,
    shard_state,
    sharded_step,
    state_sharding,
)

__all__ = [
    "BATCH_AXES",
    "DEFAULT_MIN_SHARD_SIZE",
    "MESH_AXES",
    "batch_placer",
    "batch_sharding",
    "host_batch_slice",
    "host_local_batch",
    "initialize",
    "leaf_partition_spec",
    "make_global_batch",
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
