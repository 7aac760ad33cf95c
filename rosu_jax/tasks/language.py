"""What the language-model tasks share: prompt formats, encoding (question tokens masked out of the loss), batches,
the causal-LM loss terms and jitted scoring with fixed shapes.

Conventions (those of the TOFU and open-unlearning code):
- A (question, answer) pair becomes ``prompt + answer`` tokens followed by EOS; the prompt's tokens get the label
  −100 (no loss), the answer's tokens and the EOS count. The prompt's length is that of the prompt encoded alone,
  as the legacy code counts it.
- Sequences longer than ``max_length`` are cut there (and counted, so the run can say how many).
- NLL of an item = −Σ_t log p(y_t | prompt, y_<t) over its answer tokens (the loss terms use these sums, averaged
  over the batch); the *mean* NLL divides by the number of answer tokens (TOFU's per-item quantities).
- A model is ``apply_fn(params, input_ids, attention_mask) -> logits``; the loss terms run it on
  ``combine(params, model_state["frozen"])``, so the trainable leaves are ``params`` and everything else is frozen.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rosu_jax.core.types import PyTree
from rosu_jax.models.lm import (
    Tokenizer,
    bucket_length,
    build_decoder,
    check_vocab,
    greedy_generate,
    load_hf_checkpoint,
    save_hf_checkpoint,
    tiny,
    train_bpe_tokenizer,
)
from rosu_jax.models.trainable import combine
from rosu_jax.tasks.base import Task, TrainingData, TrainingRecipe
from rosu_jax.tasks.batching import index_batches, num_batches

IGNORE = -100
PROMPT_FORMATS = ("phi", "llama2", "chat")
SYSTEM_PROMPT = "You are a helpful assistant."
# Padded lengths: multiples of 16 up to 512 (padding is computed too: a set of 74-token items padded to 80, not
# 128), then powers of two. Each length compiles once per model.
LENGTH_BUCKETS = (*range(16, 513, 16), 1024, 2048, 4096)


def format_pair(question: str, answer: str, fmt: str, tokenizer: Tokenizer) -> tuple[str, str]:
    """(prompt text, full text) in a prompt format: 'phi' ("Question: q\\n" then "Answer: a"), 'llama2'
    ("[INST] q [/INST]" then a) or 'chat' (the tokenizer's chat template with ``SYSTEM_PROMPT``)."""
    if fmt == "phi":
        prompt = f"Question: {question}\n"
        return prompt, prompt + f"Answer: {answer}"
    if fmt == "llama2":
        prompt = f"[INST] {question} [/INST]"
        return prompt, prompt + answer
    if fmt == "chat":
        messages = [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}]
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
        return prompt, prompt + answer
    raise ValueError(f"unknown prompt format {fmt!r}; choose one of {', '.join(PROMPT_FORMATS)}.")


@dataclasses.dataclass(frozen=True)
class Encoded:
    """(question, answer) pairs as right-padded arrays [N, L]: ``input_ids``, ``attention_mask``, ``labels`` (−100
    on prompt and padding), and the prompts alone (``prompt_ids`` left-padded [N, P] with ``prompt_mask``), for
    generation. ``truncated``: how many sequences were cut at the maximum length."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    labels: np.ndarray
    prompt_ids: np.ndarray
    prompt_mask: np.ndarray
    prompts: tuple[str, ...]
    truncated: int

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def batch(self, idx: np.ndarray, prefix: str = "") -> dict[str, np.ndarray]:
        return {
            f"{prefix}input_ids": self.input_ids[idx],
            f"{prefix}attention_mask": self.attention_mask[idx],
            f"{prefix}labels": self.labels[idx],
        }


def encode_pairs(
    tokenizer: Tokenizer, pairs: Sequence[tuple[str, str]], fmt: str, max_length: int, length: int | None = None
) -> Encoded:
    """Encode (question, answer) pairs (see the module docstring); ``length`` fixes the padded length (default: the
    smallest length bucket that holds the longest sequence)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token; TOFU's answers end with EOS.")
    pad = eos if pad is None else pad
    special = fmt != "chat"  # a rendered chat template already holds its special tokens
    sequences, prompt_lengths, prompts, truncated = [], [], [], 0
    for question, answer in pairs:
        prompt, full = format_pair(question, answer, fmt, tokenizer)
        ids = tokenizer.encode(full, add_special_tokens=special) + [eos]
        n_prompt = len(tokenizer.encode(prompt, add_special_tokens=special))
        if len(ids) > max_length:
            ids, truncated = ids[:max_length], truncated + 1
        sequences.append(ids)
        prompt_lengths.append(min(n_prompt, len(ids)))
        prompts.append(prompt)
    width = length or bucket_length(max(map(len, sequences)), LENGTH_BUCKETS)
    n = len(sequences)
    input_ids = np.full((n, width), pad, np.int32)
    labels = np.full((n, width), IGNORE, np.int32)
    mask = np.zeros((n, width), np.int32)
    prompt_width = bucket_length(max(prompt_lengths), LENGTH_BUCKETS)
    prompt_ids = np.full((n, prompt_width), pad, np.int32)
    prompt_mask = np.zeros((n, prompt_width), np.int32)
    for i, (ids, n_prompt) in enumerate(zip(sequences, prompt_lengths, strict=True)):
        input_ids[i, : len(ids)] = ids
        mask[i, : len(ids)] = 1
        labels[i, n_prompt : len(ids)] = ids[n_prompt:]
        prompt_ids[i, prompt_width - n_prompt :] = ids[:n_prompt]
        prompt_mask[i, prompt_width - n_prompt :] = 1
    return Encoded(input_ids, mask, labels, prompt_ids, prompt_mask, tuple(prompts), truncated)


def encode_texts(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> Encoded:
    """Plain texts (corpus passages) for language modelling: every token is a label (no prompt), cut at
    ``max_length`` tokens; the prompts are empty."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sequences, truncated = [], 0
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=True)
        if len(ids) > max_length:
            ids, truncated = ids[:max_length], truncated + 1
        sequences.append(ids)
    width = bucket_length(max(map(len, sequences)), LENGTH_BUCKETS)
    input_ids = np.full((len(texts), width), pad, np.int32)
    mask = np.zeros((len(texts), width), np.int32)
    for i, ids in enumerate(sequences):
        input_ids[i, : len(ids)] = ids
        mask[i, : len(ids)] = 1
    labels = np.where(mask == 1, input_ids, IGNORE).astype(np.int32)
    empty = np.zeros((len(texts), 1), np.int32)
    return Encoded(input_ids, mask, labels, empty, empty, ("",) * len(texts), truncated)


def token_nll(logits: jax.Array, labels: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per item: (Σ NLL over answer tokens, their number, teacher-forced argmax [B, T−1]); position t predicts
    label t+1."""
    logits, targets = logits[:, :-1].astype(jnp.float32), labels[:, 1:]
    valid = targets != IGNORE
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, targets, 0))
    nll = jnp.where(valid, nll, 0.0)
    return nll.sum(-1), valid.sum(-1).astype(jnp.float32), jnp.argmax(logits, axis=-1).astype(jnp.int32)


def full_params(params: PyTree, model_state: PyTree) -> PyTree:
    """The whole parameter tree: the trainable leaves plus the frozen ones kept in the model state."""
    return combine(params, model_state.get("frozen", {}))


def loss_terms(apply_fn: Callable, hidden_layer: int | None = None) -> dict[str, Callable]:
    """The named loss terms of ``rosu_jax.tasks.base`` for a causal LM (model state: ``{"frozen": ...}``):

    forget / retain: mean over the batch of the summed answer NLL (L_f's increase is forgetting);
    sequence_nll: ((Σ NLL, number of answer tokens) per item, model_state), for NPO and SimNPO;
    idk: the summed NLL of the forget questions answered with a refusal (the batch's ``idk_*`` fields);
    hidden (with ``hidden_layer``): ((the output of decoder layer ``hidden_layer`` [B, T, d], the attention mask),
    model_state), for RMU; the layers above it and the logits are never computed (XLA drops what is not used).
    """

    def sequence_nll(params, model_state, batch, key, prefix=""):
        logits = apply_fn(
            full_params(params, model_state), batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"]
        )
        total, count, _ = token_nll(logits, batch[f"{prefix}labels"])
        return (total, count), model_state

    def mean_nll(prefix=""):
        def loss(params, model_state, batch, key):
            (total, _), _ = sequence_nll(params, model_state, batch, key, prefix)
            return jnp.mean(total), model_state

        return loss

    terms = {"forget": mean_nll(), "retain": mean_nll(), "sequence_nll": sequence_nll, "idk": mean_nll("idk_")}
    if hidden_layer is not None:

        def hidden(params, model_state, batch, key):
            _, states = apply_fn(
                full_params(params, model_state),
                batch["input_ids"],
                batch["attention_mask"],
                hidden_layers=(hidden_layer,),
            )
            return (states[hidden_layer], batch["attention_mask"]), model_state

        terms["hidden"] = hidden
    return terms


@functools.lru_cache(maxsize=8)
def _scorer(apply_fn: Callable):
    """One jitted scorer per model: (Σ NLL, count, argmax) per item of a fixed-shape batch."""
    return jax.jit(lambda params, ids, mask, labels: token_nll(apply_fn(params, ids, mask), labels))


def score(apply_fn: Callable, params: PyTree, encoded: Encoded, batch_size: int = 32):
    """Per item: (mean NLL over answer tokens, number of answer tokens, teacher-forced argmax [N, L−1]); batches
    are padded to ``batch_size`` rows, so every call of one model and length compiles once."""
    n = len(encoded)
    totals, counts, argmaxes = [], [], []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size) % n  # pad the last batch by wrapping (rows dropped below)
        total, count, argmax = _scorer(apply_fn)(
            params, encoded.input_ids[idx], encoded.attention_mask[idx], encoded.labels[idx]
        )
        keep = min(batch_size, n - start)
        totals.append(np.asarray(total)[:keep])
        counts.append(np.asarray(count)[:keep])
        argmaxes.append(np.asarray(argmax)[:keep])
    total, count = np.concatenate(totals), np.concatenate(counts)
    return total / np.maximum(count, 1.0), count, np.concatenate(argmaxes)


def generate(
    apply_fn: Callable,
    params: PyTree,
    encoded: Encoded,
    tokenizer: Tokenizer,
    *,
    max_new_tokens: int,
    batch_size: int = 32,
) -> list[str]:
    """Greedy answers to the prompts (KV cache, stop at EOS), decoded without special tokens."""
    n = len(encoded)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    texts = []
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size) % n
        tokens, lengths = greedy_generate(
            apply_fn,
            params,
            encoded.prompt_ids[idx],
            encoded.prompt_mask[idx],
            max_new_tokens=max_new_tokens,
            eos_token_id=eos,
            pad_token_id=eos if pad is None else pad,
        )
        tokens, lengths = np.asarray(tokens), np.asarray(lengths)
        for row in range(min(batch_size, n - start)):
            ids = [int(t) for t in tokens[row, : lengths[row]] if int(t) != eos]
            texts.append(tokenizer.decode(ids).strip())
    return texts


def answer_labels(encoded: Encoded) -> np.ndarray:
    """The labels aligned with the teacher-forced argmax of ``score`` (position t predicts label t+1)."""
    return encoded.labels[:, 1:]


@dataclasses.dataclass
class Loaded:
    """A language-model task's data with the hash of its tokenizer: together they key every cached result."""

    data: object
    tokenizer_hash: str

    @property
    def fingerprint(self) -> str:
        return f"{self.data.fingerprint}-{self.tokenizer_hash}"


class LanguageModelTask(Task):
    """What the language-model tasks share: the model is a Hugging Face checkpoint (``config.model_dir``, the
    original model as given) or a tiny decoder (``config.model_kwargs``) trained here with a byte-level BPE trained on
    the task's texts; ``config.dtype``, ``config.vocab_size``, ``config.max_length`` and ``config.train`` as their
    names say."""

    def _load_model(self, data, texts: Sequence[str]) -> Loaded:
        """Read or build the model and the tokenizer (checked against each other) for ``data``."""
        c = self.config
        self._terms = None
        if c.model_dir:
            self.tokenizer = Tokenizer.from_folder(c.model_dir)
            config, apply_fn, params = load_hf_checkpoint(c.model_dir, dtype=c.dtype, scan_layers=False)
        else:
            self.tokenizer = t = train_bpe_tokenizer(texts, c.vocab_size)
            config = tiny(
                "llama",
                **dict(c.model_kwargs),
                vocab_size=t.vocab_size,
                dtype=c.dtype,
                scan_layers=False,
                max_position_embeddings=max(c.max_length, 512),
                eos_token_id=t.eos_token_id,
                pad_token_id=t.pad_token_id,
                bos_token_id=t.bos_token_id,
            )
            apply_fn, params = build_decoder(config, abstract=True)[0], None
        self._model = (config, apply_fn, params)
        check_vocab(self.tokenizer, config)
        return Loaded(data, hashlib.sha256(self.tokenizer.tokenizer.to_str().encode()).hexdigest()[:12])

    @property
    def apply_fn(self):
        return self._model[1]

    def init_model(self, seed: int):
        return build_decoder(self._model[0], seed=seed)[1], {}

    def pretrained(self, seed: int):
        return None if self._model[2] is None else (self._model[2], {})

    def model_key(self) -> dict:
        c = self.config
        if c.model_dir:
            return {"model_dir": c.model_dir, "dtype": c.dtype}
        return {
            "model": dict(c.model_kwargs),
            "dtype": c.dtype,
            "vocab_size": c.vocab_size,
            "max_length": c.max_length,
            "train": dataclasses.asdict(c.train),
        }

    def training_recipe(self) -> TrainingRecipe:
        return self.config.train

    def model_params(self, params: PyTree, model_state: PyTree) -> PyTree:
        """The whole model's parameters from an unlearning state's (trainable ``params`` and the frozen rest)."""
        return full_params(params, model_state)

    def export(self, params: PyTree, model_state: PyTree, folder) -> None:
        """A Hugging Face checkpoint (``config.json``, ``model.safetensors`` in the params' dtype) and the
        tokenizer, readable by ``--model-dir`` and by transformers' ``from_pretrained``."""
        save_hf_checkpoint(folder, self._model[0], self.model_params(params, model_state))
        self.tokenizer.save(folder)

    def text_batches(self, encoded: Encoded, batch_size: int, seed: int) -> TrainingData:
        """Training batches of ``encoded`` (each with its rows' ``index``), a pure function of (seed, epoch)."""
        size = min(batch_size, len(encoded))

        def batches(epoch):
            for idx in index_batches(len(encoded), size, seed=seed, epoch=epoch, drop_last=True):
                yield encoded.batch(idx) | {"index": idx.astype(np.int32)}

        return TrainingData(num_batches(len(encoded), size, drop_last=True), batches, len(encoded))
