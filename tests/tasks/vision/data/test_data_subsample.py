"""subsample_per_class keeps at most N training images per class, seeded; the test set is untouched."""

import numpy as np
import pytest

from rosu_jax.tasks.vision.data import load_digits, subsample_per_class


def test_subsample_per_class():
    data = load_digits(seed=0)
    small = subsample_per_class(data, 20, seed=1)
    counts = np.bincount(small.y_train, minlength=10)
    assert np.all(counts == 20)
    assert small.x_test is data.x_test and small.num_classes == data.num_classes
    again = subsample_per_class(data, 20, seed=1)
    np.testing.assert_array_equal(again.x_train, small.x_train)
    assert not np.array_equal(subsample_per_class(data, 20, seed=2).x_train, small.x_train)
    assert len(subsample_per_class(data, 10_000).y_train) == len(data.y_train)
    with pytest.raises(ValueError, match="per_class"):
        subsample_per_class(data, 0)
