"""Greedy generation with a key/value cache, compiled once per (batch size, prompt bucket).

Prompts are LEFT-padded (every row's last prompt slot is a real token, so one next-token read serves the batch)
and padded further on the left to a bucket length (``bucket_length``): two batches whose longest prompts fall in
the same bucket reuse one compiled program. The cache has ``bucket + max_new_tokens`` slots; positions follow the
attention mask (``cumsum(mask) - 1``), so the extra left padding changes nothing. As Hugging Face's
``generate(do_sample=False)``: a row stops at its first end-of-sequence token (kept in the output), every later
token of that row is ``pad_token_id``; the loop ends when all rows have stopped or after ``max_new_tokens``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rosu_jax.models.functional import merge_model
from rosu_jax.models.lm.decoder import ApplyFn, KVCache, Params, positions_from_mask

DEFAULT_BUCKETS = (32, 64, 128, 256, 512, 1024, 2048)


def bucket_length(n: int, buckets: Sequence[int] = DEFAULT_BUCKETS) -> int:
    """The smallest bucket >= ``n``; a ``ValueError`` when ``n`` exceeds the largest bucket."""
    for bucket in sorted(buckets):
        if n <= bucket:
            return int(bucket)
    raise ValueError(f"length {n} exceeds the largest bucket {max(buckets)}; pass larger buckets.")


@functools.lru_cache(maxsize=16)
def _compiled(apply_fn: ApplyFn, max_new_tokens: int, eos_ids: tuple[int, ...], pad_id: int, options: tuple):
    """The jitted generation loop of one model and setting (jax.jit then caches one program per input shape)."""
    info, config = apply_fn.apply_info, apply_fn.config
    eos = jnp.asarray(eos_ids, jnp.int32)

    def generate(params: Params, prompt_ids: jax.Array, prompt_mask: jax.Array):
        model = merge_model(info, params, {})
        batch, prompt_len = prompt_ids.shape
        # Generated slots are always valid keys; causality hides the ones not yet written.
        key_mask = jnp.concatenate([prompt_mask, jnp.ones((batch, max_new_tokens), bool)], axis=1)
        cache = KVCache.zeros(config, batch, prompt_len + max_new_tokens)
        logits, _, cache = model(prompt_ids, positions_from_mask(prompt_mask), key_mask, cache=cache)
        num_real = jnp.sum(prompt_mask.astype(jnp.int32), axis=1)

        def emit(i, logits, done, out, lengths):
            token = jnp.where(done, pad_id, jnp.argmax(logits, axis=-1).astype(jnp.int32))
            out = out.at[:, i].set(token)
            lengths = jnp.where(done, lengths, i + 1)
            return token, done | jnp.isin(token, eos), out, lengths

        out = jnp.full((batch, max_new_tokens), pad_id, jnp.int32)
        token, done, out, lengths = emit(0, logits[:, -1], jnp.zeros(batch, bool), out, jnp.zeros(batch, jnp.int32))

        def cond(carry):
            i, _, done, *_ = carry
            return (i < max_new_tokens) & ~jnp.all(done)

        def body(carry):
            i, token, done, out, lengths, cache = carry
            positions = (num_real + i - 1)[:, None]
            logits, _, cache = model(token[:, None], positions, key_mask, cache=cache)
            token, done, out, lengths = emit(i, logits[:, 0], done, out, lengths)
            return i + 1, token, done, out, lengths, cache

        carry = (jnp.ones((), jnp.int32), token, done, out, lengths, cache)
        _, _, _, out, lengths, _ = jax.lax.while_loop(cond, body, carry)
        return out, lengths

    return jax.jit(generate, compiler_options=dict(options) or None)


def greedy_generate(
    apply_fn: ApplyFn,
    params: Params,
    prompt_ids,
    prompt_mask,
    *,
    max_new_tokens: int,
    eos_token_id: int | Sequence[int] | None = None,
    pad_token_id: int | None = None,
    buckets: Sequence[int] = DEFAULT_BUCKETS,
    compiler_options: Mapping[str, Any] | None = None,
) -> tuple[jax.Array, jax.Array]:
    """Greedy decoding of the left-padded ``prompt_ids`` [B, T] (``prompt_mask`` 1 = token, 0 = padding).

    ``apply_fn`` is a decoder's (``build_decoder``, ``split_decoder``, the checkpoint loader). Returns the new
    tokens [B, max_new_tokens] (int32; ``pad_token_id`` after a row's end-of-sequence token) and each row's length
    (tokens up to and including its end-of-sequence token, else ``max_new_tokens``). ``eos_token_id`` (an id, a
    sequence of ids, or None for the config's) and ``pad_token_id`` (None: the config's, else the first
    end-of-sequence id) are fixed per compiled program. ``compiler_options`` go to ``jax.jit`` (e.g.
    ``{"xla_backend_optimization_level": 0}`` compiles about twice as fast on CPU).
    """
    config = apply_fn.config
    eos = eos_token_id if eos_token_id is not None else config.eos_token_ids
    eos_ids = tuple(int(i) for i in np.atleast_1d(eos))
    pad = pad_token_id if pad_token_id is not None else config.pad_token_id
    if pad is None:
        if not eos_ids:
            raise ValueError(
                "no pad_token_id: pass pad_token_id (or an eos_token_id, used for padding as Hugging Face does)."
            )
        pad = eos_ids[0]
    prompt_ids, prompt_mask = np.asarray(prompt_ids, np.int32), np.asarray(prompt_mask).astype(bool)
    if prompt_ids.shape != prompt_mask.shape or prompt_ids.ndim != 2:
        raise ValueError(f"prompt_ids {prompt_ids.shape} and prompt_mask {prompt_mask.shape} must both be [B, T].")
    if not prompt_mask[:, -1].all():
        raise ValueError("prompts must be LEFT-padded: the last slot of every row must be a real token.")
    extra = bucket_length(prompt_ids.shape[1], buckets) - prompt_ids.shape[1]
    prompt_ids = np.pad(prompt_ids, ((0, 0), (extra, 0)), constant_values=int(pad))
    prompt_mask = np.pad(prompt_mask, ((0, 0), (extra, 0)))
    options = tuple(sorted((compiler_options or {}).items()))
    return _compiled(apply_fn, int(max_new_tokens), eos_ids, int(pad), options)(params, prompt_ids, prompt_mask)
