import numpy as np
import pytest

from rosu_jax.tasks.vision.evaluation import mia_efficacy


@pytest.fixture
def shadow():
    rng = np.random.default_rng(0)
    retain = rng.uniform(0.97, 1.0, 300)
    test = rng.uniform(0.0, 0.3, 100)
    return retain, test, rng


def test_forgotten_examples_look_like_non_members(shadow):
    retain, test, rng = shadow
    assert mia_efficacy(retain, test, rng.uniform(0.05, 0.2, 50)) == 100.0


def test_remembered_examples_look_like_members(shadow):
    retain, test, _ = shadow
    assert mia_efficacy(retain, test, np.full(50, 0.99)) == 0.0


def test_mixed_forget_set(shadow):
    retain, test, _ = shadow
    forget = np.concatenate([np.full(30, 0.1), np.full(10, 0.995)])
    assert mia_efficacy(retain, test, forget) == pytest.approx(75.0)


def test_uses_first_n_retain_only(shadow):
    _, test, _ = shadow
    # Only the first len(test) retain examples are members; the trailing low-confidence ones are ignored.
    retain = np.concatenate([np.full(100, 0.99), np.full(500, 0.1)])
    assert mia_efficacy(retain, test, np.full(5, 0.1)) == 100.0


def test_fewer_retain_than_test_uses_all(shadow):
    retain, test, _ = shadow
    assert mia_efficacy(retain[:20], test, np.full(5, 0.99)) == 0.0


@pytest.mark.parametrize("which", [0, 1, 2])
def test_empty_inputs_raise(shadow, which):
    retain, test, _ = shadow
    args = [retain, test, np.full(3, 0.5)]
    args[which] = np.array([])
    with pytest.raises(ValueError, match="empty"):
        mia_efficacy(*args)


def test_non_finite_raises(shadow):
    retain, test, _ = shadow
    with pytest.raises(ValueError, match="non-finite"):
        mia_efficacy(retain, test, np.array([np.nan]))
