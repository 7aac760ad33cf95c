"""TOFU's metric formulas on hand-computed cases and properties."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import ks_2samp

from rosu_jax.tasks.tofu.metrics import (
    extraction_strength,
    forget_quality,
    length_normalised_probability,
    model_utility,
    probability_score,
    rouge_l_recall,
    truth_ratio,
    truth_ratio_score,
)

NLL = st.floats(0.0, 20.0)


def test_length_normalised_probability():
    np.testing.assert_allclose(length_normalised_probability([0.0, math.log(2)]), [1.0, 0.5])


def test_truth_ratio_is_geometric_mean_of_perturbed_over_paraphrase():
    # P̄_para = e^-1; the perturbed answers' mean NLL is 3, so P̄_pert = e^-3 (not the mean of e^-2 and e^-4)
    np.testing.assert_allclose(truth_ratio([1.0], [[2.0, 4.0]]), [math.exp(-2.0)])
    np.testing.assert_allclose(truth_ratio([3.0, 0.5], [[1.0, 1.0], [0.5, 0.5]]), [math.exp(2.0), 1.0])


def test_probability_plain_and_normalised_over_perturbed():
    assert probability_score([math.log(2), math.log(4)]) == pytest.approx(0.375)
    # real authors / world facts: 0.5 / (0.5 + 3 × 0.25)
    assert probability_score([math.log(2)], [[math.log(4)] * 3]) == pytest.approx(0.4)


def test_truth_ratio_score_forget_and_other_splits():
    r = [0.5, 2.0]
    assert truth_ratio_score(r, forget=True) == pytest.approx(0.5)  # min(R, 1/R) = 0.5, 0.5
    assert truth_ratio_score(r, forget=False) == pytest.approx(0.25)  # max(0, 1 - R) = 0.5, 0


@settings(max_examples=50, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 20), elements=NLL), st.integers(1, 5), st.data())
def test_scores_lie_in_unit_interval(para, k, data):
    perturbed = data.draw(hnp.arrays(np.float64, (len(para), k), elements=NLL))
    r = truth_ratio(para, perturbed)
    assert 0.0 <= truth_ratio_score(r, forget=True) <= 1.0
    assert 0.0 <= truth_ratio_score(r, forget=False) <= 1.0
    assert 0.0 <= probability_score(para, perturbed) <= 1.0


def test_model_utility_is_the_harmonic_mean_of_nine():
    assert model_utility([1.0] * 8 + [0.25]) == pytest.approx(9 / (8 + 4))
    assert model_utility([0.5] * 8 + [0.0]) == 0.0
    with pytest.raises(ValueError, match="9 values"):
        model_utility([0.5] * 8)
    with pytest.raises(ValueError, match="non-negative"):
        model_utility([0.5] * 8 + [-0.1])


def test_forget_quality_is_the_two_sided_ks_p_value():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(size=50), rng.lognormal(0.5, size=50)
    assert forget_quality(a, b) == ks_2samp(a, b).pvalue
    assert forget_quality(a, b) == ks_2samp(1 / a, 1 / b).pvalue  # the reference code tested 1/R
    assert forget_quality(a, a) == 1.0


def test_forget_quality_refuses_different_items():
    with pytest.raises(ValueError, match=r"\(3,\) truth ratios, the unlearned model's \(4,\)"):
        forget_quality(np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match=r"1 of 3 forget items differ .* item 2, 'c' vs 'z'"):
        forget_quality(np.ones(3), np.ones(3), prompts=["a", "b", "c"], retain_prompts=["a", "b", "z"])


def test_rouge_l_recall_as_tofu_scores_it():
    np.testing.assert_allclose(
        rouge_l_recall(["the cat sat", "running cats", "x"], ["the cat", "they run a cat", "y"]), [2 / 3, 1.0, 0.0]
    )
    with pytest.raises(ValueError, match="2 answers but 1 generations"):
        rouge_l_recall(["a", "b"], ["a"])


def test_extraction_strength_hand_cases():
    labels = np.array([5, 6, 7, 8])
    assert extraction_strength(labels, labels) == 1.0  # full match: k = 0
    assert extraction_strength([5, 6, 7, 0], labels) == 0.0  # last token wrong: no suffix matches, k = T
    assert extraction_strength([0, 6, 7, 8], labels) == 0.75  # matches from k = 1
    assert extraction_strength([5, 0, 7, 8], labels) == 0.5


def test_extraction_strength_padded_batch_ignores_prompt_and_padding():
    labels = np.array([[-100, -100, 5, 6, 7, -100], [-100, 3, 4, -100, -100, -100]])
    preds = np.array([[9, 9, 0, 6, 7, 9], [9, 3, 4, 9, 9, 9]])
    np.testing.assert_allclose(extraction_strength(preds, labels), [2 / 3, 1.0])
    with pytest.raises(ValueError, match="no answer tokens"):
        extraction_strength(preds, np.full_like(labels, -100))
    with pytest.raises(ValueError, match="differ in shape"):
        extraction_strength(preds[:1], labels)


def _es_by_definition(pred, labels):
    answer = [(p, y) for p, y in zip(pred, labels, strict=True) if y != -100]
    t = len(answer)
    k = next(k for k in range(t + 1) if all(p == y for p, y in answer[k:]))
    return 1.0 - k / t


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 4), st.integers(1, 12), st.data())
def test_extraction_strength_matches_the_definition(batch, length, data):
    labels = data.draw(hnp.arrays(np.int64, (batch, length), elements=st.sampled_from([-100, 1, 2])))
    labels[:, -1] = 1  # every row keeps an answer token
    preds = data.draw(hnp.arrays(np.int64, (batch, length), elements=st.sampled_from([1, 2])))
    es = extraction_strength(preds, labels)
    assert es.shape == (batch,)
    assert np.all((es >= 0.0) & (es <= 1.0))
    np.testing.assert_allclose(es, [_es_by_definition(p, y) for p, y in zip(preds, labels, strict=True)])
