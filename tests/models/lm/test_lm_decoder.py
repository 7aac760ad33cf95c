import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from flax.nnx import traversals
from jax.sharding import PartitionSpec as P

from rosu_jax.models.lm import Decoder, build_decoder, llama_3_2_1b, param_partition_specs, rope_frequencies, tiny
from rosu_jax.models.lm.decoder import apply_rope, attend, rope_cos_sin, unstacked_shapes
from rosu_jax.parallel import make_mesh

RNG = np.random.default_rng(0)
IDS = RNG.integers(3, 256, size=(2, 9)).astype(np.int32)
MASK = np.ones((2, 9), np.int32)


@functools.cache
def model(**fields):
    """(apply_fn, params) of a tiny llama, built once per set of fields."""
    return build_decoder(tiny(**fields), seed=0)


def unstacked(params):
    """Params as {('layers', i, ...): numpy array}, whatever scan_layers is."""
    flat = traversals.flatten_mapping(params)
    out = {}
    for path in unstacked_shapes(params):
        out[path] = np.asarray(flat[path] if path in flat else flat[(path[0], *path[2:])][path[1]])
    return out


def nll(apply_fn, params, ids, mask):
    logp = jax.nn.log_softmax(apply_fn(params, ids, mask)[:, :-1])
    token_nll = -jnp.take_along_axis(logp, ids[:, 1:, None], axis=-1)[..., 0]
    weights = mask[:, 1:].astype(jnp.float32)
    return jnp.sum(token_nll * weights) / jnp.sum(weights)


@pytest.mark.parametrize("theta", [10000.0, 500000.0])
def test_rope_rotates_each_pair_by_position_times_frequency(theta):
    config = tiny(rope_theta=theta)
    d, half = config.head_dim, config.head_dim // 2
    positions = RNG.integers(0, 4000, size=(2, 5))
    x = RNG.normal(size=(2, 5, 3, d)).astype(np.float32)
    cos, sin = rope_cos_sin(jnp.asarray(positions), config, jnp.float32)
    got = np.asarray(apply_rope(jnp.asarray(x), cos, sin))
    freq = theta ** (-np.arange(half) * 2.0 / d)
    angle = positions[:, :, None, None] * freq  # [B, T, 1, half], in float64
    a, b = x[..., :half], x[..., half:]
    expected = np.concatenate([a * np.cos(angle) - b * np.sin(angle), b * np.cos(angle) + a * np.sin(angle)], -1)
    np.testing.assert_allclose(got, expected, atol=2e-4)


def test_llama3_rope_scaling_matches_the_reference_loop():
    """Meta's ``apply_scaling`` (Llama 3.1 reference code), frequency by frequency."""
    config = llama_3_2_1b()
    s = config.rope_scaling
    base = 1.0 / (config.rope_theta ** (np.arange(0, config.head_dim, 2) / config.head_dim))
    expected, bands = [], set()
    for freq in base:
        wavelen = 2 * math.pi / freq
        if wavelen < s.original_max_position_embeddings / s.high_freq_factor:
            expected.append(freq)
            bands.add("kept")
        elif wavelen > s.original_max_position_embeddings / s.low_freq_factor:
            expected.append(freq / s.factor)
            bands.add("divided")
        else:
            smooth = (s.original_max_position_embeddings / wavelen - s.low_freq_factor) / (
                s.high_freq_factor - s.low_freq_factor
            )
            expected.append((1 - smooth) * freq / s.factor + smooth * freq)
            bands.add("interpolated")
    assert bands == {"kept", "divided", "interpolated"}
    np.testing.assert_allclose(rope_frequencies(config), expected, rtol=2e-6)
    np.testing.assert_allclose(rope_frequencies(tiny(rope_theta=500000.0, head_dim=64)), base, rtol=2e-6)


def test_grouped_query_attention_equals_repeated_kv_heads():
    b, t, heads, kv_heads, d = 2, 6, 6, 2, 8
    q = RNG.normal(size=(b, t, heads, d)).astype(np.float32)
    k, v = (RNG.normal(size=(b, t, kv_heads, d)).astype(np.float32) for _ in range(2))
    allowed = np.tril(np.ones((t, t), bool))[None] & (RNG.random((b, 1, t)) > 0.3)
    allowed[:, :, 0] = True  # every query sees at least one key
    got = np.asarray(attend(jnp.asarray(q), jnp.asarray(k), jnp.asarray(v), jnp.asarray(allowed)))
    k_rep, v_rep = (np.repeat(a, heads // kv_heads, axis=2).astype(np.float64) for a in (k, v))  # head h -> h // 3
    logits = np.einsum("bthd,bshd->bhts", q, k_rep) / math.sqrt(d)
    logits = np.where(allowed[:, None], logits, -np.inf)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = np.einsum("bhts,bshd->bthd", probs, v_rep).reshape(b, t, heads * d)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_left_padding_does_not_change_the_real_tokens(quick_jit):
    """Row 1 is row 0's first 6 tokens behind 3 pads (of arbitrary ids): positions restart at its first real
    token, so its logits equal row 0's on those tokens (causal: row 0's prefix ignores what follows)."""
    apply_fn, params = model()
    ids = IDS.copy()
    ids[1, 3:] = ids[0, :6]
    ids[1, :3] = [0, 77, 5]
    mask = MASK.copy()
    mask[1, :3] = 0
    logits = np.asarray(quick_jit(apply_fn)(params, ids, mask))
    np.testing.assert_allclose(logits[1, 3:], logits[0, :6], atol=1e-5)
    assert np.isfinite(logits).all()  # padding queries see no key: a uniform average, not NaN


def test_scan_and_loop_give_the_same_weights_logits_and_hidden_states(quick_jit):
    scan_fn, scan_params = model()
    loop_fn, loop_params = model(scan_layers=False)
    assert "kernel" in loop_params["layers"][1]["mlp"]["down_proj"]
    assert scan_params["layers"]["mlp"]["down_proj"]["kernel"].shape == (2, 128, 64)
    jax.tree.map(np.testing.assert_array_equal, unstacked(scan_params), unstacked(loop_params))
    scan_logits, scan_hidden = quick_jit(scan_fn, static_argnames="hidden_layers")(
        scan_params, IDS, MASK, hidden_layers=(0, 1)
    )
    loop_logits, loop_hidden = quick_jit(loop_fn, static_argnames="hidden_layers")(
        loop_params, IDS, MASK, hidden_layers=(0, 1)
    )
    assert scan_logits.dtype == jnp.float32 and scan_logits.shape == (2, 9, 256)
    np.testing.assert_allclose(scan_logits, loop_logits, atol=1e-5)
    for layer in (0, 1):
        assert scan_hidden[layer].shape == (2, 9, 64)
        np.testing.assert_allclose(scan_hidden[layer], loop_hidden[layer], atol=1e-5)
    # The last hidden state is the input of the final norm and the head.
    h = np.asarray(scan_hidden[1], np.float64)
    normed = h / np.sqrt(np.mean(h**2, -1, keepdims=True) + 1e-6) * np.asarray(scan_params["norm"]["scale"])
    np.testing.assert_allclose(normed @ np.asarray(scan_params["lm_head"]["kernel"]), scan_logits, atol=1e-4)
    with pytest.raises(ValueError, match=r"hidden_layers \[2\] out of range"):
        scan_fn(scan_params, IDS, MASK, hidden_layers=(2,))


def test_tied_embeddings_read_the_embedding_as_the_head(quick_jit):
    tied_fn, tied = model(tie_word_embeddings=True)
    assert "lm_head" not in tied
    untied_fn, untied = model()
    untied = {**tied, "lm_head": {"kernel": tied["embed_tokens"]["embedding"].T}}
    np.testing.assert_allclose(quick_jit(tied_fn)(tied, IDS, MASK), quick_jit(untied_fn)(untied, IDS, MASK), atol=1e-5)


def test_remat_gives_the_same_loss_and_gradients_with_the_params_structure(quick_jit):
    """scan without remat vs the layer loop with remat: same loss, same gradients, each shaped like its params."""
    scan_fn, params = model()
    remat_fn, loop_params = model(scan_layers=False, remat=True)
    grads = {}
    for name, (apply_fn, p) in {"scan": (scan_fn, params), "remat": (remat_fn, loop_params)}.items():
        loss, grad = quick_jit(jax.value_and_grad(functools.partial(nll, apply_fn)))(p, IDS, MASK)
        assert jax.tree.structure(grad) == jax.tree.structure(p)
        grads[name] = (loss, grad)
    np.testing.assert_allclose(grads["scan"][0], grads["remat"][0], rtol=1e-6)
    jax.tree.map(
        functools.partial(np.testing.assert_allclose, atol=1e-6),
        unstacked(grads["scan"][1]),
        unstacked(grads["remat"][1]),
    )


def test_bfloat16_params_and_compute(quick_jit):
    apply_fn, params = model(dtype="bfloat16", param_dtype="bfloat16")
    assert {leaf.dtype for leaf in jax.tree.leaves(params)} == {jnp.dtype(jnp.bfloat16)}
    _, params32 = model()
    jax.tree.map(  # the same draws, rounded
        lambda a, b: np.testing.assert_array_equal(a, b.astype(jnp.bfloat16)), params, params32
    )
    logits = quick_jit(apply_fn)(params, IDS, MASK)
    assert logits.dtype == jnp.float32
    np.testing.assert_allclose(logits, quick_jit(model()[0])(params32, IDS, MASK), atol=0.05)
    grad = quick_jit(jax.grad(functools.partial(nll, apply_fn)))(params, IDS, MASK)
    assert jax.tree.map(lambda g: g.dtype, grad) == jax.tree.map(lambda p: p.dtype, params)


def test_initialisation_is_seeded_and_abstract_on_request():
    _, a = build_decoder(tiny(), seed=1)
    _, b = build_decoder(tiny(), seed=1)
    _, c = build_decoder(tiny(), seed=2)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.array_equal(a["embed_tokens"]["embedding"], c["embed_tokens"]["embedding"])
    assert float(np.std(a["embed_tokens"]["embedding"])) == pytest.approx(0.02, rel=0.05)
    np.testing.assert_array_equal(a["layers"]["input_layernorm"]["scale"], 1.0)
    _, shapes = build_decoder(tiny(), abstract=True)
    assert jax.tree.map(lambda x: (x.shape, x.dtype), shapes) == jax.tree.map(lambda x: (x.shape, x.dtype), a)


@pytest.mark.parametrize("scan_layers", [True, False])
def test_partition_specs_follow_the_module_annotations(scan_layers):
    config = tiny("qwen2", scan_layers=scan_layers)
    abstract = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(0)))
    annotated = nnx.to_pure_dict(nnx.get_partition_spec(nnx.state(abstract, nnx.Param)))
    _, shapes = build_decoder(config, abstract=True)
    specs = param_partition_specs(shapes)
    assert specs == annotated == param_partition_specs(abstract)
    layer = specs["layers"] if scan_layers else specs["layers"][0]
    lead = (None,) if scan_layers else ()
    assert specs["embed_tokens"]["embedding"] == P("fsdp", None)
    assert specs["lm_head"]["kernel"] == P(None, "fsdp")
    assert layer["self_attn"]["q_proj"]["kernel"] == P(*lead, "fsdp", None)
    assert layer["self_attn"]["q_proj"]["bias"] == P()
    assert layer["mlp"]["down_proj"]["kernel"] == P(*lead, "fsdp", None)
    assert layer["mlp"]["up_proj"]["kernel"] == P(*lead, None, "fsdp")
    assert layer["input_layernorm"]["scale"] == P()
    if not scan_layers:  # layer keys restored as strings (as some checkpoint libraries do) are not a stacked axis
        shapes["layers"] = {str(i): layer for i, layer in shapes["layers"].items()}
        assert param_partition_specs(shapes)["layers"]["1"] == specs["layers"][1]


def test_partition_specs_leave_indivisible_dimensions_whole():
    _, shapes = build_decoder(tiny(vocab_size=260), abstract=True)
    specs = param_partition_specs(shapes, make_mesh("fsdp=8"))
    assert specs["embed_tokens"]["embedding"] == P()  # 260 rows over 8 devices: replicated
    assert specs["layers"]["mlp"]["gate_proj"]["kernel"] == P(None, None, "fsdp")
