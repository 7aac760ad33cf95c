"""A sharded UnlearnState saved from one mesh restores onto another mesh, or one device, value for value."""

import jax
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rosu_jax.parallel import make_mesh, shard_state, state_sharding
from rosu_jax.runs.checkpoint import Checkpointer

SOURCE = "data=2,fsdp=4"
MIN_SIZE = 256


@pytest.fixture(scope="module")
def saved(trajectories, tmp_path_factory):
    """The ROSU state after the sharded trajectory on data=2,fsdp=4, saved with Checkpointer."""
    states, _, _ = trajectories.sharded("ROSU", SOURCE)
    state = states[-1]
    assert state.params["fc1"]["kernel"].sharding.spec == P(None, "fsdp")  # really saved from shards
    directory = tmp_path_factory.mktemp("ckpt")
    with Checkpointer(directory) as ckpt:
        ckpt.save(int(state.step), state, {"method": "ROSU", "mesh": SOURCE})
    return directory, state


def fresh_template(trajectories):
    stepper = trajectories.stepper("ROSU")
    return stepper.init(trajectories.params, trajectories.model_state)


@pytest.mark.parametrize("target", ["data=8", "data=1,fsdp=8", "one-device-mesh", "default-device"])
def test_restore_onto_another_mesh(trajectories, saved, target):
    directory, state = saved
    template = fresh_template(trajectories)
    if target == "default-device":
        template = jax.device_put(template, jax.devices()[0])
        expected = jax.tree.map(lambda x: x.sharding, template)
    else:
        mesh = make_mesh(devices=jax.devices()[:1]) if target == "one-device-mesh" else make_mesh(target)
        template = shard_state(template, mesh, min_size=MIN_SIZE)
        expected = state_sharding(template, mesh, min_size=MIN_SIZE)

    with Checkpointer(directory) as ckpt:
        restored, meta = ckpt.restore(template)
    assert meta == {"method": "ROSU", "mesh": SOURCE}
    assert jax.tree.structure(restored) == jax.tree.structure(state)
    for got, want, sharding in zip(
        jax.tree.leaves(restored), jax.tree.leaves(state), jax.tree.leaves(expected), strict=True
    ):
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # bit-exact (NaN == NaN)
        assert got.sharding.is_equivalent_to(sharding, got.ndim), (got.shape, got.sharding, sharding)
    if target == "data=1,fsdp=8":
        assert restored.params["fc1"]["kernel"].sharding.spec == P(None, "fsdp")
        assert {s.data.shape for s in restored.params["fc1"]["kernel"].addressable_shards} == {(16, 4)}
    elif target == "data=8":
        assert all(x.sharding.is_fully_replicated for x in jax.tree.leaves(restored))
    else:
        assert all(x.sharding.device_set == {jax.devices()[0]} for x in jax.tree.leaves(restored))
