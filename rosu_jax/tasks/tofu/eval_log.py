"""TOFU evaluation logs in the legacy per-item format, and their scoring.

The reference code (Maini et al. 2024, arXiv 2401.06121) wrote one section per split into
``eval_log_aggregated.json``: ``eval_log.json`` (retain_perturbed), ``eval_log_forget.json`` (forgetXX_perturbed),
``eval_real_author_wo_options.json`` and ``eval_real_world_wo_options.json``; each maps a field to its per-item values,
keyed ``"0"``, ``"1"``, ... Its aggregation read ``avg_gt_loss`` (Probability), ``avg_paraphrased_loss`` and
``average_perturb_loss`` (truth ratio, recomputed; the stored ``truth_ratio`` was computed in float32 and is not read)
and ``rougeL_recall`` (ROUGE). Its logs scored the first 300 items of forget10 and retain_perturbed (``ds_size: 300``)
where open-unlearning scores all of them: ``score_logs`` reports how many items each split had.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rosu_jax.tasks.tofu.metrics import forget_quality, model_utility, probability_score, truth_ratio, truth_ratio_score

SECTIONS: dict[str, str] = {
    "retain": "eval_log.json",
    "forget": "eval_log_forget.json",
    "real_authors": "eval_real_author_wo_options.json",
    "world_facts": "eval_real_world_wo_options.json",
}
"""Split name → its section in the legacy log."""

UTILITY_SPLITS = ("retain", "real_authors", "world_facts")
"""The splits whose Probability, ROUGE and truth-ratio score make up Model Utility."""

# SplitEval array field → legacy per-item key (extraction_strength is this package's addition).
_ARRAY_KEYS = {
    "gt_nll": "avg_gt_loss",
    "paraphrase_nll": "avg_paraphrased_loss",
    "perturbed_nll": "average_perturb_loss",
    "rouge_l_recall": "rougeL_recall",
    "gt_num_tokens": "num_token_gt",
    "paraphrase_num_tokens": "num_token_paraphrased",
    "perturbed_num_tokens": "num_token_perturb",
    "extraction_strength": "extraction_strength",
}
_REQUIRED_KEYS = ("generated_text", "avg_gt_loss", "avg_paraphrased_loss", "average_perturb_loss", "rougeL_recall")
# Legacy summed NLLs, written as mean NLL × token count when the counts are known.
_SUMMED_KEYS = (
    ("gt_nll", "gt_num_tokens", "gt_loss"),
    ("paraphrase_nll", "paraphrase_num_tokens", "paraphrased_loss"),
    ("perturbed_nll", "perturbed_num_tokens", "perturb_loss"),
)


@dataclasses.dataclass(frozen=True, eq=False)
class SplitEval:
    """Per-item evaluation of one TOFU split (n items, k perturbed answers each).

    ``prompts``: the text given to the model (question in the model's prompt template); ``generations``: its greedy
    answers; ``answers``: the ground truth. NLLs are means over answer tokens: ``gt_nll`` [n] of the answer,
    ``paraphrase_nll`` [n] of the paraphrased answer (of the answer itself on real_authors/world_facts),
    ``perturbed_nll`` [n, k] of the perturbed answers; ``rouge_l_recall`` [n] (``metrics.rouge_l_recall``).
    Optional: token counts (``gt_num_tokens`` [n], ``paraphrase_num_tokens`` [n], ``perturbed_num_tokens`` [n, k])
    and ``extraction_strength`` [n].
    """

    prompts: tuple[str, ...]
    generations: tuple[str, ...]
    answers: tuple[str, ...]
    gt_nll: np.ndarray
    paraphrase_nll: np.ndarray
    perturbed_nll: np.ndarray
    rouge_l_recall: np.ndarray
    gt_num_tokens: np.ndarray | None = None
    paraphrase_num_tokens: np.ndarray | None = None
    perturbed_num_tokens: np.ndarray | None = None
    extraction_strength: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.prompts)
        for name in ("prompts", "generations", "answers"):
            texts = tuple(getattr(self, name))
            if len(texts) != n:
                raise ValueError(f"{name} has {len(texts)} items, prompts {n}")
            object.__setattr__(self, name, texts)
        for name in _ARRAY_KEYS:
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.int64 if name.endswith("num_tokens") else np.float64)
            ndim = 2 if name.startswith("perturbed") else 1
            if value.ndim != ndim or len(value) != n:
                raise ValueError(f"{name} has shape {value.shape}, expected {'[n, k]' if ndim == 2 else '[n]'}, n={n}")
            object.__setattr__(self, name, value)
        if self.perturbed_num_tokens is not None and self.perturbed_num_tokens.shape != self.perturbed_nll.shape:
            raise ValueError(
                f"perturbed_num_tokens has shape {self.perturbed_num_tokens.shape}, "
                f"perturbed_nll {self.perturbed_nll.shape}"
            )

    @property
    def num_items(self) -> int:
        return len(self.prompts)

    @property
    def truth_ratios(self) -> np.ndarray:
        """Per-item truth ratio R = P̄_pert / P̄_para."""
        return truth_ratio(self.paraphrase_nll, self.perturbed_nll)


def _require_splits(splits: Mapping[str, SplitEval]) -> None:
    missing = [name for name in SECTIONS if name not in splits]
    if missing:
        raise ValueError(f"a TOFU log needs the splits {list(SECTIONS)}; missing {missing}")


def to_legacy_log(splits: Mapping[str, SplitEval], path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The legacy ``eval_log_aggregated.json`` structure of the four splits (``SECTIONS``); written to ``path`` as
    JSON when given. Also writes the per-item ``truth_ratio`` R and, when token counts are known, the summed NLLs."""
    _require_splits(splits)
    log = {SECTIONS[name]: _legacy_section(splits[name]) for name in SECTIONS}
    if path is not None:
        Path(path).write_text(json.dumps(log), encoding="utf-8")
    return log


def _legacy_section(split: SplitEval) -> dict[str, dict[str, Any]]:
    def per_item(values) -> dict[str, Any]:
        return {str(i): v for i, v in enumerate(values)}

    section = {
        "generated_text": per_item([list(t) for t in zip(split.prompts, split.generations, split.answers, strict=True)])
    }
    for name, key in _ARRAY_KEYS.items():
        if getattr(split, name) is not None:
            section[key] = per_item(getattr(split, name).tolist())
    for mean_name, count_name, key in _SUMMED_KEYS:
        if getattr(split, count_name) is not None:
            section[key] = per_item((getattr(split, mean_name) * getattr(split, count_name)).tolist())
    section["truth_ratio"] = per_item(split.truth_ratios.tolist())
    return section


def from_legacy_log(source: str | os.PathLike | Mapping[str, Any]) -> dict[str, SplitEval]:
    """The four splits of a legacy-format log: a path to its JSON file (``eval_log_aggregated.json`` or one written by
    ``to_legacy_log``) or the loaded dict. Raises ``ValueError`` naming the file, section and what is wrong."""
    if isinstance(source, Mapping):
        where, log = "the TOFU log", source
    else:
        where = str(source)
        try:
            log = json.loads(Path(source).read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not a JSON file ({err})") from None
    missing = [section for section in SECTIONS.values() if section not in log]
    if missing:
        raise ValueError(f"{where}: missing section(s) {missing}; a TOFU log has {list(SECTIONS.values())}")
    return {name: _read_section(log[section], f"{where}, section {section}") for name, section in SECTIONS.items()}


def _read_section(section: Mapping[str, Any], where: str) -> SplitEval:
    missing = [key for key in _REQUIRED_KEYS if key not in section]
    if missing:
        raise ValueError(f"{where}: missing field(s) {missing}")
    items = list(section["generated_text"])
    if not items:
        raise ValueError(f"{where}: no items")
    if not all(isinstance(i, str) and i.isdigit() for i in items):
        raise ValueError(f"{where}: item keys must be '0', '1', ...")
    items.sort(key=int)
    present = [key for key in dict.fromkeys((*_REQUIRED_KEYS, *_ARRAY_KEYS.values())) if key in section]
    for key in present:
        if not isinstance(section[key], Mapping):
            raise ValueError(f"{where}: field {key!r} is not a mapping item → value")
        if set(section[key]) != set(items):
            raise ValueError(
                f"{where}: field {key!r} has {len(section[key])} items, 'generated_text' {len(items)}: "
                "every field must list the same items"
            )
    columns = {key: [section[key][i] for i in items] for key in present}
    bad = [i for i, t in zip(items, columns["generated_text"], strict=True) if len(t) != 3]
    if bad:
        raise ValueError(f"{where}: generated_text of item(s) {bad[:5]} is not [prompt, generation, ground truth]")
    n_perturbed = [len(x) for x in columns["average_perturb_loss"]]
    bad = [i for i, k in zip(items, n_perturbed, strict=True) if k != n_perturbed[0]]
    if bad:
        raise ValueError(
            f"{where}: every item needs the same number of perturbed answers; item {items[0]} has {n_perturbed[0]}, "
            f"item(s) {bad[:5]} ({len(bad)} in all) do not"
        )
    prompts, generations, answers = zip(*columns["generated_text"], strict=True)
    arrays = {name: columns[key] for name, key in _ARRAY_KEYS.items() if key in columns}
    try:
        return SplitEval(prompts, generations, answers, **arrays)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _as_splits(log: Mapping[str, Any] | str | os.PathLike) -> Mapping[str, SplitEval]:
    if isinstance(log, Mapping) and log and all(isinstance(v, SplitEval) for v in log.values()):
        _require_splits(log)
        return log
    return from_legacy_log(log)


def score_logs(
    log: Mapping[str, Any] | str | os.PathLike, retain_log: Mapping[str, Any] | str | os.PathLike
) -> dict[str, float]:
    """TOFU's numbers for an evaluated model against the retain model's log.

    Each log is a mapping split → ``SplitEval``, a legacy-format dict or a path to one. Returns, for each split
    ``s`` in retain, real_authors, world_facts, forget: ``s_probability``, ``s_rouge`` (mean ROUGE-L recall),
    ``s_truth_ratio`` (the truth-ratio score: forget mean min(R, 1/R), others mean max(0, 1 − R)) and
    ``s_num_items``; ``model_utility`` (harmonic mean of the nine non-forget values), ``forget_quality`` (KS p-value
    of the forget-set R against the retain model's) and, when the forget split has it,
    ``forget_extraction_strength`` (mean ES).
    """
    splits, retain_splits = _as_splits(log), _as_splits(retain_log)
    scores = model_scores(splits)
    forget, retain_forget = splits["forget"], retain_splits["forget"]
    scores["forget_quality"] = forget_quality(
        forget.truth_ratios, retain_forget.truth_ratios, prompts=forget.prompts, retain_prompts=retain_forget.prompts
    )
    return scores


def model_scores(splits: Mapping[str, SplitEval]) -> dict[str, float]:
    """Everything ``score_logs`` reports that needs no retain model (all but ``forget_quality``)."""
    scores: dict[str, float] = {}
    for name in (*UTILITY_SPLITS, "forget"):
        split = splits[name]
        normalised = name in ("real_authors", "world_facts")
        scores[f"{name}_probability"] = probability_score(split.gt_nll, split.perturbed_nll if normalised else None)
        scores[f"{name}_rouge"] = float(split.rouge_l_recall.mean())
        scores[f"{name}_truth_ratio"] = truth_ratio_score(split.truth_ratios, forget=name == "forget")
        scores[f"{name}_num_items"] = split.num_items
    scores["model_utility"] = model_utility(
        [scores[f"{name}_{metric}"] for name in UTILITY_SPLITS for metric in ("probability", "rouge", "truth_ratio")]
    )
    if splits["forget"].extraction_strength is not None:
        scores["forget_extraction_strength"] = float(splits["forget"].extraction_strength.mean())
    return scores
