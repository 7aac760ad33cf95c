"""Llama-style causal decoder in Flax NNX, and the pure functional boundary the unlearning code uses.

Architecture (Llama-2/3, Mistral, Qwen2, Qwen3; switches in ``DecoderConfig``)::

    x = embed_tokens[input_ids]
    per layer:  x = x + o_proj(attention(RoPE(q), RoPE(k), v))     q, k, v = {q,k,v}_proj(input_layernorm(x))
                x = x + down_proj(silu(gate_proj(h)) * up_proj(h))  h = post_attention_layernorm(x)
    logits = lm_head(norm(x))            (or norm(x) @ embed_tokens.T with tied embeddings)

* RMSNorm(x) = w * x / sqrt(mean(x^2) + eps), computed in float32 and cast back (as Hugging Face's LlamaRMSNorm).
* RoPE with the rotate-half convention: x * cos(p w) + rotate_half(x) * sin(p w), rotate_half([a, b]) = [-b, a],
  w_i = theta^(-2i/head_dim), optionally rescaled as Llama-3 (``rope_frequencies``).
* Grouped-query attention: query head h reads key/value head h // (num_heads / num_kv_heads). Logits
  q.k / sqrt(head_dim) and the softmax are float32; a key is visible when it is not padding, not in the future
  and (with ``sliding_window``) fewer than ``sliding_window`` slots back.
* Positions come from the attention mask, ``cumsum(mask) - 1``: a left-padded row starts at position 0 at its first
  real token, as Hugging Face's ``generate`` does, so padding never changes the logits of the real tokens.

Functional boundary (like ``rosu_jax.models.functional``)::

    apply_fn, params = build_decoder(config, seed)        # or split_decoder(model), or the checkpoint loader
    logits = apply_fn(params, input_ids, attention_mask)  # float32 [B, T, vocab]
    logits, hidden = apply_fn(params, input_ids, attention_mask, hidden_layers=(7,))

``params`` is a nested dict of arrays whose paths follow Hugging Face's names with Flax leaf names:
``embed_tokens/embedding``, ``layers/<i>/self_attn/q_proj/kernel`` (linear kernels are ``[in, out]``),
``layers/<i>/mlp/down_proj/kernel``, ``layers/<i>/input_layernorm/scale``, ``norm/scale``, ``lm_head/kernel``. With
``scan_layers`` the layer index is dropped and every layer leaf gets a leading ``num_layers`` axis
(``layers/mlp/down_proj/kernel`` is ``[L, intermediate, hidden]``). ``hidden[l]`` is the output of decoder layer
``l`` (0-based; Hugging Face's ``hidden_states[l + 1]``). ``jax.grad`` w.r.t. ``params`` returns a dict of the same
structure.
"""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from flax.nnx import traversals
from jax.sharding import Mesh, NamedSharding, SingleDeviceSharding
from jax.sharding import PartitionSpec as P

from rosu_jax.models.functional import ApplyInfo, merge_model
from rosu_jax.models.lm.config import DecoderConfig

Params = dict[str, Any]
ApplyFn = Callable[..., Any]

INIT_STD = 0.02
# FSDP: which dimension of each large weight (unstacked, in this module's [in, out] layout) is split over the
# mesh axis 'fsdp': the vocabulary of the embeddings, the hidden dimension of the attention projections (their other
# dimension is num_kv_heads * head_dim, small with GQA) and the intermediate dimension of the MLP.
_FSDP_DIM = {
    "embed_tokens": 0,
    "lm_head": 1,
    "q_proj": 0,
    "k_proj": 0,
    "v_proj": 0,
    "o_proj": 1,
    "gate_proj": 1,
    "up_proj": 1,
    "down_proj": 0,
}
FSDP_AXIS = "fsdp"


def _fsdp_names(module: str, ndim: int) -> tuple[str | None, ...]:
    names: list[str | None] = [None] * ndim
    names[_FSDP_DIM[module]] = FSDP_AXIS
    return tuple(names)


def _normal_init(module: str, ndim: int):
    # The sharding annotation only records the layout (nnx.get_partition_spec); no mesh is needed to build.
    init = nnx.initializers.normal(INIT_STD)
    return nnx.with_partitioning(init, _fsdp_names(module, ndim), eager_sharding=False)


def rope_frequencies(config: DecoderConfig) -> np.ndarray:
    """Inverse RoPE frequencies w_i = theta^(-2i/head_dim), i < head_dim/2 (float32, numpy).

    With ``config.rope_scaling`` (Llama-3), as Hugging Face's ``_compute_llama3_parameters``: with
    wavelength l_i = 2 pi / w_i and L0 = original_max_position_embeddings, frequencies of wavelength above
    L0 / low_freq_factor are divided by ``factor``, those below L0 / high_freq_factor are kept, and those in between
    interpolate, w_i ((1 - s) / factor + s) with s = (L0 / l_i - low_freq_factor) / (high_freq_factor -
    low_freq_factor).
    """
    dim = config.head_dim
    inv_freq = 1.0 / (np.float32(config.rope_theta) ** (np.arange(0, dim, 2).astype(np.float32) / np.float32(dim)))
    scaling = config.rope_scaling
    if scaling is not None:
        old_len = scaling.original_max_position_embeddings
        wavelen = 2 * math.pi / inv_freq
        scaled = np.where(wavelen > old_len / scaling.low_freq_factor, inv_freq / scaling.factor, inv_freq)
        smooth = (old_len / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor)
        smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled
        medium = (wavelen >= old_len / scaling.high_freq_factor) & (wavelen <= old_len / scaling.low_freq_factor)
        inv_freq = np.where(medium, smoothed, scaled)
    return inv_freq.astype(np.float32)


def rope_cos_sin(positions: jax.Array, config: DecoderConfig, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """cos and sin of the rotation angles p w, each ``[B, T, head_dim]`` (the half-size angles repeated twice,
    the rotate-half layout), computed in float32 and cast to ``dtype``."""
    angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(rope_frequencies(config))
    angles = jnp.concatenate([angles, angles], axis=-1)
    return jnp.cos(angles).astype(dtype), jnp.sin(angles).astype(dtype)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate ``x`` [B, T, heads, head_dim] by the angles of ``cos``/``sin`` [B, T, head_dim]."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


def positions_from_mask(attention_mask: jax.Array) -> jax.Array:
    """Position of every slot: ``cumsum(mask) - 1`` (0 at a row's first real token), 0 on left padding."""
    return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=1) - 1, 0)


def attention_allowed(key_mask: jax.Array, num_queries: int, offset: Any, sliding_window: int | None) -> jax.Array:
    """Which keys each query may attend to, ``[B, T, S]`` bool.

    Query t sits at slot ``offset + t`` of the S key slots; it sees slot s when ``key_mask[b, s]`` (not padding),
    s <= offset + t (causal) and, with a sliding window W, s > offset + t - W (Hugging Face's slot-based window).
    """
    query = offset + jnp.arange(num_queries, dtype=jnp.int32)[:, None]
    key = jnp.arange(key_mask.shape[1], dtype=jnp.int32)[None, :]
    allowed = key <= query
    if sliding_window is not None:
        allowed &= key > query - sliding_window
    return allowed[None] & key_mask.astype(bool)[:, None, :]


def attend(q: jax.Array, k: jax.Array, v: jax.Array, allowed: jax.Array) -> jax.Array:
    """Grouped-query attention: q [B, T, H, D], k and v [B, S, K, D] with H a multiple of K, ``allowed``
    [B, T, S] -> [B, T, H * D]. Logits and softmax in float32; a query that sees no key (a padding slot) gets a
    uniform average instead of NaN."""
    b, t, h, d = q.shape
    kv_heads = k.shape[2]
    q = q.reshape(b, t, kv_heads, h // kv_heads, d)
    logits = jnp.einsum("btkgd,bskd->bkgts", q, k, preferred_element_type=jnp.float32) / math.sqrt(d)
    logits = jnp.where(allowed[:, None, None], logits, jnp.finfo(jnp.float32).min)
    probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgts,bskd->btkgd", probs, v).reshape(b, t, h * d)


class KVCache(NamedTuple):
    """Keys and values of every layer, ``[num_layers, B, S, num_kv_heads, head_dim]`` (compute dtype), and the
    number of slots already written (int32 scalar); a forward pass writes its T tokens at slots index..index+T-1."""

    keys: jax.Array
    values: jax.Array
    index: jax.Array

    @classmethod
    def zeros(cls, config: DecoderConfig, batch: int, length: int) -> KVCache:
        shape = (config.num_layers, batch, length, config.num_kv_heads, config.head_dim)
        empty = jnp.zeros(shape, config.dtype)
        return cls(empty, empty, jnp.zeros((), jnp.int32))


class RMSNorm(nnx.Module):
    """Root-mean-square norm over the last axis, in float32, cast back to the input dtype before the scale."""

    def __init__(self, dim: int, eps: float, param_dtype: str):
        self.eps = eps
        self.scale = nnx.Param(jnp.ones((dim,), param_dtype))

    def __call__(self, x: jax.Array) -> jax.Array:
        x32 = x.astype(jnp.float32)
        normed = x32 * jax.lax.rsqrt(jnp.mean(jnp.square(x32), axis=-1, keepdims=True) + self.eps)
        return self.scale[...].astype(x.dtype) * normed.astype(x.dtype)


def _linear(config: DecoderConfig, d_in: int, d_out: int, name: str, rngs: nnx.Rngs, *, bias: bool = False, **kw):
    return nnx.Linear(
        d_in,
        d_out,
        use_bias=bias,
        dtype=config.dtype,
        param_dtype=config.param_dtype,
        kernel_init=_normal_init(name, 2),
        rngs=rngs,
        **kw,
    )


class Attention(nnx.Module):
    """Grouped-query self-attention with RoPE (q/k/v biases: Qwen2; per-head q/k RMSNorm before RoPE: Qwen3)."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        d, q_dim, kv_dim = config.hidden_size, config.num_heads * config.head_dim, config.num_kv_heads * config.head_dim
        self.q_proj = _linear(config, d, q_dim, "q_proj", rngs, bias=config.attention_bias)
        self.k_proj = _linear(config, d, kv_dim, "k_proj", rngs, bias=config.attention_bias)
        self.v_proj = _linear(config, d, kv_dim, "v_proj", rngs, bias=config.attention_bias)
        self.o_proj = _linear(config, q_dim, d, "o_proj", rngs)
        norm = lambda: RMSNorm(config.head_dim, config.rms_norm_eps, config.param_dtype)
        self.q_norm = norm() if config.qk_norm else None
        self.k_norm = norm() if config.qk_norm else None

    def __call__(self, x, rope, allowed, cache, index):
        cfg = self.config
        b, t, _ = x.shape
        q = self.q_proj(x).reshape(b, t, cfg.num_heads, cfg.head_dim)
        k = self.k_proj(x).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        v = self.v_proj(x).reshape(b, t, cfg.num_kv_heads, cfg.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if cache is not None:
            k = jax.lax.dynamic_update_slice(cache[0], k, (0, index, 0, 0))
            v = jax.lax.dynamic_update_slice(cache[1], v, (0, index, 0, 0))
            cache = (k, v)
        return self.o_proj(attend(q, k, v, allowed)), cache


class MLP(nnx.Module):
    """SwiGLU: down_proj(silu(gate_proj(x)) * up_proj(x))."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        d, inter = config.hidden_size, config.intermediate_size
        self.gate_proj = _linear(config, d, inter, "gate_proj", rngs)
        self.up_proj = _linear(config, d, inter, "up_proj", rngs)
        self.down_proj = _linear(config, inter, d, "down_proj", rngs)

    def __call__(self, x):
        return self.down_proj(jax.nn.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nnx.Module):
    """Pre-norm residual block: attention, then the MLP."""

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
        self.self_attn = Attention(config, rngs=rngs)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
        self.mlp = MLP(config, rngs=rngs)

    def __call__(self, x, rope, allowed, cache, index):
        h, cache = self.self_attn(self.input_layernorm(x), rope, allowed, cache, index)
        x = x + h
        return x + self.mlp(self.post_attention_layernorm(x)), cache


class Decoder(nnx.Module):
    """The causal LM. ``model(input_ids, positions, key_mask, cache=None, hidden_layers=())`` returns
    ``(logits float32 [B, T, V], {layer: hidden [B, T, d]}, new cache or None)``.

    Without a cache the keys are the T input tokens and ``key_mask`` is the [B, T] attention mask; with a
    ``KVCache`` of S slots, ``key_mask`` [B, S] marks the valid slots and the T tokens are written at
    ``cache.index``. ``apply_fn`` (``split_decoder``) and ``greedy_generate`` are the usual entry points.
    """

    def __init__(self, config: DecoderConfig, *, rngs: nnx.Rngs):
        self.config = config
        self.embed_tokens = nnx.Embed(
            config.vocab_size,
            config.hidden_size,
            dtype=config.dtype,
            param_dtype=config.param_dtype,
            embedding_init=_normal_init("embed_tokens", 2),
            rngs=rngs,
        )
        if config.scan_layers:
            # One layer vmapped over split keys: every leaf gets a leading layer axis, which the sharding
            # annotation leaves unsplit (partition name None).
            @nnx.split_rngs(splits=config.num_layers)
            @nnx.vmap(in_axes=(0,), out_axes=0, transform_metadata={nnx.PARTITION_NAME: None})
            def stacked(rngs):
                return DecoderLayer(config, rngs=rngs)

            self.layers = stacked(rngs)
        else:
            self.layers = nnx.List([DecoderLayer(config, rngs=rngs) for _ in range(config.num_layers)])
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
        self.lm_head = (
            None
            if config.tie_word_embeddings
            else _linear(
                config, config.hidden_size, config.vocab_size, "lm_head", rngs, preferred_element_type=jnp.float32
            )
        )

    def __call__(self, input_ids, positions, key_mask, *, cache: KVCache | None = None, hidden_layers=()):
        cfg = self.config
        x = self.embed_tokens(input_ids)
        index = jnp.zeros((), jnp.int32) if cache is None else cache.index
        rope = rope_cos_sin(positions, cfg, x.dtype)
        allowed = attention_allowed(key_mask, input_ids.shape[1], index, cfg.sliding_window)
        kv = None if cache is None else (cache.keys, cache.values)
        x, hidden, kv = self._layers(x, rope, allowed, kv, index, tuple(hidden_layers))
        x = self.norm(x)
        if self.lm_head is None:
            table = self.embed_tokens.embedding[...].astype(x.dtype)
            logits = jnp.einsum("btd,vd->btv", x, table, preferred_element_type=jnp.float32)
        else:
            logits = self.lm_head(x).astype(jnp.float32)
        new_cache = None if cache is None else KVCache(*kv, cache.index + input_ids.shape[1])
        return logits, hidden, new_cache

    def _layers(self, x, rope, allowed, kv, index, hidden_layers):
        """Run the layers (a Python loop, or ``lax.scan`` over the stacked layers, split at each requested hidden
        layer so that only those activations are kept); ``kv`` are the stacked cache arrays or None."""

        def run(graphdef):
            def step(state, x, layer_kv):
                return nnx.merge(graphdef, state)(x, rope, allowed, layer_kv, index)

            return jax.checkpoint(step) if self.config.remat else step

        num_layers, hidden, new_kv = self.config.num_layers, {}, []
        if self.config.scan_layers:
            graphdef, stacked = nnx.split(self.layers)
            step = run(graphdef)
            stops = sorted({*hidden_layers, num_layers - 1})
            for start, stop in zip([0, *(s + 1 for s in stops[:-1])], [s + 1 for s in stops], strict=True):
                segment = jax.tree.map(operator.itemgetter(slice(start, stop)), (stacked, kv))
                x, seg_kv = jax.lax.scan(lambda x, xs: step(xs[0], x, xs[1]), x, segment)
                hidden[stop - 1] = x
                new_kv.append(seg_kv)
            kv = None if kv is None else tuple(jnp.concatenate(parts) for parts in zip(*new_kv, strict=True))
        else:
            for i, layer in enumerate(self.layers):
                graphdef, state = nnx.split(layer)
                x, layer_kv = run(graphdef)(state, x, None if kv is None else (kv[0][i], kv[1][i]))
                hidden[i] = x
                new_kv.append(layer_kv)
            kv = None if kv is None else tuple(jnp.stack(parts) for parts in zip(*new_kv, strict=True))
        return x, {i: hidden[i] for i in hidden_layers}, kv


def _check_hidden_layers(hidden_layers: Sequence[int], num_layers: int) -> tuple[int, ...]:
    layers = tuple(int(i) for i in hidden_layers)
    bad = [i for i in layers if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"hidden_layers {bad} out of range: the model has layers 0..{num_layers - 1} (0-based).")
    return layers


def split_decoder(model: Decoder) -> tuple[ApplyFn, Params]:
    """``(apply_fn, params)`` of ``model``: ``params`` is ``nnx.to_pure_dict`` of its ``nnx.Param`` leaves
    (``jax.ShapeDtypeStruct`` leaves for a model made under ``nnx.eval_shape``), and

    ``apply_fn(params, input_ids, attention_mask=None, *, hidden_layers=())`` returns float32 logits [B, T, V], or
    ``(logits, {l: hidden state after layer l, [B, T, d] in the compute dtype})`` when ``hidden_layers``
    (0-based, static) is not empty.
    ``attention_mask`` [B, T] (1 = token, 0 = padding; None = no padding). Pure and jit-able; the model is
    rebuilt from the graph definition on every call. ``apply_fn.config`` is the model's ``DecoderConfig`` and
    ``apply_fn.apply_info`` what ``merge_model`` needs (only shapes: it never keeps the parameters alive).
    """
    graphdef, param_state, stat_state, rest = nnx.split(model, nnx.Param, nnx.BatchStat, ...)
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), param_state)
    info = ApplyInfo(graphdef, template, stat_state, rest)
    config = model.config

    def apply_fn(params: Params, input_ids, attention_mask=None, *, hidden_layers: Sequence[int] = ()):
        layers = _check_hidden_layers(hidden_layers, config.num_layers)
        input_ids = jnp.asarray(input_ids).astype(jnp.int32)
        mask = jnp.ones(input_ids.shape, bool) if attention_mask is None else jnp.asarray(attention_mask)
        logits, hidden, _ = merge_model(info, params, {})(
            input_ids, positions_from_mask(mask), mask, hidden_layers=layers
        )
        return (logits, hidden) if layers else logits

    apply_fn.apply_info = info  # type: ignore[attr-defined]
    apply_fn.config = config  # type: ignore[attr-defined]
    return apply_fn, dict(nnx.to_pure_dict(param_state))


def is_stacked(path: Sequence[Any]) -> bool:
    """Whether the params leaf at ``path`` holds all layers stacked (``scan_layers``): ``layers/<name>/...``, not
    ``layers/<i>/...`` (``i`` an int, or its string as some checkpoint libraries restore dict keys)."""
    return len(path) > 1 and path[0] == "layers" and not str(path[1]).isdigit()


def unstacked_shapes(tree: Params) -> dict[tuple, jax.ShapeDtypeStruct]:
    """Flat ``{path: ShapeDtypeStruct}`` of a params (or shape) tree with stacked layer leaves listed per layer,
    so that paths read ``('layers', i, ...)`` whatever ``scan_layers`` is."""
    flat = {}
    for path, leaf in traversals.flatten_mapping(tree).items():
        if is_stacked(path):
            for i in range(leaf.shape[0]):
                flat[(path[0], i, *path[1:])] = jax.ShapeDtypeStruct(leaf.shape[1:], leaf.dtype)
        else:
            flat[path] = jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
    return flat


def param_partition_specs(params_or_model: Params | nnx.Module, mesh: Mesh | None = None) -> Params:
    """A ``PartitionSpec`` per params leaf: the large dimension of the embeddings and of every linear kernel over
    the mesh axis ``'fsdp'`` (see ``_FSDP_DIM``), norms and biases replicated; a stacked layer axis is never split.

    Accepts the pure params dict (arrays or ``ShapeDtypeStruct``s) or a ``Decoder``; the specs agree with the
    modules' ``nnx.with_partitioning`` annotations (``nnx.get_partition_spec``). With ``mesh``, a dimension that
    the mesh's fsdp size does not divide is left whole (that leaf is replicated).
    """
    tree = params_or_model
    if isinstance(tree, nnx.Module):
        tree = nnx.to_pure_dict(nnx.state(tree, nnx.Param))
    fsdp = 1 if mesh is None else mesh.shape[FSDP_AXIS]

    def spec(path, leaf):
        keys = [k.key for k in path]
        if keys[-1] not in ("kernel", "embedding") or keys[-2] not in _FSDP_DIM:
            return P()
        stacked = int(is_stacked(keys))
        names = (None,) * stacked + _fsdp_names(keys[-2], len(leaf.shape) - stacked)
        if leaf.shape[names.index(FSDP_AXIS)] % fsdp:
            return P()
        return P(*names)

    return jax.tree_util.tree_map_with_path(spec, tree)


def materialize(shapes: Params, read: Callable[[tuple, tuple], np.ndarray], *, mesh: Mesh | None = None) -> Params:
    """Build the params tree ``shapes`` (``ShapeDtypeStruct`` leaves) from host values, leaf by leaf.

    ``read(path, shape)`` returns one unstacked leaf (path ``('layers', i, ...)`` for layer leaves) as a numpy
    array or a lazy view such as a memory map; it is cast to the leaf's dtype. Each leaf goes through
    ``jax.make_array_from_callback``: without ``mesh`` onto the default device, with ``mesh`` straight onto
    ``NamedSharding(mesh, param_partition_specs(shapes, mesh))``, each device reading only its own slice.
    """
    specs = None if mesh is None else param_partition_specs(shapes, mesh)
    flat_specs = {} if specs is None else traversals.flatten_mapping(specs)
    device = SingleDeviceSharding(jax.devices()[0])

    def build(path, leaf):
        if is_stacked(path):
            layer_shape = leaf.shape[1:]

            def slice_of(index):
                layers = range(leaf.shape[0])[index[0]]
                return np.stack([read((path[0], i, *path[1:]), layer_shape)[index[1:]] for i in layers])
        else:

            def slice_of(index):
                return read(path, leaf.shape)[index]

        sharding = device if mesh is None else NamedSharding(mesh, flat_specs[path])
        callback = lambda index: np.array(slice_of(index), dtype=leaf.dtype, order="C")
        return jax.make_array_from_callback(leaf.shape, sharding, callback)

    flat = {path: build(path, leaf) for path, leaf in traversals.flatten_mapping(shapes).items()}
    return traversals.unflatten_mapping(flat)


def _init_read(seed: int) -> Callable[[tuple, tuple], np.ndarray]:
    """Initial values: norms 1, biases 0, other weights N(0, 0.02^2), each from a numpy generator seeded by
    (seed, the leaf's unstacked path), so a stacked and an unstacked model of one seed hold the same weights."""

    def read(path, shape):
        if path[-1] == "scale":
            return np.ones(shape, np.float32)
        if path[-1] == "bias":
            return np.zeros(shape, np.float32)
        rng = np.random.default_rng([seed, zlib.crc32("/".join(map(str, path)).encode())])
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(INIT_STD)

    return read


def build_decoder(config: DecoderConfig, seed: int = 0, *, abstract: bool = False) -> tuple[ApplyFn, Params]:
    """``(apply_fn, params)`` of a freshly initialised ``Decoder(config)`` (see ``split_decoder``).

    The module is only traced (``nnx.eval_shape``); the values come from numpy (``_init_read``), so nothing is
    compiled. ``abstract=True`` returns ``jax.ShapeDtypeStruct`` leaves instead and allocates nothing (the shapes
    of a 7B model, e.g. to plan a mesh or to check a checkpoint).
    """
    model = nnx.eval_shape(lambda: Decoder(config, rngs=nnx.Rngs(seed)))
    apply_fn, shapes = split_decoder(model)
    return apply_fn, shapes if abstract else materialize(shapes, _init_read(seed))
