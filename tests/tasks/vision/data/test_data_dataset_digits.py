"""ImageDataset validation, per-class holdout and the bundled digits loader."""

import numpy as np
import pytest

from rosu_jax.tasks.vision.data import ImageDataset, load_digits, per_class_holdout


def _arrays(n_train=6, n_test=3, shape=(4, 4, 3), k=3):
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    x_te = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
    return x_tr, np.arange(n_train) % k, x_te, np.arange(n_test) % k, tuple("abc"[:k])


def test_valid_dataset_properties_and_label_dtype():
    x_tr, y_tr, x_te, y_te, names = _arrays()
    ds = ImageDataset("toy", x_tr, y_tr.astype(np.int64), x_te, y_te, names)
    assert ds.num_classes == 3
    assert ds.image_shape == (4, 4, 3)
    assert ds.y_train.dtype == np.int32 and ds.y_test.dtype == np.int32
    assert ds.x_val is None and "train=6" in repr(ds)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"x_train": np.zeros((6, 4, 4, 3), np.float32)}, "uint8"),
        ({"x_train": np.zeros((6, 4, 4), np.uint8)}, "NHWC"),
        ({"y_train": np.array([0, 1, 2, 3, 0, 1])}, "outside 0..2"),
        ({"y_train": np.array([0, 1, 2])}, "3 labels but there are 6 images"),
        ({"y_test": np.array([0.0, 1.0, 2.0])}, "integer labels"),
        ({"x_test": np.zeros((3, 5, 5, 3), np.uint8)}, "x_train images have"),
        ({"x_val": np.zeros((2, 4, 4, 3), np.uint8)}, "given together"),
        ({"class_names": ("a", "a", "b")}, "duplicate"),
    ],
)
def test_invalid_dataset_raises(change, match):
    x_tr, y_tr, x_te, y_te, names = _arrays()
    kw = dict(name="toy", x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, class_names=names) | change
    with pytest.raises(ValueError, match=match):
        ImageDataset(**kw)


def test_per_class_holdout_counts_and_determinism():
    y = np.repeat(np.arange(4), 20)
    keep, held = per_class_holdout(y, 0.1, seed=3)
    assert np.array_equal(np.bincount(y[held]), [2, 2, 2, 2])
    assert np.array_equal(np.union1d(keep, held), np.arange(80)) and np.intersect1d(keep, held).size == 0
    assert np.array_equal(held, per_class_holdout(y, 0.1, seed=3)[1])
    assert not np.array_equal(held, per_class_holdout(y, 0.1, seed=4)[1])


def test_load_digits_shapes_and_scaling():
    ds = load_digits(seed=0)
    assert ds.name == "digits" and ds.num_classes == 10
    assert ds.x_train.shape == (1437, 8, 8, 1) and ds.x_test.shape == (360, 8, 8, 1)
    assert ds.x_train.dtype == np.uint8 and ds.x_train.max() == 255 and ds.x_train.min() == 0
    # stratified: every class holds ~20% of its images in the test set
    total = np.bincount(ds.y_train, minlength=10) + np.bincount(ds.y_test, minlength=10)
    assert np.all(np.abs(np.bincount(ds.y_test, minlength=10) - 0.2 * total) <= 1)


def test_load_digits_seeded():
    a, b, c = load_digits(seed=1), load_digits(seed=1), load_digits(seed=2)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)
