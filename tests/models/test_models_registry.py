import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax.models import build_model, count_params


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="resnet18.*small_cnn|small_cnn.*resnet18"):
        build_model("vgg", 10, 3)


def test_build_small_cnn_seeded():
    a = build_model("small_cnn", 10, 1, seed=1)
    b = build_model("small_cnn", 10, 1, seed=1)
    c = build_model("small_cnn", 10, 1, seed=2)
    np.testing.assert_array_equal(a[1]["conv0"]["kernel"], b[1]["conv0"]["kernel"])
    assert not np.allclose(a[1]["conv0"]["kernel"], c[1]["conv0"]["kernel"])
    logits, _ = a[0](a[1], a[2], jnp.zeros((2, 8, 8, 1)), train=False)
    assert logits.shape == (2, 10)


def test_kwargs_forwarded_and_count():
    _, params, _ = build_model("small_cnn", 3, 1, widths=(4,), hidden=5)
    # conv 3*3*1*4, bn 2*4, fc1 4*5+5, fc2 5*3+3
    assert count_params(params) == 36 + 8 + 25 + 18
    assert count_params({"a": jnp.ones((2, 3)), "b": [jnp.ones(4)]}) == 10


def test_numpy_init_statistics():
    _, params, state = build_model("resnet18", 10, 3, seed=0)
    k = np.asarray(params["layer4_block1"]["conv2"]["kernel"])
    np.testing.assert_allclose(k.std(), np.sqrt(2.0 / (9 * 512)), rtol=0.02)
    assert np.abs(k).max() <= 2.0 * np.sqrt(2.0 / (9 * 512)) / 0.8796 + 1e-6
    fc = np.asarray(params["fc"]["kernel"])
    np.testing.assert_allclose(fc.std(), np.sqrt(1.0 / 512), rtol=0.05)
    np.testing.assert_array_equal(state["stem_bn"]["var"], 1.0)


def test_bad_init_option():
    with pytest.raises(ValueError, match="init"):
        build_model("small_cnn", 10, 1, init="zeros")
