import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax.models.lm import Decoder, bucket_length, build_decoder, greedy_generate, tiny

NEW = 6


def left_padded(lengths, total, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 256, size=(len(lengths), total)).astype(np.int32)
    mask = (np.arange(total)[None] >= total - np.asarray(lengths)[:, None]).astype(np.int32)
    return np.where(mask == 1, ids, 0), mask


def naive_greedy(apply_fn, params, ids, mask, steps, quick_jit):
    """Re-run the full forward pass for every new token (no cache): the new tokens go to the right of the prompt,
    in slots that stay masked until they are filled, so one compiled program serves every step."""
    batch, prompt_len = ids.shape
    ids = np.concatenate([ids, np.zeros((batch, steps), np.int32)], axis=1)
    mask = np.concatenate([mask, np.zeros((batch, steps), np.int32)], axis=1)
    forward = quick_jit(apply_fn)
    for i in range(steps):
        logits = np.asarray(forward(params, ids, mask))
        ids[:, prompt_len + i] = logits[:, prompt_len + i - 1].argmax(-1)
        mask[:, prompt_len + i] = 1
    return ids[:, prompt_len:]


def test_bucket_length():
    assert [bucket_length(n) for n in (1, 32, 33, 2048)] == [32, 32, 64, 2048]
    assert bucket_length(5, buckets=(16, 8)) == 8
    with pytest.raises(ValueError, match="exceeds the largest bucket 2048"):
        bucket_length(2049)


@pytest.mark.parametrize("family, scan_layers", [("llama", True), ("qwen3", False)])
def test_cached_generation_equals_naive_generation(family, scan_layers, quick_jit, compiler_options):
    apply_fn, params = build_decoder(tiny(family, scan_layers=scan_layers), seed=3)
    ids, mask = left_padded([7, 3, 5], total=7)
    tokens, lengths = greedy_generate(
        apply_fn,
        params,
        ids,
        mask,
        max_new_tokens=NEW,
        eos_token_id=(),
        pad_token_id=0,
        compiler_options=compiler_options,
    )
    assert tokens.shape == (3, NEW) and tokens.dtype == jnp.int32
    np.testing.assert_array_equal(lengths, NEW)
    np.testing.assert_array_equal(tokens, naive_greedy(apply_fn, params, ids, mask, NEW, quick_jit))


def test_rows_stop_at_their_end_of_sequence_token_and_no_recompile_within_a_bucket(monkeypatch, compiler_options):
    apply_fn, params = build_decoder(tiny(), seed=3)
    ids, mask = left_padded([7, 3, 5], total=7)
    generate = lambda ids, mask, **kw: greedy_generate(
        apply_fn, params, ids, mask, max_new_tokens=NEW, pad_token_id=0, compiler_options=compiler_options, **kw
    )
    free, _ = generate(ids, mask, eos_token_id=())
    free = np.asarray(free)
    eos = int(free[0, 2])  # row 0 stops after 3 tokens (or earlier, if it emitted this token before)
    stop = {row: int(np.argmax(free[row] == eos)) + 1 if eos in free[row] else NEW for row in range(3)}

    traces = []
    original = Decoder.__call__
    monkeypatch.setattr(Decoder, "__call__", lambda self, *a, **kw: traces.append(1) or original(self, *a, **kw))
    tokens, lengths = generate(ids, mask, eos_token_id=eos)
    assert traces, "a new end-of-sequence id is a new program"
    for row in range(3):
        assert lengths[row] == stop[row]
        np.testing.assert_array_equal(tokens[row, : stop[row]], free[row, : stop[row]])
        np.testing.assert_array_equal(tokens[row, stop[row] :], 0)

    traces.clear()  # other prompts, other lengths (<= 32), same batch size: the compiled program is reused
    other_ids, other_mask = left_padded([12, 1, 20], total=20, seed=1)
    generate(other_ids, other_mask, eos_token_id=eos)
    assert not traces
    generate(*left_padded([40, 2, 3], total=40), eos_token_id=eos)  # bucket 64
    assert traces


def test_generation_defaults_and_errors():
    apply_fn, params = build_decoder(tiny(pad_token_id=None, eos_token_id=None), seed=0)
    ids, mask = left_padded([2, 3], total=3)
    with pytest.raises(ValueError, match="no pad_token_id"):
        greedy_generate(apply_fn, params, ids, mask, max_new_tokens=2)
    with pytest.raises(ValueError, match="LEFT-padded"):
        greedy_generate(apply_fn, params, ids[:, ::-1], mask[:, ::-1], max_new_tokens=2, pad_token_id=0)
    with pytest.raises(ValueError, match=r"must both be \[B, T\]"):
        greedy_generate(apply_fn, params, ids, mask[:, 1:], max_new_tokens=2, pad_token_id=0)
