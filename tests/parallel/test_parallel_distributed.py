"""Multi-process helpers: initialisation, per-host slices of the global batch, global arrays."""

import jax
import numpy as np
import pytest

import rosu_jax.parallel.distributed as distributed
from rosu_jax.parallel import (
    batch_sharding,
    host_batch_slice,
    host_local_batch,
    initialize,
    make_global_batch,
    make_mesh,
    shard_batch,
)


def global_batch(size=32):
    rng = np.random.default_rng(0)
    return {
        "image": rng.normal(size=(size, 8, 8, 1)).astype(np.float32),
        "label": rng.integers(0, 10, size=size).astype(np.int32),
    }


@pytest.mark.parametrize("size, count", [(32, 2), (64, 2), (30, 3), (8, 8), (5, 1)])
def test_host_slices_cover_the_global_batch_once_in_order(size, count):
    slices = [host_batch_slice(size, p, count) for p in range(count)]
    rows = np.concatenate([np.arange(size)[s] for s in slices])
    np.testing.assert_array_equal(rows, np.arange(size))  # each row exactly once, disjoint, in process order
    assert {s.stop - s.start for s in slices} == {size // count}
    assert all(s.step is None for s in slices)


def test_host_batch_slice_values_and_errors():
    assert host_batch_slice(32, 0, 2) == slice(0, 16)
    assert host_batch_slice(32, 1, 2) == slice(16, 32)
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        host_batch_slice(32, 0, 3)
    with pytest.raises(ValueError, match="process_index must be in 0..1"):
        host_batch_slice(32, 2, 2)
    with pytest.raises(ValueError, match="process_count must be >= 1"):
        host_batch_slice(32, 0, 0)
    with pytest.raises(ValueError, match="global_batch_size must be >= 1"):
        host_batch_slice(0, 0, 1)
    with pytest.raises(ValueError, match="must be an integer"):
        host_batch_slice(32.0, 0, 2)


def test_host_local_batch_for_two_simulated_processes():
    batch = global_batch(32)
    parts = [host_local_batch(batch, p, 2) for p in range(2)]
    for p, part in enumerate(parts):
        assert part.keys() == batch.keys()
        assert part["image"].shape == (16, 8, 8, 1) and part["label"].shape == (16,)
        np.testing.assert_array_equal(part["label"], batch["label"][16 * p : 16 * (p + 1)])
        # image and label rows stay paired
        np.testing.assert_array_equal(part["image"], batch["image"][16 * p : 16 * (p + 1)])
    for key in batch:
        np.testing.assert_array_equal(np.concatenate([part[key] for part in parts]), batch[key])
    # deterministic: the same call gives the same rows
    np.testing.assert_array_equal(host_local_batch(batch, 1, 2)["label"], parts[1]["label"])
    # defaults: this (single) process gets everything
    np.testing.assert_array_equal(host_local_batch(batch)["image"], batch["image"])
    with pytest.raises(ValueError, match="not divisible by the 3 processes"):
        host_local_batch(batch, 0, 3)
    with pytest.raises(ValueError, match="different leading"):
        host_local_batch({"image": batch["image"], "label": batch["label"][:8]}, 0, 2)


@pytest.mark.parametrize("spec", ["data=8", "data=2,fsdp=4"])
def test_make_global_batch_single_process_equals_device_put(spec):
    mesh = make_mesh(spec)
    batch = global_batch(32)
    made = make_global_batch(host_local_batch(batch), mesh)
    put = shard_batch(batch, mesh)
    for key in batch:
        assert made[key].shape == batch[key].shape and made[key].dtype == batch[key].dtype
        assert made[key].sharding == batch_sharding(mesh) == put[key].sharding
        np.testing.assert_array_equal(np.asarray(made[key]), np.asarray(put[key]))
        for a, b in zip(made[key].addressable_shards, put[key].addressable_shards, strict=True):
            assert a.device == b.device and a.index == b.index
            np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    with pytest.raises(ValueError, match="not divisible by the 8 data shards"):
        make_global_batch(global_batch(12), mesh)


def test_initialize_is_a_no_op_for_one_process():
    assert initialize() is False
    assert initialize(num_processes=1) is False
    assert initialize(num_processes=1, process_id=0) is False
    with pytest.raises(ValueError, match="positive integer"):
        initialize(num_processes=0)


def test_initialize_calls_jax_once(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed, "_initialized", False)
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args, **kwargs: calls.append((args, kwargs)))
    with pytest.raises(ValueError, match="coordinator_address"):
        initialize(num_processes=2, process_id=0)
    with pytest.raises(ValueError, match="process_id must be in 0..1"):
        initialize("localhost:1234", num_processes=2, process_id=2)
    assert calls == []
    assert initialize("localhost:1234", num_processes=2, process_id=1) is True
    assert initialize("localhost:1234", num_processes=2, process_id=1) is True  # idempotent
    assert initialize() is True
    assert calls == [(("localhost:1234", 2, 1), {})]


def test_initialize_auto_detect(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed, "_initialized", False)
    monkeypatch.setattr(jax.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(jax.distributed, "initialize", lambda *args, **kwargs: calls.append((args, kwargs)))
    assert initialize(auto_detect=True, local_device_ids=[0]) is True
    assert calls == [((None, None, None), {"local_device_ids": [0]})]
