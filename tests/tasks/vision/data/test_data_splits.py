"""Forget/retain/test split rules for class-wise and random forgetting."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rosu_jax.tasks.vision.data import ForgetSplit, ImageDataset, classwise_split, load_digits, make_split, random_split


@pytest.fixture(scope="module")
def digits():
    return load_digits(seed=0)


def _toy(n_train, labels_train=None, n_test=6, k=3):
    y_tr = np.arange(n_train) % k if labels_train is None else np.asarray(labels_train)
    return ImageDataset(
        "toy",
        np.zeros((len(y_tr), 2, 2, 1), np.uint8),
        y_tr,
        np.zeros((n_test, 2, 2, 1), np.uint8),
        np.arange(n_test) % k,
        tuple(str(i) for i in range(k)),
    )


def _check_partition(split: ForgetSplit, n_train: int):
    for a in (split.forget_idx, split.retain_idx, split.test_idx):
        assert a.dtype == np.int64 and np.all(np.diff(a) > 0)
    assert np.intersect1d(split.forget_idx, split.retain_idx).size == 0
    assert np.array_equal(np.union1d(split.forget_idx, split.retain_idx), np.arange(n_train))


def test_classwise_default_forgets_exactly_class_zero(digits):
    s = classwise_split(digits)
    assert s.scenario == "classwise" and s.forget_classes == (0,) and s.fraction is None and s.seed is None
    assert np.array_equal(s.forget_idx, np.flatnonzero(digits.y_train == 0))
    assert not np.any(digits.y_train[s.retain_idx] == 0)
    assert np.array_equal(s.test_idx, np.flatnonzero(digits.y_test != 0))
    _check_partition(s, digits.x_train.shape[0])


def test_classwise_several_classes(digits):
    s = make_split(digits, "classwise", forget_class=[3, np.int64(1), 3])
    assert s.forget_classes == (1, 3)
    assert set(np.unique(digits.y_train[s.forget_idx])) == {1, 3}
    assert not np.isin(digits.y_test[s.test_idx], [1, 3]).any()
    assert s.test_idx.size == np.count_nonzero(~np.isin(digits.y_test, [1, 3]))
    parts = s.subsets(digits)
    assert parts["forget"][0].shape[0] == s.num_forget and parts["retain"][1].shape == (s.num_retain,)


@pytest.mark.parametrize(
    ("classes", "match"),
    [
        (12, "class 12 is not in 0..9 for digits"),
        (-1, "class -1 is not in 0..9 for digits"),
        ([], "classes is empty"),
        (True, "integer class index"),
        (list(range(10)), "leaves no retain set"),
    ],
)
def test_classwise_errors(digits, classes, match):
    with pytest.raises(ValueError, match=match):
        classwise_split(digits, classes)


def test_classwise_empty_forget_set():
    ds = _toy(6, labels_train=[0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="forget set is empty"):
        classwise_split(ds, 2)


def test_random_split_size_seed_and_disjointness(digits):
    s = random_split(digits, fraction=0.1, seed=0)
    n = digits.x_train.shape[0]
    assert s.num_forget == round(0.1 * n) and s.num_retain == n - s.num_forget
    assert s.scenario == "random" and s.fraction == 0.1 and s.seed == 0 and s.forget_classes == ()
    assert np.array_equal(s.test_idx, np.arange(digits.x_test.shape[0]))
    _check_partition(s, n)
    same = make_split(digits, "random", fraction=0.1, seed=0)
    assert np.array_equal(s.forget_idx, same.forget_idx)
    assert not np.array_equal(s.forget_idx, random_split(digits, 0.1, seed=1).forget_idx)


@pytest.mark.parametrize(
    ("fraction", "match"),
    [(0.0, r"in \(0, 1\)"), (1.0, r"in \(0, 1\)"), (-0.2, r"in \(0, 1\)"), (1e-5, "empty forget set")],
)
def test_random_split_fraction_errors(digits, fraction, match):
    with pytest.raises(ValueError, match=match):
        random_split(digits, fraction)


def test_random_split_all_but_nothing_left():
    with pytest.raises(ValueError, match="leaves no retain set"):
        random_split(_toy(3), fraction=0.9)


def test_make_split_unknown_scenario(digits):
    with pytest.raises(ValueError, match="unknown scenario 'class'; use one of classwise, random"):
        make_split(digits, "class")


def test_forget_split_rejects_overlap():
    with pytest.raises(ValueError, match="overlap"):
        ForgetSplit(np.array([1, 2]), np.array([2, 3]), np.array([0]), "random")


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 300), fraction=st.floats(0.01, 0.99), seed=st.integers(0, 2**31))
def test_random_split_properties(n, fraction, seed):
    ds = _toy(n)
    k = round(fraction * n)
    if k in (0, n):
        with pytest.raises(ValueError):
            random_split(ds, fraction, seed)
        return
    s = random_split(ds, fraction, seed)
    assert s.num_forget == k
    _check_partition(s, n)
    assert np.array_equal(s.forget_idx, random_split(ds, fraction, seed).forget_idx)
