"""Parity with Hugging Face transformers on tiny random checkpoints of each family (see
fixtures/make_parity_fixtures.py, which recorded transformers' logits, hidden states and greedy tokens): the
project's loader, decoder and generation must reproduce them without torch."""

import numpy as np
import pytest

from rosu_jax.models.lm import greedy_generate, load_hf_checkpoint


@pytest.mark.parametrize("scan_layers", [True, False])
def test_matches_transformers(fixtures, parity_case, scan_layers, quick_jit, compiler_options):
    ref = np.load(fixtures / parity_case / "reference.npz")
    config, apply_fn, params = load_hf_checkpoint(fixtures / parity_case, scan_layers=scan_layers)
    assert config.scan_layers == scan_layers
    layer = int(ref["hidden_layer"])
    forward = quick_jit(apply_fn, static_argnames="hidden_layers")
    logits, hidden = forward(params, ref["input_ids"], ref["attention_mask"], hidden_layers=(layer,))
    real = ref["attention_mask"].astype(bool)  # padding slots hold no prediction: only real tokens are compared
    np.testing.assert_allclose(np.asarray(logits)[real], ref["logits"][real], atol=1e-4, rtol=0)
    np.testing.assert_allclose(np.asarray(hidden[layer])[real], ref["hidden"][real], atol=1e-4, rtol=0)

    tokens, lengths = greedy_generate(
        apply_fn,
        params,
        ref["input_ids"],
        ref["attention_mask"],
        max_new_tokens=ref["generated"].shape[1],
        eos_token_id=int(ref["eos_token_id"]),
        pad_token_id=int(ref["pad_token_id"]),
        compiler_options=compiler_options,
    )
    np.testing.assert_array_equal(tokens, ref["generated"])
    assert lengths[0] < ref["generated"].shape[1]  # row 0 stopped at the end-of-sequence token
