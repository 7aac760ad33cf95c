import numpy as np
import pytest

from rosu_jax.tasks.vision.evaluation import (
    METRIC_DIRECTIONS,
    METRIC_KEYS,
    UnlearningMetrics,
    accuracy,
    avg_gap,
    compute_metrics,
    softmax,
    true_label_confidence,
)


def _logits_for(pred, num_classes=3):
    out = np.zeros((len(pred), num_classes), np.float32)
    out[np.arange(len(pred)), pred] = 5.0
    return out


def test_accuracy_percent():
    logits = _logits_for([0, 1, 2, 2])
    assert accuracy(logits, np.array([0, 1, 2, 0])) == 75.0
    with pytest.raises(ValueError):
        accuracy(logits, np.array([0, 1]))
    with pytest.raises(ValueError):
        accuracy(np.zeros((0, 3)), np.zeros((0,), np.int64))


def test_true_label_confidence_stable():
    logits = np.array([[1000.0, 0.0], [0.0, 0.0], [-1000.0, 1000.0]], np.float32)
    conf = true_label_confidence(logits, np.array([0, 1, 0]))
    np.testing.assert_allclose(conf, [1.0, 0.5, 0.0], atol=1e-12)
    assert np.all(np.isfinite(softmax(logits)))
    np.testing.assert_allclose(softmax(logits).sum(-1), 1.0)


def test_compute_metrics_ua_ra_ta():
    rng = np.random.default_rng(0)
    f_labels = np.array([0, 1, 2, 0])
    forget = _logits_for([0, 2, 2, 1])  # 2/4 correct -> UA 50
    r_labels = rng.integers(0, 3, 40)
    retain = _logits_for(r_labels)  # all correct -> RA 100
    t_labels = rng.integers(0, 3, 20)
    test = _logits_for(np.where(np.arange(20) < 15, t_labels, (t_labels + 1) % 3))  # 15/20 -> TA 75
    m = compute_metrics(forget, f_labels, retain, r_labels, test, t_labels)
    assert set(m) == set(METRIC_KEYS)
    assert m["UA"] == 50.0 and m["RA"] == 100.0 and m["TA"] == 75.0
    assert 0.0 <= m["MIA"] <= 100.0


def test_avg_gap_arithmetic():
    row = {"UA": 10.0, "RA": 90.0, "TA": 80.0, "MIA": 20.0}
    retrain = UnlearningMetrics(UA=12.0, RA=100.0, TA=85.0, MIA=13.0)
    assert avg_gap(row, retrain) == pytest.approx((2 + 10 + 5 + 7) / 4)
    assert avg_gap(row, retrain, keys=("UA",)) == pytest.approx(2.0)
    assert avg_gap(retrain, retrain) == 0.0
    with pytest.raises(ValueError):
        avg_gap(row, retrain, keys=())


def test_directions_documented():
    assert set(METRIC_KEYS) <= set(METRIC_DIRECTIONS)
    assert all("Retrain" in METRIC_DIRECTIONS[k] for k in METRIC_KEYS)
