import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax.models import build_model
from rosu_jax.tasks.vision.evaluation import predict_logits


@pytest.fixture(scope="module")
def cnn():
    apply_fn, params, state = build_model("small_cnn", 10, 1, widths=(8, 16), hidden=16)
    # Non-trivial running statistics so eval mode differs from train mode.
    x = jnp.asarray(np.random.default_rng(1).normal(0.5, 2.0, size=(16, 8, 8, 1)), jnp.float32)
    _, state = jax.jit(apply_fn, static_argnames="train")(params, state, x, train=True)
    return apply_fn, params, state


def test_matches_direct_apply_with_normalize(cnn):
    apply_fn, params, state = cnn
    images = np.random.default_rng(0).integers(0, 256, size=(21, 8, 8, 1), dtype=np.uint8)
    normalize = lambda x: (x.astype(np.float32) / 255.0 - 0.5) / 0.25
    got = predict_logits(apply_fn, params, state, images, batch_size=8, normalize=normalize)
    want, _ = apply_fn(params, state, jnp.asarray(normalize(images)), train=False)
    assert got.shape == (21, 10) and got.dtype == np.float32 and isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, np.asarray(want), rtol=1e-4, atol=1e-4)


def test_uint8_without_normalize_scales_to_unit(cnn):
    apply_fn, params, state = cnn
    images = np.random.default_rng(2).integers(0, 256, size=(5, 8, 8, 1), dtype=np.uint8)
    got = predict_logits(apply_fn, params, state, images)
    floats = predict_logits(apply_fn, params, state, images.astype(np.float32) / 255.0)
    np.testing.assert_allclose(got, floats, rtol=1e-5, atol=1e-5)


def test_bad_inputs(cnn):
    apply_fn, params, state = cnn
    with pytest.raises(ValueError):
        predict_logits(apply_fn, params, state, np.zeros((0, 8, 8, 1), np.float32))
    with pytest.raises(ValueError):
        predict_logits(apply_fn, params, state, np.zeros((2, 8, 8, 1), np.float32), batch_size=0)
