"""``JaxLM``: the project's JAX causal decoders as an lm-evaluation-harness model, so that WMDP, MMLU and any other
lm-eval task score them exactly as the field scores Hugging Face models.

It follows lm-eval's ``HFLM`` (``lm_eval/models/huggingface.py``) step by step, without torch:

* tokenisation: ``TemplateLM._encode_pair`` (context and continuation encoded together and split at the context's
  length; trailing spaces of the context move to the continuation), ``tok_encode`` with the tokenizer's own special
  tokens (a leading BOS for Llama) unless ``add_bos_token`` says otherwise or the text already starts with BOS;
* ``loglikelihood``: the model reads ``(context + continuation)[-(max_length + 1):][:-1]`` and the continuation's
  float32 log-probabilities are summed; ``is_greedy`` is whether the argmax is the continuation token at every
  position. Requests with the same input (the " A".." D" of one question) share one forward pass, as HFLM's
  context grouping does;
* ``loglikelihood_rolling``: lm-eval's ``get_rolling_token_windows``/``make_disjoint_window`` windows of
  ``max_length`` tokens after the prefix token, scored by the same program (as HFLM, a tokenizer that adds BOS
  makes the first window score that BOS after the BOS prefix);
* ``generate_until``: greedy decoding with the key/value cache (``greedy_generate``) until an end-of-sequence
  token or ``max_gen_toks``, the text cut where the first ``until`` string starts (``cut_at_stop``).

Shapes are fixed: every batch is padded to ``batch_size`` rows and to a length bucket, so one program is compiled
per bucket (``num_traces`` counts them), not per batch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from lm_eval.api.model import TemplateLM
from lm_eval.models.utils import Collator, handle_stop_sequences, has_bos_prefix, normalize_gen_kwargs
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm import tqdm

from rosu_jax.models.lm import Tokenizer, bucket_length, greedy_generate
from rosu_jax.models.lm.generate import DEFAULT_BUCKETS


class JaxLM(TemplateLM):
    """An ``lm_eval.api.model.LM`` over ``apply_fn(params, input_ids, attention_mask) -> logits [B, T, V]``.

    ``max_length`` (None: the model's ``max_position_embeddings``, at most the largest bucket) is the window of
    ``loglikelihood`` and ``loglikelihood_rolling`` and the prompt-plus-generation budget of ``generate_until``, as
    HFLM's. ``max_gen_toks`` is the generation length when a request does not set one (HFLM's default 256).
    ``add_bos_token`` is HFLM's switch (None: the tokenizer's default). ``compiler_options`` go to ``jax.jit``.
    """

    def __init__(
        self,
        apply_fn,
        params,
        tokenizer: Tokenizer,
        *,
        batch_size: int = 16,
        max_length: int | None = None,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
        max_gen_toks: int = 256,
        add_bos_token: bool | None = None,
        compiler_options: Mapping[str, Any] | None = None,
    ):
        super().__init__()
        config = apply_fn.config
        self.apply_fn, self.params, self.tokenizer = apply_fn, params, tokenizer
        self.batch_size, self.buckets, self.max_gen_toks = int(batch_size), tuple(buckets), int(max_gen_toks)
        self.add_bos_token, self.compiler_options = add_bos_token, compiler_options
        self._max_length = int(max_length or min(config.max_position_embeddings, max(self.buckets)))
        if self._max_length > max(self.buckets):
            raise ValueError(f"max_length {self._max_length} exceeds the largest bucket {max(self.buckets)}.")
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else next(iter(config.eos_token_ids), None)
        if eos is None:
            raise ValueError("neither the tokenizer nor the model config has an end-of-sequence token.")
        self._eot = int(eos)
        # Generation stops at any of the model's end-of-sequence tokens, as transformers' generate does.
        self._stop_ids = tuple(dict.fromkeys((*config.eos_token_ids, self._eot)))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else config.pad_token_id
        self._pad = int(self._eot if pad is None else pad)
        self.num_traces = 0

        def score(params, ids, mask, targets, target_mask):
            # Runs only when jax traces a new shape: a count per (batch, bucket, slots), not per batch.
            self.num_traces += 1
            logits = apply_fn(params, ids, mask)  # float32 [B, T, V]
            # log_softmax at the target tokens only (logit - logsumexp): no second [B, T, V] buffer.
            log_z = jax.nn.logsumexp(logits, axis=-1)  # [B, T]
            picked = jnp.take_along_axis(logits[:, None], targets[..., None], axis=-1)[..., 0]  # [B, K, T]
            logprob = jnp.sum(jnp.where(target_mask, picked - log_z[:, None], 0.0), axis=-1)
            hits = jnp.argmax(logits, axis=-1)[:, None] == targets
            return logprob, jnp.all(hits | ~target_mask, axis=-1)

        self._score = jax.jit(score, compiler_options=dict(compiler_options) if compiler_options else None)

    @property
    def eot_token_id(self) -> int:
        return self._eot

    @property
    def prefix_token_id(self) -> int:
        # HFLM: BOS when the tokenizer has one, else EOS; the context of an empty-context request.
        bos = self.tokenizer.bos_token_id
        return self._eot if bos is None else int(bos)

    @property
    def max_length(self) -> int:
        return self._max_length

    def tok_encode(
        self, string: str, add_special_tokens: bool | None = None, left_truncate_len: int | None = None, **kwargs
    ) -> list[int]:
        """HFLM's ``tok_encode``: special tokens as asked, else ``add_bos_token``, else the tokenizer's default;
        never a second BOS before text that starts with one."""
        add = add_special_tokens if add_special_tokens is not None else self.add_bos_token
        if add_special_tokens is None and has_bos_prefix(
            string, self.tokenizer.decode([self.prefix_token_id], skip_special_tokens=False)
        ):
            add = False
        ids = self.tokenizer.encode(string, add_special_tokens=True if add is None else add)
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """``[(strings, context_ids, continuation_ids)]`` -> ``[(summed log-probability, is_greedy)]``."""
        length, size = self._max_length, self.batch_size
        groups: dict[tuple[int, ...], list[int]] = {}  # model input -> the requests it scores
        for j, (_, context, continuation) in enumerate(requests):
            if not context or not continuation:
                raise ValueError(f"request {j}: empty context or continuation tokens.")
            if len(continuation) > length:
                raise ValueError(f"request {j}: {len(continuation)} continuation tokens exceed max_length {length}.")
            # Left truncation exactly as HFLM: the last max_length + 1 tokens, minus the one no logit predicts.
            groups.setdefault(tuple((context + continuation)[-(length + 1) :][:-1]), []).append(j)
        slots = 1 << (max(map(len, groups.values()), default=1) - 1).bit_length()
        order = sorted(groups, key=lambda ids: (-len(ids), ids))  # longest first, as HFLM, so buckets shrink
        results: list[tuple[float, bool]] = [(0.0, False)] * len(requests)
        for start in tqdm(range(0, len(order), size), disable=disable_tqdm, desc="loglikelihood batches"):
            chunk = order[start : start + size]
            width = bucket_length(len(chunk[0]), self.buckets)
            ids = np.full((size, width), self._pad, np.int32)
            mask = np.zeros((size, width), bool)
            mask[:, 0] = True  # filler rows hold one token, so no row attends to nothing
            targets = np.zeros((size, slots, width), np.int32)
            target_mask = np.zeros((size, slots, width), bool)
            for row, inp in enumerate(chunk):
                # Right padding, as HFLM: the real tokens keep positions 0..n-1 and never see the padding.
                n = len(inp)
                ids[row, :n], mask[row, :n] = inp, True
                for slot, j in enumerate(groups[inp]):
                    continuation = requests[j][2]
                    targets[row, slot, n - len(continuation) : n] = continuation
                    target_mask[row, slot, n - len(continuation) : n] = True
            logprob, greedy = map(np.asarray, self._score(self.params, ids, mask, targets, target_mask))
            for row, inp in enumerate(chunk):
                for slot, j in enumerate(groups[inp]):
                    results[j] = (float(logprob[row, slot]), bool(greedy[row, slot]))
        return results

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of each whole text: the sum over HFLM's disjoint rolling windows."""
        windows, owners = [], []
        for i, (text,) in enumerate(req.args for req in requests):
            tokens = self.tok_encode(text)
            for context, continuation in map(
                make_disjoint_window, get_rolling_token_windows(tokens, self.prefix_token_id, self._max_length, 1)
            ):
                windows.append((None, context, continuation))
                owners.append(i)
        totals = [0.0] * len(requests)
        for i, (logprob, _) in zip(owners, self._loglikelihood_tokens(windows, disable_tqdm), strict=True):
            totals[i] += logprob
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy continuations, grouped by generation settings (lm-eval's ``Collator``) and cut at ``until``."""
        eos_text = self.tokenizer.decode([self._eot], skip_special_tokens=False)
        collator = Collator(
            [req.args for req in requests],
            sort_fn=lambda args: (-len(self.tok_encode(args[0])), args[0]),
            group_by="gen_kwargs",
            group_fn=lambda args: args[1],
        )
        outputs = []
        for chunk in tqdm(collator.get_batched(n=self.batch_size), disable=disable_tqdm, desc="generate batches"):
            contexts, settings = zip(*chunk, strict=True)
            kwargs = normalize_gen_kwargs(settings[0], self.max_gen_toks)
            if kwargs.get("do_sample"):
                raise ValueError(f"JaxLM decodes greedily only; the request asks for sampling: {settings[0]}.")
            until = handle_stop_sequences(kwargs.pop("until", None), eos=eos_text)
            new_tokens = kwargs.pop("max_gen_toks")
            if new_tokens >= self._max_length:
                raise ValueError(f"max_gen_toks {new_tokens} leaves no room for a prompt in max_length.")
            prompts = [self.tok_encode(c, left_truncate_len=self._max_length - new_tokens) for c in contexts]
            width = max(map(len, prompts))
            ids = np.full((self.batch_size, width), self._pad, np.int32)
            mask = np.zeros((self.batch_size, width), bool)
            mask[:, -1] = True  # filler rows: one token, left-padded like the real ones
            for row, prompt in enumerate(prompts):
                ids[row, width - len(prompt) :], mask[row, width - len(prompt) :] = prompt, True
            tokens, lengths = map(
                np.asarray,
                greedy_generate(
                    self.apply_fn,
                    self.params,
                    ids,
                    mask,
                    max_new_tokens=new_tokens,
                    eos_token_id=self._stop_ids,
                    pad_token_id=self._pad,
                    buckets=self.buckets,
                    compiler_options=self.compiler_options,
                ),
            )
            for row in range(len(prompts)):
                text = self.tokenizer.decode(tokens[row, : lengths[row]])
                outputs.append(cut_at_stop(text, until))
        return collator.get_original(outputs)


def cut_at_stop(text: str, until: Sequence[str]) -> str:
    """``text`` up to the earliest occurrence of any non-empty stop string.

    lm-eval's ``postprocess_generated_text`` splits at each stop string in turn and HFLM stops a batch once every row
    has produced one stop string, which agree with this except for stop strings that overlap in the text: HFLM's
    answer then depends on the order of ``until`` and on the other rows of the batch. Greedy decoding past a stop
    string changes nothing before it, so generating to ``max_gen_toks`` and cutting is exact.
    """
    starts = [text.find(stop) for stop in until if stop and stop in text]
    return text[: min(starts)] if starts else text
