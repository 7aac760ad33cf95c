"""The TOFU task (Maini et al. 2024): unlearn fictitious authors from a causal LM fine-tuned on them.

The original model is fine-tuned on ``full``, the reference model ("Retrain", TOFU's retain model) on ``retainXX``
only; each method unlearns ``forgetXX`` from the original weights, an epoch being one pass over the forget set with
each forget batch paired with a random retain batch. Every model is evaluated as TOFU evaluates (Maini et al. 2024):
Probability, ROUGE-L recall and truth ratio on retain_perturbed, real_authors and world_facts (Model Utility is
their harmonic mean), Forget Quality (KS p-value of the forget-set truth ratios against the retain model's),
forget Probability / ROUGE / truth ratio and extraction strength; the per-item log is written in the legacy format.

Offline default: a synthetic mini-TOFU, a byte-level BPE trained on it, and a tiny decoder trained here (on the
TOFU split plus the real_authors / world_facts question-answer pairs, so that Model Utility measures knowledge the
model has). With ``model_dir`` the original model is a Hugging Face checkpoint fine-tuned on TOFU, and the retain
model's evaluation log (``retain_log``) stands for the reference model.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from typing import Any, ClassVar

import numpy as np

from rosu_jax.models.lm import Tokenizer
from rosu_jax.models.trainable import partition
from rosu_jax.tasks import language
from rosu_jax.tasks.base import Column, Evaluation, Setting, TrainingData, TrainingRecipe, UnlearningData
from rosu_jax.tasks.batching import FORGET_STREAM, RETAIN_STREAM, cycle_index_batches, index_batches, num_batches
from rosu_jax.tasks.tofu.assets import load_idontknow
from rosu_jax.tasks.tofu.data import FORGET_SPLITS, TofuData, load_tofu, load_tofu_from_hub
from rosu_jax.tasks.tofu.eval_log import SplitEval, from_legacy_log, model_scores, to_legacy_log
from rosu_jax.tasks.tofu.metrics import extraction_strength, forget_quality, rouge_l_recall
from rosu_jax.tasks.tofu.synthetic import make_synthetic_tofu

TOFU_METHODS = ("GA", "GradDiff", "IdK", "NPO", "SimNPO", "UAM", "ROSU", "ROSU-GradDiff", "ROSU-NPO")
# The tiny decoder of the offline default (~0.3 M parameters with the synthetic vocabulary).
TINY_MODEL = (("hidden_size", 64), ("intermediate_size", 192), ("num_layers", 2), ("num_heads", 4), ("num_kv_heads", 2))
EVAL_SPLITS = ("forget", "retain", "real_authors", "world_facts")


@dataclasses.dataclass(frozen=True)
class TofuConfig:
    """The TOFU task's settings.

    data_dir: a folder of the hub's JSON Lines files; hub: read ``locuslab/TOFU`` through ``datasets``; neither: the
      synthetic mini-TOFU (``synthetic_authors`` authors). model_dir: a Hugging Face checkpoint fine-tuned on
      ``full`` (needs ``retain_log``, the retain model's evaluation log); None: a tiny decoder (``model_kwargs``)
      trained here, with a BPE tokenizer of ``vocab_size`` trained on the data. prompt_format: phi, llama2 or chat.
    knowledge: also train the tiny models on the real_authors / world_facts pairs.
    trainable: which parameters unlearning changes ("all", a regular expression or e.g. ``layers.0-1.mlp``).
    eval_items: score only the first N items of forget and retain_perturbed (the legacy logs used 300); None: all.
    """

    data_dir: str | None = None
    hub: bool = False
    forget_split: str = "forget10"
    synthetic_authors: int = 40
    model_dir: str | None = None
    retain_log: str | None = None
    prompt_format: str = "phi"
    max_length: int = 512
    vocab_size: int = 1024
    model_kwargs: tuple[tuple[str, Any], ...] = TINY_MODEL
    dtype: str = "float32"
    knowledge: bool = True
    train: TrainingRecipe = TrainingRecipe(
        epochs=40, batch_size=16, lr=3e-3, optimizer="adamw", weight_decay=0.01, schedule="cosine", warmup_epochs=1.0
    )
    unlearn_epochs: int = 5
    unlearn_batch_size: int = 8
    trainable: str = "all"
    eval_items: int | None = None
    max_new_tokens: int = 48
    eval_batch_size: int = 32

    def __post_init__(self):
        if self.forget_split not in FORGET_SPLITS:
            raise ValueError(f"--forget-split must be one of {', '.join(FORGET_SPLITS)}, got {self.forget_split!r}.")
        if self.prompt_format not in language.PROMPT_FORMATS:
            raise ValueError(
                f"--prompt-format must be one of {', '.join(language.PROMPT_FORMATS)}, got {self.prompt_format!r}."
            )
        if self.data_dir and self.hub:
            raise ValueError("give --data-dir or --hub, not both.")
        for name in (
            "max_length",
            "unlearn_epochs",
            "unlearn_batch_size",
            "max_new_tokens",
            "eval_batch_size",
            "synthetic_authors",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.eval_items is not None and self.eval_items < 1:
            raise ValueError(f"--eval-items must be >= 1, got {self.eval_items}.")


@dataclasses.dataclass
class TofuSplit:
    forget: language.Encoded
    idk: language.Encoded
    retain: language.Encoded
    evaluation: dict  # split -> (items, gt, paraphrase, perturbed [n*k] encodings, k)


class TofuTask(language.LanguageModelTask):
    """TOFU (see the module docstring)."""

    name: ClassVar[str] = "tofu"
    columns: ClassVar[tuple[Column, ...]] = (
        Column(
            "forget_quality",
            "FQ",
            "higher",
            "Forget Quality: KS-test p-value of the forget-set truth ratios against the retain model's",
        ),
        Column(
            "model_utility",
            "MU",
            "higher",
            "Model Utility: harmonic mean of Probability, ROUGE-L and truth-ratio "
            "score on retain, real_authors and world_facts",
        ),
        Column("forget_probability", "forget P", "lower", "mean length-normalised probability of the forget answers"),
        Column("forget_rouge", "forget ROUGE", "lower", "ROUGE-L recall of greedy answers to the forget questions"),
        Column("forget_truth_ratio", "forget TR", "reference", "mean min(R, 1/R) of the forget truth ratios"),
        Column("forget_extraction_strength", "ES", "lower", "extraction strength on the forget set"),
    )
    summary: ClassVar[str | None] = None  # TOFU reports FQ and MU side by side: no single ranking
    paired: ClassVar[tuple[str, ...]] = ("forget_quality", "model_utility")
    group_keys: ClassVar[tuple[str, ...]] = ("dataset", "scenario")
    provides: ClassVar[frozenset[str]] = frozenset({"forget", "retain", "sequence_nll", "idk"})

    def __init__(self, config: TofuConfig):
        super().__init__(config)
        self.tokenizer: Tokenizer | None = None
        self._model = None  # (decoder config, apply_fn, params of a given checkpoint or None)
        self._terms = None

    # -- choices and checks --------------------------------------------------------------------------------------
    def choices(self) -> list[str]:
        c = self.config
        if c.model_dir:
            return [f"model: the checkpoint in {c.model_dir}; reference: the retain model's log {c.retain_log}"]
        source = (
            "the hub's locuslab/TOFU"
            if c.hub
            else (c.data_dir or f"a synthetic mini-TOFU of {c.synthetic_authors} authors")
        )
        return [
            f"data: {source}; model: a tiny decoder trained here, original on full"
            f"{' + real_authors/world_facts' if c.knowledge else ''}, Retrain on the retain split"
        ]

    def validate(self) -> None:
        """A run on a given checkpoint needs the retain model's log (the files are checked by load())."""
        if self.config.model_dir and not self.config.retain_log:
            raise ValueError(
                "--model-dir needs --retain-log: the evaluation log of the retain model (trained on the retain split "
                "only) gives Forget Quality; write one with `rosu-unlearn tofu --model-dir RETAIN_CHECKPOINT "
                "--evaluate-only --out DIR`, or take TOFU's."
            )

    # -- data ----------------------------------------------------------------------------------------------------
    def load(self) -> TofuData:
        c = self.config
        if c.hub:
            data = load_tofu_from_hub(c.forget_split)
        elif c.data_dir:
            data = load_tofu(c.data_dir, c.forget_split)
        else:
            data = make_synthetic_tofu(num_authors=c.synthetic_authors, forget_split=c.forget_split)
        return self._load_model(data, _texts(data))

    def scenarios(self) -> tuple[str, ...]:
        return (self.config.forget_split,)

    def setting(self, loaded, scenario: str, seed: int) -> Setting:
        c, data = self.config, loaded.data
        encode = functools.partial(language.encode_pairs, self.tokenizer, fmt=c.prompt_format, max_length=c.max_length)
        forget = encode([(x["question"], x["answer"]) for x in data.forget])
        refusals = load_idontknow()
        rng = np.random.default_rng([seed, 7])
        idk = encode(
            [
                (x["question"], refusals[i])
                for x, i in zip(data.forget, rng.integers(0, len(refusals), len(data.forget)), strict=True)
            ]
        )
        retain = encode([(x["question"], x["answer"]) for x in data.retain])
        cut = forget.truncated + retain.truncated
        if cut:
            warnings.warn(
                f"{cut} forget/retain sequences are longer than max_length={c.max_length} tokens and were "
                "cut there (raise --set task.max_length=N to keep them whole).",
                stacklevel=2,
            )
        evaluation = {
            name: _eval_encodings(items, encode, paraphrased=name in ("forget", "retain"))
            for name, items in self._eval_items(data).items()
        }
        reference_training, reference_evaluation = None, None
        if c.model_dir and c.retain_log:
            reference_evaluation = self._evaluation(from_legacy_log(c.retain_log))
        elif c.model_dir:
            pass  # evaluating a checkpoint alone (--evaluate-only): no reference
        else:
            reference_training = self._training(data.retain, data, seed)
        key = {
            "scenario": scenario,
            "prompt_format": c.prompt_format,
            "max_length": c.max_length,
            "eval_items": c.eval_items,
            "max_new_tokens": c.max_new_tokens,
        }
        return Setting(
            scenario, seed, key, TofuSplit(forget, idk, retain, evaluation), reference_training, reference_evaluation
        )

    def _eval_items(self, data: TofuData) -> dict[str, list[dict]]:
        cut = self.config.eval_items
        return {
            "forget": data.forget_perturbed[:cut],
            "retain": data.retain_perturbed[:cut],
            "real_authors": data.real_authors,
            "world_facts": data.world_facts,
        }

    # -- model ---------------------------------------------------------------------------------------------------
    def model_key(self) -> dict:
        c = self.config
        extra = {} if c.model_dir else {"knowledge": c.knowledge, "prompt_format": c.prompt_format}
        return super().model_key() | extra

    def _training(self, items: list[dict], data: TofuData, seed: int) -> TrainingData:
        c = self.config
        pairs = [(x["question"], x["answer"]) for x in items]
        if c.knowledge:
            pairs += [(x["question"], x["answer"]) for x in (*data.real_authors, *data.world_facts)]
        return self.text_batches(
            language.encode_pairs(self.tokenizer, pairs, c.prompt_format, c.max_length), c.train.batch_size, seed
        )

    def training_data(self, loaded, seed: int) -> TrainingData:
        return self._training(loaded.data.full, loaded.data, seed)

    def unlearning_data(self, setting: Setting, seed: int) -> UnlearningData:
        """An epoch is one pass over the forget set; each forget batch is paired with a random retain batch."""
        split: TofuSplit = setting.split
        c = self.config
        batch_size = min(c.unlearn_batch_size, len(split.forget))
        retain_size = min(c.unlearn_batch_size, len(split.retain))

        def forget_batch(idx):
            return split.forget.batch(idx) | split.idk.batch(idx, prefix="idk_") | {"index": idx.astype(np.int32)}

        def pairs(epochs):
            retain_stream = cycle_index_batches(len(split.retain), retain_size, seed=seed, stream=RETAIN_STREAM)
            for epoch in range(epochs):
                for idx in index_batches(
                    len(split.forget), batch_size, seed=seed, epoch=epoch, stream=FORGET_STREAM, drop_last=True
                ):
                    retain_idx = next(retain_stream)
                    yield forget_batch(idx), split.retain.batch(retain_idx) | {"index": retain_idx.astype(np.int32)}

        def forget_batches():
            for idx in index_batches(len(split.forget), batch_size, seed=seed, shuffle=False):
                yield forget_batch(idx)

        example = next(pairs(1))
        steps = num_batches(len(split.forget), batch_size, drop_last=True)
        return UnlearningData(steps, c.unlearn_epochs, len(split.forget), pairs, forget_batches, example)

    def unlearning_key(self) -> dict:
        c = self.config
        return {
            "unlearn_epochs": c.unlearn_epochs,
            "unlearn_batch_size": c.unlearn_batch_size,
            "trainable": c.trainable,
        }

    def unlearning_start(self, params, model_state):
        trainable, frozen = partition(params, self.config.trainable)
        return trainable, ({"frozen": frozen} if frozen else {})

    def loss_terms(self) -> dict:
        if self._terms is None:
            self._terms = language.loss_terms(self.apply_fn)
        return self._terms

    # -- metrics -------------------------------------------------------------------------------------------------
    def evaluate(self, params, model_state, setting: Setting) -> Evaluation:
        full = self.model_params(params, model_state)
        c = self.config
        splits = {}
        for name, (items, gt, paraphrase, perturbed, k) in setting.split.evaluation.items():
            gt_nll, gt_count, argmax = language.score(self.apply_fn, full, gt, c.eval_batch_size)
            para_nll, para_count, _ = (
                (gt_nll, gt_count, None)
                if paraphrase is None
                else language.score(self.apply_fn, full, paraphrase, c.eval_batch_size)
            )
            pert_nll, pert_count, _ = language.score(self.apply_fn, full, perturbed, c.eval_batch_size)
            if not all(np.isfinite(a).all() for a in (gt_nll, para_nll, pert_nll)):
                return Evaluation({col.key: None for col in self.columns}, {"status": "diverged"})
            generations = language.generate(
                self.apply_fn, full, gt, self.tokenizer, max_new_tokens=c.max_new_tokens, batch_size=c.eval_batch_size
            )
            answers = [x["answer"] for x in items]
            splits[name] = SplitEval(
                prompts=gt.prompts,
                generations=generations,
                answers=answers,
                gt_nll=gt_nll,
                paraphrase_nll=para_nll,
                perturbed_nll=pert_nll.reshape(len(items), k),
                rouge_l_recall=rouge_l_recall(answers, generations),
                gt_num_tokens=gt_count.astype(int),
                paraphrase_num_tokens=para_count.astype(int),
                perturbed_num_tokens=pert_count.reshape(len(items), k).astype(int),
                extraction_strength=extraction_strength(argmax, language.answer_labels(gt))
                if name == "forget"
                else None,
            )
        return self._evaluation(splits)

    def _evaluation(self, splits: dict[str, SplitEval]) -> Evaluation:
        scores = model_scores(splits)
        metrics = {k: float(v) for k, v in scores.items()}
        metrics["forget_quality"] = None  # needs the retain model: compare()
        return Evaluation(metrics, {"status": "ok", "splits": splits}, artifact=to_legacy_log(splits))

    def relearn_batch(self, setting: Setting, k: int) -> dict:
        idx = np.arange(min(k, len(setting.split.forget)))
        return setting.split.forget.batch(idx) | {"index": idx.astype(np.int32)}

    def forget_score(self, params, model_state, setting: Setting) -> float:
        """Mean length-normalised probability of the forget answers (TOFU's forget Probability)."""
        nll, _, _ = language.score(
            self.apply_fn, self.model_params(params, model_state), setting.split.forget, self.config.eval_batch_size
        )
        return float(np.exp(-nll).mean())

    def compare(self, evaluation: Evaluation, reference: Evaluation | None) -> dict:
        if reference is None or evaluation.details.get("status") != "ok":
            return {"forget_quality": None}
        mine, theirs = evaluation.details["splits"]["forget"], reference.details["splits"]["forget"]
        return {
            "forget_quality": forget_quality(
                mine.truth_ratios, theirs.truth_ratios, prompts=mine.prompts, retain_prompts=theirs.prompts
            )
        }

    def method_defaults(self) -> dict[str, dict[str, Any]]:
        c = self.config
        lr = 1e-5 if c.model_dir else 1e-3  # TOFU's standard for real checkpoints; the tiny decoder's (see README)
        return {
            "*": {
                "optimizer": "adamw",
                "lr": lr,
                "weight_decay": 0.01,
                "warmup_fraction": 1.0 / c.unlearn_epochs,
                "schedule": "constant",
                # ROSU's λ (UAM keeps the published 0): AdamW's steps are larger than SGD's on images. Measured on
                # mini-TOFU at ρ = 0.5, seed 0: λ = 0.05 left FQ where the original's is; λ = 0.2 gave FQ 0.10 at
                # the original's MU; λ·ρ ≥ 0.5 destroyed MU. Over seeds 0-2 (benchmarks/results/tofu_default):
                # FQ 0.42 ± 0.33 at MU 0.75 ± 0.02, against UAM's (λ = 0) FQ 0.00.
                "amplification": 0.2,
            }
        }

    @property
    def default_methods(self) -> tuple[str, ...]:
        return TOFU_METHODS

    def row_fields(self) -> dict[str, Any]:
        c = self.config
        source = "TOFU" if (c.hub or c.data_dir) else "mini-TOFU"
        return {"dataset": source, "model": c.model_dir or "tiny decoder", "trainable": c.trainable}

    @property
    def plots(self):
        return (plot_quality_utility,)


def plot_quality_utility(rows: list[dict], histories: dict, folder) -> None:
    """``fq_mu.png``: Forget Quality (log scale) against Model Utility, one point per method (mean over seeds), the
    retain and the original model marked: up and right is better."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if r.get("status") == "ok" and r.get("forget_quality") is not None and r.get("model_utility") is not None:
            label = r["method"] + (f" ({r['variant']})" if r.get("variant") else "")
            points.setdefault(label, []).append((r["model_utility"], max(r["forget_quality"], 1e-30)))
    if not points:
        return
    fig, ax = plt.subplots(figsize=(7, 5))
    for label, values in points.items():
        mu, fq = np.mean(values, axis=0)
        marker = {"Retrain": "*", "Original": "X"}.get(label, "o")
        ax.scatter(mu, fq, marker=marker, s=120 if marker != "o" else 50, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("Model Utility (higher is better)")
    ax.set_ylabel("Forget Quality (higher is better)")
    ax.set_title("TOFU: forget quality vs model utility")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(folder / "fq_mu.png", dpi=110)
    plt.close(fig)


def _texts(data: TofuData) -> list[str]:
    """Every text of the data set (the BPE's training corpus), refusals included."""
    texts = list(load_idontknow())
    for items in (data.full, data.forget_perturbed, data.retain_perturbed, data.real_authors, data.world_facts):
        for x in items:
            texts += [x["question"], x["answer"], x.get("paraphrased_answer", ""), *x.get("perturbed_answer", [])]
    return [t for t in texts if t]


def _eval_encodings(items: list[dict], encode, *, paraphrased: bool):
    """(items, answer, paraphrase (None: the answer itself), perturbed answers flattened [n*k], k)."""
    k = len(items[0]["perturbed_answer"])
    gt = encode([(x["question"], x["answer"]) for x in items])
    paraphrase = encode([(x["question"], x["paraphrased_answer"]) for x in items]) if paraphrased else None
    perturbed = encode([(x["question"], p) for x in items for p in x["perturbed_answer"]])
    return items, gt, paraphrase, perturbed, k
