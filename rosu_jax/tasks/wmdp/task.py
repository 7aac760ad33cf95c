"""The WMDP task (Li et al. 2024): remove hazardous knowledge from a causal LM while keeping general ability.

Unlearning runs on forget corpora (one per forget topic, topics alternating batch by batch) and a retain corpus; the
model is scored zero-shot on 4-choice questions through lm-evaluation-harness itself (``harness.JaxLM``), as the
field reports it: raw accuracies on the forget topics' questions (WMDP bio/cyber/chem; chance is 25%) and on the
utility questions (MMLU, weighted by subject size), and their differences to the model before unlearning, measured in
the same harness run. There is no reference model: every method is compared with the original.

Offline default: the synthetic fictional "hazard" / "control" topics (``synthetic.make_synthetic_wmdp``) and a tiny
decoder trained here on both (passages and questions): hazard accuracy should fall towards 25% while control
accuracy stays. With ``model_dir`` the original is a Hugging Face checkpoint (e.g. Zephyr-7B-beta).
The trainable subset is RMU's by default, ``layers.{ℓ−2..ℓ}.mlp.down_proj`` around the steered layer ℓ, or "lora"
(adapters on every projection, merged into the base weights for evaluation and saving), or any selection.
"""

from __future__ import annotations

import dataclasses
import importlib.util
from typing import Any, ClassVar

import jax
import numpy as np

from rosu_jax.models.lm import Tokenizer
from rosu_jax.models.trainable import partition
from rosu_jax.tasks import language
from rosu_jax.tasks.base import Column, Evaluation, Setting, TrainingData, TrainingRecipe, UnlearningData
from rosu_jax.tasks.batching import FORGET_STREAM, RETAIN_STREAM, cycle_index_batches, index_batches
from rosu_jax.tasks.wmdp.data import TOPICS, load_wmdp, load_wmdp_from_hub
from rosu_jax.tasks.wmdp.multiple_choice import evaluate_multiple_choice, require_lm_eval
from rosu_jax.tasks.wmdp.synthetic import make_synthetic_wmdp

WMDP_METHODS = ("RMU", "ROSU-RMU", "UAM-RMU", "GradDiff", "NPO", "ROSU-GradDiff", "ROSU-NPO")
TINY_MODEL = (("hidden_size", 64), ("intermediate_size", 192), ("num_layers", 4), ("num_heads", 4), ("num_kv_heads", 2))
LORA_RANK, LORA_ALPHA = 8, 16.0
DEFAULT_LAYER = 7  # RMU's layer in the WMDP paper (Zephyr-7B)


@dataclasses.dataclass(frozen=True)
class WmdpConfig:
    """The WMDP task's settings.

    questions / forget_corpora: ``((name, path), ...)`` local files (question tasks ``wmdp_bio``... in the
    ``cais/wmdp`` schema; corpora per topic, JSON Lines with ``text`` or plain text); retain_corpus, mmlu: local files;
    hub: read them through ``datasets`` (``topics``; the gated bio corpus still from ``forget_corpora``); none of
    these: the synthetic topics. model_dir: a Hugging Face checkpoint (None: a tiny decoder trained here).
    layer: RMU's steered layer ℓ (None: 7, or the middle layer of a smaller model). trainable: None for RMU's
    ``layers.{ℓ−2..ℓ}.mlp.down_proj``, "lora", "all", or any selection (``rosu_jax.models.trainable``).
    unlearn_batches: steps per run (RMU: 150 batches of 4); eval_limit: questions per task (None: all).
    """

    questions: tuple[tuple[str, str], ...] = ()
    forget_corpora: tuple[tuple[str, str], ...] = ()
    retain_corpus: str | None = None
    mmlu: str | None = None
    hub: bool = False
    topics: tuple[str, ...] = ("bio", "cyber")
    model_dir: str | None = None
    dtype: str = "float32"
    layer: int | None = None
    trainable: str | None = None
    max_length: int = 512
    vocab_size: int = 1280
    model_kwargs: tuple[tuple[str, Any], ...] = TINY_MODEL
    train: TrainingRecipe = TrainingRecipe(
        epochs=30, batch_size=16, lr=3e-3, optimizer="adamw", weight_decay=0.01, schedule="cosine", warmup_epochs=1.0
    )
    unlearn_batches: int = 150
    unlearn_batch_size: int = 4
    eval_limit: int | None = None
    eval_batch_size: int = 16

    def __post_init__(self):
        for name in ("max_length", "unlearn_batches", "unlearn_batch_size", "eval_batch_size", "vocab_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.layer is not None and self.layer < 0:
            raise ValueError(f"--layer must be >= 0, got {self.layer}.")
        unknown = [t for t in self.topics if t not in TOPICS]
        if unknown:
            raise ValueError(f"unknown WMDP topic(s) {unknown}; choose from {', '.join(TOPICS)}.")
        local = bool(self.questions or self.forget_corpora or self.retain_corpus)
        if local and not self.hub and not (self.questions and self.forget_corpora and self.retain_corpus):
            raise ValueError(
                "local WMDP data needs --questions, --forget-corpus and --retain-corpus together "
                "(or --hub, or none of them for the offline synthetic topics)."
            )


class WmdpTask(language.LanguageModelTask):
    """WMDP (see the module docstring)."""

    name: ClassVar[str] = "wmdp"
    columns: ClassVar[tuple[Column, ...]] = (
        Column(
            "forget_accuracy",
            "forget acc",
            "lower",
            "4-choice accuracy (%) on the forget topics' questions (chance 25)",
        ),
        Column(
            "control_accuracy",
            "control acc",
            "higher",
            "4-choice accuracy (%) on the utility questions (MMLU, or the kept topic)",
        ),
        Column("forget_accuracy_delta", "Δ forget", "lower", "forget accuracy − the original model's"),
        Column("control_accuracy_delta", "Δ control", "higher", "control accuracy − the original model's"),
    )
    summary: ClassVar[str | None] = None  # forget and control accuracy side by side: no single ranking
    paired: ClassVar[tuple[str, ...]] = ("forget_accuracy", "control_accuracy")
    reference_row: ClassVar[str | None] = None  # no retrained model: methods are compared with the original
    group_keys: ClassVar[tuple[str, ...]] = ("dataset", "scenario")
    provides: ClassVar[frozenset[str]] = frozenset({"forget", "retain", "sequence_nll", "hidden"})

    def __init__(self, config: WmdpConfig):
        super().__init__(config)
        self.tokenizer: Tokenizer | None = None
        self._model = None  # (decoder config, plain apply_fn, params of a given checkpoint or None)
        self._terms = None
        self._lora_apply = None
        self._lm = None

    # -- choices and checks --------------------------------------------------------------------------------------
    def choices(self) -> list[str]:
        c = self.config
        source = "the hub" if c.hub else ("local files" if c.questions else "the synthetic hazard/control topics")
        model = c.model_dir or "a tiny decoder trained here on both topics"
        return [f"data: {source}; model: {model}; trainable: {self._trainable_text()}"]

    def _trainable_text(self) -> str:
        return self.config.trainable or "RMU's layers ℓ−2..ℓ mlp.down_proj"

    def validate(self) -> None:
        """The optional extras this run needs, before any work (WmdpConfig checks its fields; load() the files)."""
        require_lm_eval()
        if self.config.trainable == "lora" and importlib.util.find_spec("qwix") is None:
            raise ValueError("--trainable lora needs qwix, an optional extra: pip install 'rosu-jax[lora]'.")

    # -- data ----------------------------------------------------------------------------------------------------
    def load(self):
        c = self.config
        if c.hub:
            data = load_wmdp_from_hub(c.topics, forget_corpora=dict(c.forget_corpora) or None, with_mmlu=c.mmlu is None)
        elif c.questions:
            data = load_wmdp(
                questions=dict(c.questions),
                forget_corpora=dict(c.forget_corpora),
                retain_corpus=c.retain_corpus,
                mmlu=c.mmlu,
            )
        else:
            data = make_synthetic_wmdp()
        self._lora_apply, self._lm = None, None
        loaded = self._load_model(data, data.training_texts + data.retain_corpus)
        if self.layer >= self._model[0].num_layers:
            raise ValueError(
                f"--layer {self.layer} is beyond the model's {self._model[0].num_layers} layers "
                f"(0..{self._model[0].num_layers - 1}); pick one of them."
            )
        return loaded

    @property
    def layer(self) -> int:
        if self.config.layer is not None:
            return self.config.layer
        return DEFAULT_LAYER if self.config.model_dir else self._model[0].num_layers // 2

    @property
    def trainable(self) -> str:
        c = self.config
        if c.trainable:
            return c.trainable
        if c.model_dir:
            return f"layers.{max(self.layer - 2, 0)}-{self.layer}.mlp.down_proj"  # the official RMU run's
        # The tiny 4-layer decoder: RMU's three down_proj around ℓ = 2 (layers 0-2, nearly the whole model) also
        # erased the control topic; layers ℓ−1..ℓ (their whole MLPs) keep it (synthetic topics, seed 0).
        return f"layers.{max(self.layer - 1, 0)}-{self.layer}.mlp"

    def scenarios(self) -> tuple[str, ...]:
        return ("forget topics",)

    def setting(self, loaded, scenario: str, seed: int) -> Setting:
        c, data = self.config, loaded.data
        corpora = {
            topic: language.encode_texts(self.tokenizer, texts, c.max_length)
            for topic, texts in data.forget_corpora.items()
        }
        retain = language.encode_texts(self.tokenizer, data.retain_corpus, c.max_length)
        key = {
            "scenario": scenario,
            "forget_topics": list(data.forget_topics),
            "max_length": c.max_length,
            "eval_limit": c.eval_limit,
        }
        return Setting(scenario, seed, key, {"forget": corpora, "retain": retain, "data": data}, None)

    # -- model ---------------------------------------------------------------------------------------------------
    def training_data(self, loaded, seed: int) -> TrainingData:
        c = self.config
        encoded = language.encode_texts(self.tokenizer, loaded.data.training_texts, c.max_length)
        return self.text_batches(encoded, c.train.batch_size, seed)

    def unlearning_data(self, setting: Setting, seed: int) -> UnlearningData:
        """``unlearn_batches`` steps; the forget batch of step i comes from topic i mod (number of topics), each
        topic's corpus cycled, and is paired with the next batch of the cycled retain corpus."""
        c, split = self.config, setting.split
        topics = sorted(split["forget"])
        size = c.unlearn_batch_size
        offsets = np.cumsum([0] + [len(split["forget"][t]) for t in topics])

        def forget_batch(t, idx):
            return split["forget"][topics[t]].batch(idx) | {
                "index": (idx + offsets[t]).astype(np.int32),
                "topic": np.full(len(idx), t, np.int32),
            }

        def pairs(epochs):
            streams = [
                cycle_index_batches(len(split["forget"][t]), size, seed=seed, stream=FORGET_STREAM + 10 * i)
                for i, t in enumerate(topics)
            ]
            retain = cycle_index_batches(len(split["retain"]), size, seed=seed, stream=RETAIN_STREAM)
            for step in range(epochs * c.unlearn_batches):
                t = step % len(topics)
                retain_idx = next(retain)
                yield (
                    forget_batch(t, next(streams[t])),
                    split["retain"].batch(retain_idx)
                    | {"index": retain_idx.astype(np.int32), "topic": np.zeros(size, np.int32)},
                )

        def forget_batches():
            for t, topic in enumerate(topics):
                for idx in index_batches(len(split["forget"][topic]), size, seed=seed, shuffle=False):
                    yield forget_batch(t, idx)

        info = {"num_topics": len(topics), "hidden_size": self._model[0].hidden_size}
        return UnlearningData(c.unlearn_batches, 1, int(offsets[-1]), pairs, forget_batches, next(pairs(1)), info)

    def unlearning_key(self) -> dict:
        c = self.config
        return {
            "unlearn_batches": c.unlearn_batches,
            "unlearn_batch_size": c.unlearn_batch_size,
            "trainable": self.trainable,
            "layer": self.layer,
        }

    def unlearning_start(self, params, model_state):
        if self.trainable == "lora":
            from rosu_jax.models.lm.lora import add_lora, lora_selection

            self._lora_apply, params = add_lora(self._model[0], params, rank=LORA_RANK, alpha=LORA_ALPHA)
            trainable, frozen = partition(params, lora_selection)
        else:
            trainable, frozen = partition(params, self.trainable)
        return trainable, ({"frozen": frozen} if frozen else {})

    def loss_terms(self) -> dict:
        if self._terms is None:
            if self.trainable == "lora" and self._lora_apply is None:
                raise RuntimeError(
                    "with trainable='lora' call unlearning_start() before loss_terms(): the adapters "
                    "are added to the model there."
                )
            apply_fn = self._lora_apply if self.trainable == "lora" else self.apply_fn
            self._terms = language.loss_terms(apply_fn, hidden_layer=self.layer)
        return self._terms

    def training_loss(self):
        return language.loss_terms(self.apply_fn)["retain"]

    def model_params(self, params, model_state):
        """The whole model's parameters, LoRA adapters (if any) merged into the base weights."""
        full = language.full_params(params, model_state)
        if any("_lora_" in "".join(map(str, path)) for path, _ in _paths(full)):
            from rosu_jax.models.lm.lora import merge_lora

            full = merge_lora(self._model[0], full, alpha=LORA_ALPHA)
        return full

    # -- metrics -------------------------------------------------------------------------------------------------
    def evaluate(self, params, model_state, setting: Setting) -> Evaluation:
        """Accuracies through lm-evaluation-harness on the questions (LoRA adapters merged into the base first)."""
        c, data = self.config, setting.split["data"]
        full = self.model_params(params, model_state)
        if self._lm is None:  # one harness model: its scoring program is compiled once for every evaluation
            from rosu_jax.tasks.wmdp.harness import JaxLM  # lm-eval is an optional extra (checked by validate)

            self._lm = JaxLM(self.apply_fn, full, self.tokenizer, batch_size=c.eval_batch_size)
        lm, lm.params = self._lm, full
        tasks = {name: data.questions[name] for name in (*data.forget_tasks, *data.utility_tasks)}
        accuracy = evaluate_multiple_choice(
            lm, tasks, description=data.topic_descriptions() or None, limit=c.eval_limit
        )
        metrics = {f"{name}_accuracy": value for name, value in accuracy.items()}
        metrics["forget_accuracy"] = _weighted(accuracy, data.forget_tasks, tasks, c.eval_limit)
        metrics["control_accuracy"] = _weighted(accuracy, data.utility_tasks, tasks, c.eval_limit)
        finite = all(np.isfinite(v) for v in metrics.values())
        return Evaluation(metrics, {"status": "ok" if finite else "diverged"})

    def relearn_batch(self, setting: Setting, k: int) -> dict:
        topic = sorted(setting.split["forget"])[0]
        encoded = setting.split["forget"][topic]
        idx = np.arange(min(k, len(encoded)))
        return encoded.batch(idx) | {"index": idx.astype(np.int32), "topic": np.zeros(len(idx), np.int32)}

    def forget_score(self, params, model_state, setting: Setting) -> float:
        """Accuracy (%) on the forget topics' questions."""
        return float(self.evaluate(params, model_state, setting).metrics["forget_accuracy"])

    def compare(self, evaluation: Evaluation, reference: Evaluation | None) -> dict:
        if reference is None or evaluation.metrics.get("forget_accuracy") is None:
            return {"forget_accuracy_delta": None, "control_accuracy_delta": None}
        return {
            f"{k}_delta": evaluation.metrics[k] - reference.metrics[k] for k in ("forget_accuracy", "control_accuracy")
        }

    def method_defaults(self) -> dict[str, dict[str, Any]]:
        c = self.config
        if c.model_dir:  # the official RMU run (Zephyr-7B): AdamW, lr 5e-5
            return {"*": {"optimizer": "adamw", "lr": 5e-5, "weight_decay": 0.01}}
        # The tiny decoder's activations are far smaller than Zephyr's: RMU's c and α scaled to them (a small grid on
        # the synthetic topics, seed 0: c = 6.5 barely moved them, α ≤ 1000 erased the control topic too). Over
        # seeds 0-2 (benchmarks/results/wmdp_default) RMU moves forget accuracy by −27 ± 13 points and control by
        # −17 ± 18: on this toy model it does not keep the control topic reliably, and α = 10000 or 30000, which
        # keep it, stop the forgetting (benchmarks/results/wmdp_default/RMU_ALPHA.md).
        return {
            "*": {
                "optimizer": "adamw",
                "lr": 1e-3,
                "weight_decay": 0.01,
                "amplification": 0.2,
                "steering": 60.0,
                "alpha": 3000.0,
            }
        }

    @property
    def default_methods(self) -> tuple[str, ...]:
        return WMDP_METHODS

    def row_fields(self) -> dict[str, Any]:
        c = self.config
        source = "WMDP" if (c.hub or c.questions) else "synthetic topics"
        return {"dataset": source, "model": c.model_dir or "tiny decoder", "trainable": self.trainable}


def _paths(tree):
    return jax.tree_util.tree_flatten_with_path(tree)[0]


def _weighted(accuracy: dict, names: tuple[str, ...], tasks: dict, limit: int | None) -> float:
    """The question-weighted mean accuracy over ``names`` (MMLU counts through its own weighted average)."""
    sizes = {name: min(len(tasks[name]), limit or len(tasks[name])) for name in names}
    return float(sum(accuracy[n] * sizes[n] for n in names) / sum(sizes.values()))
