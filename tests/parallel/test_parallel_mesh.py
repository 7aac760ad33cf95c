"""Mesh specs, meshes, and the FSDP parameter-sharding rule."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from rosu_jax.parallel import (
    batch_sharding,
    leaf_partition_spec,
    make_mesh,
    num_batch_shards,
    param_sharding,
    parse_mesh_spec,
    replicated,
    shard_batch,
    shard_state,
    state_sharding,
)
from rosu_jax.steps.state import UnlearnState


def test_eight_fake_devices():
    assert jax.device_count() == 8


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, {"data": 8, "fsdp": 1}),
        ("", {"data": 8, "fsdp": 1}),
        ("  ", {"data": 8, "fsdp": 1}),
        ("data=8", {"data": 8, "fsdp": 1}),
        ("data=2,fsdp=4", {"data": 2, "fsdp": 4}),
        (" fsdp = 4 , data = 2 ", {"data": 2, "fsdp": 4}),
        ("data=1,fsdp=8", {"data": 1, "fsdp": 8}),
        ("fsdp=4", {"data": 2, "fsdp": 4}),
        ("fsdp=-1", {"data": 1, "fsdp": 8}),
        ("data=-1,fsdp=2", {"data": 4, "fsdp": 2}),
        ("data=-1", {"data": 8, "fsdp": 1}),
    ],
)
def test_parse_mesh_spec(spec, expected):
    result = parse_mesh_spec(spec)
    assert result == expected
    assert list(result) == ["data", "fsdp"]


def test_parse_mesh_spec_with_explicit_device_count():
    assert parse_mesh_spec("data=2,fsdp=2", num_devices=4) == {"data": 2, "fsdp": 2}
    assert parse_mesh_spec(None, num_devices=1) == {"data": 1, "fsdp": 1}


@pytest.mark.parametrize(
    "spec, match",
    [
        ("data=4", "gives 4 device.* but there are 8.*data=8"),
        ("data=2,fsdp=2", "there are 8"),
        ("data=16", "there are 8"),
        ("fsdp=3", "does not fit 8 device"),
        ("model=8", "unknown axis 'model'"),
        ("data=8,data=1", "given twice"),
        ("data", "not 'axis=size'"),
        ("data=", "not 'axis=size'"),
        ("=8", "not 'axis=size'"),
        ("data=two", "not an integer"),
        ("data=0,fsdp=8", ">= 1 or -1"),
        ("data=-2", ">= 1 or -1"),
        ("data=-1,fsdp=-1", "at most one axis"),
        ("data=8,", "not 'axis=size'"),
    ],
)
def test_parse_mesh_spec_errors(spec, match):
    with pytest.raises(ValueError, match=match):
        parse_mesh_spec(spec)


def test_parse_mesh_spec_rejects_non_strings():
    with pytest.raises(ValueError, match="must be a string"):
        parse_mesh_spec(8)


@pytest.mark.parametrize("spec, shape", [(None, (8, 1)), ("data=8", (8, 1)), ("data=2,fsdp=4", (2, 4))])
def test_make_mesh(spec, shape):
    mesh = make_mesh(spec)
    assert mesh.axis_names == ("data", "fsdp")
    assert tuple(mesh.shape.values()) == shape
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    assert mesh.devices.size == 8 and num_batch_shards(mesh) == 8


def test_make_mesh_on_given_devices_and_one_device():
    devices = jax.devices()
    mesh = make_mesh("data=2,fsdp=2", devices=devices[4:])
    assert mesh.devices.tolist() == [[devices[4], devices[5]], [devices[6], devices[7]]]
    single = make_mesh(devices=devices[:1])
    assert dict(single.shape) == {"data": 1, "fsdp": 1} and num_batch_shards(single) == 1
    x = jax.device_put(np.arange(6.0, dtype=np.float32).reshape(3, 2), batch_sharding(single))
    assert x.sharding.device_set == {devices[0]}
    with pytest.raises(ValueError, match="there are 4"):
        make_mesh("data=8", devices=devices[:4])


def test_batch_sharding_and_replicated():
    mesh = make_mesh("data=2,fsdp=4")
    assert batch_sharding(mesh).spec == P(("data", "fsdp"))
    assert replicated(mesh).spec == P()
    batch = {"image": np.zeros((16, 8, 8, 1), np.float32), "label": np.arange(16, dtype=np.int32)}
    placed = shard_batch(batch, mesh)
    assert {s.data.shape for s in placed["image"].addressable_shards} == {(2, 8, 8, 1)}
    # shard i holds rows 2i, 2i+1: device order data-major, then fsdp
    for shard in placed["label"].addressable_shards:
        assert shard.data.shape == (2,)
    np.testing.assert_array_equal(np.asarray(placed["label"]), batch["label"])


def resnet_like_shapes():
    """Leaf shapes of a CIFAR ResNet-18 (no need to build it): convs HWIO, BatchNorm vectors, the head."""
    shapes = {"stem": {"kernel": (3, 3, 3, 64), "bn_scale": (64,)}}
    c_in = 64
    for stage, width in enumerate((64, 128, 256, 512)):
        shapes[f"stage{stage}"] = {
            "conv1": (3, 3, c_in, width),
            "conv2": (3, 3, width, width),
            "bn": (width,),
            **({"shortcut": (1, 1, c_in, width)} if c_in != width else {}),
        }
        c_in = width
    shapes["head"] = {"kernel": (512, 10), "bias": (10,)}
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s, jnp.float32), shapes, is_leaf=lambda x: isinstance(x, tuple))


def test_param_sharding_rule_on_resnet_shapes():
    tree = resnet_like_shapes()
    specs = jax.tree.map(lambda s: s.spec, param_sharding(make_mesh("data=2,fsdp=4"), tree))
    assert specs["stem"] == {"kernel": P(), "bn_scale": P()}  # 1,728 elements < 2**14
    assert specs["stage0"]["conv1"] == P(None, None, None, "fsdp")  # 36,864: largest dim (64, tie -> last)
    assert specs["stage1"]["conv1"] == P(None, None, None, "fsdp")  # (3,3,64,128): 128
    assert specs["stage1"]["shortcut"] == P()  # 8,192 elements
    assert specs["stage2"]["shortcut"] == P(None, None, None, "fsdp")  # (1,1,128,256) = 32,768
    assert specs["stage3"]["conv2"] == P(None, None, None, "fsdp")
    assert specs["stage3"]["bn"] == P()
    assert specs["head"] == {"kernel": P(), "bias": P()}  # 5,120 elements

    # a lower threshold also shards the head, along its 512 rows (10 is not divisible by 4)
    small = jax.tree.map(lambda s: s.spec, param_sharding(make_mesh("data=2,fsdp=4"), tree, min_size=1024))
    assert small["head"] == {"kernel": P("fsdp"), "bias": P()}
    assert small["stem"] == {"kernel": P(None, None, None, "fsdp"), "bn_scale": P()}  # 1,728 >= 1024
    # without an fsdp axis everything is replicated
    dp = param_sharding(make_mesh("data=8"), tree, min_size=1)
    assert all(s.spec == P() for s in jax.tree.leaves(dp))


@pytest.mark.parametrize(
    "shape, fsdp, expected",
    [
        ((24, 1000), 4, P(None, "fsdp")),
        ((1002, 24), 4, P(None, "fsdp")),  # largest dim not divisible: next largest
        ((1002, 6), 4, P()),  # none divisible
        ((64, 64), 8, P(None, "fsdp")),  # ties go to the last axis
        ((96, 3, 3), 3, P("fsdp")),
        ((), 4, P()),
        ((1 << 20,), 1, P()),
        ((128,), 4, P()),  # too small
    ],
)
def test_leaf_partition_spec(shape, fsdp, expected):
    assert leaf_partition_spec(shape, fsdp, min_size=256) == expected


def test_param_sharding_applies_to_optimizer_state_by_shape():
    mesh = make_mesh("data=1,fsdp=8")
    params = {"w": jnp.zeros((64, 32)), "b": jnp.zeros((32,))}
    opt_state = optax.chain(optax.add_decayed_weights(1e-4), optax.sgd(0.1, momentum=0.9)).init(params)
    shardings = param_sharding(mesh, opt_state, min_size=256)
    trace = shardings[1][0].trace
    assert trace["w"].spec == P("fsdp") and trace["b"].spec == P()

    model_state = {"bn": {"mean": jnp.zeros((32,))}, "frozen": {"w": jnp.zeros((64, 32))}}
    state = UnlearnState(
        params,
        model_state,
        opt_state,
        jnp.zeros((), jnp.int32),
        {"mask": {"w": jnp.ones((64, 32)), "b": jnp.ones((32,))}},
    )
    placed = shard_state(state, mesh, min_size=256)
    assert placed.params["w"].sharding == NamedSharding(mesh, P("fsdp"))
    assert placed.opt_state[1][0].trace["w"].sharding == NamedSharding(mesh, P("fsdp"))
    assert placed.extras["mask"]["w"].sharding == NamedSharding(mesh, P("fsdp"))
    assert placed.model_state["bn"]["mean"].sharding.is_fully_replicated  # small statistics: replicated
    assert placed.model_state["frozen"]["w"].sharding == NamedSharding(mesh, P("fsdp"))  # frozen weights: like params
    assert placed.step.sharding.is_fully_replicated
    assert {s.data.shape for s in placed.params["w"].addressable_shards} == {(8, 32)}
    expected = state_sharding(state, mesh, min_size=256)
    assert jax.tree.structure(expected) == jax.tree.structure(state)
    no_extras = shard_state(state._replace(extras=None), mesh)
    assert no_extras.extras is None and no_extras.params["w"].sharding.is_fully_replicated
