"""TOFU's metrics, as the field defines them (Maini et al. 2024, "TOFU: A Task of Fictitious Unlearning for LLMs",
arXiv 2401.06121, and its reference code's aggregation, which produced the published numbers).

Per item (q, a) with answer tokens y_1..y_T (EOS included):

- mean NLL ℓ(a|q) = (1/T) Σ_t −log p(y_t | prompt, y_<t)   (the logs' ``avg_gt_loss``);
- length-normalised probability P̄(a|q) = exp(−ℓ(a|q));
- truth ratio R = P̄_pert / P̄_para with P̄_pert = exp(−mean_j ℓ(â_j|q)) over the perturbed (wrong) answers â_j —
  a geometric, not arithmetic, mean of their P̄ — and P̄_para = P̄ of the paraphrased answer (forget/retain) or of
  the original answer (real_authors/world_facts). Computed in log space: R = exp(ℓ_para − mean_j ℓ(â_j)).

Per split (means over items):

- Probability: forget/retain mean P̄(a|q); real_authors/world_facts mean P̄(a|q) / (P̄(a|q) + Σ_j P̄(â_j|q));
- ROUGE: mean ROUGE-L recall of the greedy generation against the answer;
- truth-ratio score: forget mean min(R, 1/R); retain, real_authors, world_facts mean max(0, 1 − R).

Model Utility is the harmonic mean of the nine {Probability, ROUGE, truth-ratio score} × {retain, real_authors,
world_facts}; Forget Quality the two-sided KS-test p-value between the per-item R on the forget set of the unlearned
model and of the retain model. Extraction strength (open-unlearning, arXiv 2506.12618) is reported on the forget set.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import logsumexp
from scipy.stats import hmean, ks_2samp

IGNORE_INDEX = -100
"""Label of the positions that are not answer tokens (prompt, padding)."""


def length_normalised_probability(avg_nll: ArrayLike) -> np.ndarray:
    """P̄(a|q) = exp(−ℓ(a|q)) from the mean NLL per answer token ℓ."""
    return np.exp(-np.asarray(avg_nll, dtype=np.float64))


def truth_ratio(paraphrase_nll: ArrayLike, perturbed_nll: ArrayLike) -> np.ndarray:
    """Per-item R = P̄_pert / P̄_para = exp(ℓ_para − mean_j ℓ(â_j)).

    ``paraphrase_nll``: [n] mean NLL of the paraphrased answer (of the original answer on real_authors/world_facts);
    ``perturbed_nll``: [n, k] mean NLL of each of the k perturbed answers. R < 1: the model prefers the true answer.
    """
    perturbed = np.asarray(perturbed_nll, dtype=np.float64)
    return np.exp(np.asarray(paraphrase_nll, dtype=np.float64) - perturbed.mean(axis=-1))


def probability_score(gt_nll: ArrayLike, perturbed_nll: ArrayLike | None = None) -> float:
    """Split Probability: mean P̄(a|q), or with ``perturbed_nll`` [n, k] (real_authors, world_facts) the mean of
    P̄(a|q) / (P̄(a|q) + Σ_j P̄(â_j|q))."""
    if perturbed_nll is None:
        return float(length_normalised_probability(gt_nll).mean())
    # exp(−ℓ)/(exp(−ℓ) + Σ_j exp(−ℓ_j)) = 1/(1 + Σ_j exp(ℓ − ℓ_j)), in log space: a model whose probabilities all
    # underflow (mean NLLs in the hundreds) still gets a number instead of 0/0.
    gt = np.asarray(gt_nll, dtype=np.float64)[:, None]
    log_ratio = logsumexp(np.concatenate([np.zeros_like(gt), gt - np.asarray(perturbed_nll, np.float64)], -1), -1)
    return float(np.exp(-log_ratio).mean())


@functools.cache
def _rouge_l_scorer():
    from rouge_score import rouge_scorer  # imports nltk's stemmer: only when ROUGE is needed

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)


def rouge_l_recall(answers: Sequence[str], generations: Sequence[str]) -> np.ndarray:
    """Per-item ROUGE-L recall of each generation against its answer, as TOFU scores it:
    ``RougeScorer(["rougeL"], use_stemmer=True).score(answer, generation)["rougeL"].recall``."""
    if len(answers) != len(generations):
        raise ValueError(f"{len(answers)} answers but {len(generations)} generations")
    scorer = _rouge_l_scorer()
    return np.array([scorer.score(a, g)["rougeL"].recall for a, g in zip(answers, generations, strict=True)])


def truth_ratio_score(ratios: ArrayLike, *, forget: bool) -> float:
    """Split truth-ratio score from per-item R: forget mean min(R, 1/R); other splits mean max(0, 1 − R)."""
    r = np.asarray(ratios, dtype=np.float64)
    return float(np.minimum(r, 1.0 / r).mean() if forget else np.maximum(0.0, 1.0 - r).mean())


def model_utility(values: Sequence[float]) -> float:
    """Harmonic mean of the nine {Probability, ROUGE, truth-ratio score} × {retain, real_authors, world_facts}
    (0 when any of them is 0)."""
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (9,):
        raise ValueError(f"Model Utility is the harmonic mean of 9 values, got shape {v.shape}")
    if np.any(v < 0) or not np.all(np.isfinite(v)):
        raise ValueError(f"Model Utility needs finite non-negative values, got {v.tolist()}")
    return float(hmean(v))


def forget_quality(
    forget_truth_ratios: ArrayLike,
    retain_model_forget_truth_ratios: ArrayLike,
    *,
    prompts: Sequence[str] | None = None,
    retain_prompts: Sequence[str] | None = None,
) -> float:
    """Forget Quality: p-value of the two-sided ``scipy.stats.ks_2samp`` between the unlearned model's per-item R on
    the forget set and the retain model's on the same items.

    The two must cover the same forget items, in the same order: their counts must agree and, when both
    ``prompts`` are given, so must the prompts item by item; otherwise ``ValueError`` says how many differ.
    (The reference code tested exp(ℓ_pert − ℓ_para) = 1/R; the KS statistic, hence the p-value, is the same.)
    """
    r_unlearned = np.asarray(forget_truth_ratios, dtype=np.float64)
    r_retain = np.asarray(retain_model_forget_truth_ratios, dtype=np.float64)
    if r_unlearned.shape != r_retain.shape or r_unlearned.ndim != 1:
        raise ValueError(
            f"the retain model's forget-set log has {r_retain.shape} truth ratios, the unlearned model's "
            f"{r_unlearned.shape}: Forget Quality compares the same forget items (same forget split and size)"
        )
    if prompts is not None and retain_prompts is not None:
        differ = [i for i, (a, b) in enumerate(zip(prompts, retain_prompts, strict=True)) if a != b]
        if differ:
            i = differ[0]
            raise ValueError(
                f"{len(differ)} of {len(prompts)} forget items differ between the unlearned model's log and the "
                f"retain model's (first: item {i}, {prompts[i]!r} vs {retain_prompts[i]!r})"
            )
    return float(ks_2samp(r_unlearned, r_retain).pvalue)


def extraction_strength(pred_ids: ArrayLike, label_ids: ArrayLike) -> np.ndarray:
    """Extraction strength ES = 1 − k/T per sequence (open-unlearning, arXiv 2506.12618).

    ``pred_ids`` and ``label_ids``: [..., L], aligned so that ``pred_ids[..., t]`` is the teacher-forced argmax
    prediction for ``label_ids[..., t]`` (logits already shifted). The answer tokens are the positions whose label is
    not −100 (prompt and padding are), T of them, in order; k is the smallest index (0 ≤ k ≤ T) such that the
    predictions equal the labels on answer tokens k..T−1. All correct: ES = 1; last token wrong: k = T, ES = 0.
    (open-unlearning's loop stops at k = T − 1 and gives 1/T there.) Returns shape ``[...]``.
    """
    pred = np.asarray(pred_ids)
    labels = np.asarray(label_ids)
    if pred.shape != labels.shape:
        raise ValueError(f"pred_ids {pred.shape} and label_ids {labels.shape} differ in shape")
    answer = labels != IGNORE_INDEX
    n_answer = answer.sum(axis=-1)
    if np.any(n_answer == 0):
        raise ValueError("a sequence has no answer tokens (every label is -100)")
    position = np.cumsum(answer, axis=-1)  # 1-based index among the answer tokens
    k = np.where(answer & (pred != labels), position, 0).max(axis=-1)  # answer tokens up to the last mismatch
    return 1.0 - k / n_answer
