"""LoRA adapters on the decoder's linear layers (through qwix), as the trainable subset of an unlearning run.

LoRA (Hu et al. 2021, arXiv 2106.09685) keeps a linear kernel W [in, out] frozen and trains a rank-r correction;
qwix's convention (``LoraProvider``: ``y = x W + (x A) B · alpha / rank``) is

    W' = W + (α/r) · A B,     A [in, r] ~ he_uniform,  B [r, out] = 0,

so the adapted model equals the base model at initialisation. With ``partition(params, lora_selection)`` an
unlearning run trains the adapters only: gradients, ROSU's inner products and norms (⟨g_f, g_r⟩, ‖g_r‖, ‖d‖) and the
optimizer state cover r·(in + out) numbers per adapted linear instead of in·out, while the frozen base (bf16 for a 7B
model) is only read. ``merge_lora`` folds the adapters back into a plain decoder tree for ``save_hf_checkpoint``::

    apply_fn, params = add_lora(config, base_params, rank=8, alpha=16.0)
    adapters, frozen = partition(params, lora_selection)
    logits = apply_fn(combine(adapters, frozen), input_ids, attention_mask)
    save_hf_checkpoint(folder, config, merge_lora(config, combine(adapters, frozen), alpha=16.0))

How qwix is used (qwix 0.1.x):

* ``apply_lora_to_model`` gives the root module a subclass whose ``__call__`` runs with ``jax.lax.dot_general`` and
  ``jnp.einsum`` intercepted. A rule applies to a module when ``re.fullmatch(module_path, "/".join(path))``, paths
  read from the root: ``layers/3/self_attn/q_proj``. In a matching ``nnx.Linear`` the adapters are the
  ``nnx.LoRAParam`` (an ``nnx.Param``, so ``split_decoder`` keeps them in ``params``) ``kernel_lora_a`` and
  ``kernel_lora_b``, created the first time that module object runs its matmul.
* ``Decoder`` runs every layer through ``nnx.split``/``nnx.merge``, i.e. on a copy, where a new adapter would be
  lost. So the adapters are created by an initialisation pass that calls each ``nnx.Linear`` once on the module
  object itself (``_EveryLinear``); the decoder's own ``__call__`` is then intercepted without a first call
  (``skip_nnx_init``), and at run time qwix reads each adapter from the merged copy of its layer.
* Scanned layers (``scan_layers=True``: one layer stacked along a leading axis and run by ``lax.scan``) are not
  supported: qwix creates adapters on module objects only and has no notion of a stacked layer axis.
* qwix creates the adapters in the kernel's dtype and adds ``(x A) B`` to the linear's output without a cast, which
  strict dtype promotion rejects unless both are the compute dtype. The adapters are therefore stored in
  ``config.dtype``: float32 adapters over bfloat16 weights are ``dtype='float32', param_dtype='bfloat16'``;
  float32 adapters with bfloat16 compute do not run under strict promotion.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx
from flax.nnx import traversals

from rosu_jax.models.functional import merge_model
from rosu_jax.models.lm.config import DecoderConfig
from rosu_jax.models.lm.decoder import ApplyFn, Decoder, Params, build_decoder, split_decoder

try:
    import qwix
except ImportError as err:
    raise ImportError("LoRA adapters need qwix, the optional extra: pip install 'rosu-jax[lora]'.") from err

# The attention and MLP projections of every layer (not lm_head), as qwix matches them: the whole module path.
LORA_MODULES = r".*/(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# The ``rosu_jax.models.trainable`` selection of the adapter leaves (``layers.3.mlp.down_proj.kernel_lora_a``, ...).
lora_selection = r"_lora_[ab]$"
_SUFFIX_A, _SUFFIX_B = "_lora_a", "_lora_b"


class _EveryLinear(nnx.Module):
    """The decoder's child modules under their own names (so that qwix sees the decoder's module paths), and a call
    that runs every ``nnx.Linear`` once, on zeros, on the module object itself: qwix creates the adapters there."""

    def __init__(self, decoder: Decoder):
        for name, child in nnx.iter_children(decoder):
            setattr(self, name, child)

    def __call__(self):
        for _, module in nnx.iter_modules(self):
            if isinstance(module, nnx.Linear):
                module(jnp.zeros((1, module.in_features), module.dtype))


def add_lora(
    config: DecoderConfig,
    params: Params,
    *,
    rank: int = 8,
    alpha: float = 16.0,
    modules: str = LORA_MODULES,
    seed: int = 0,
) -> tuple[ApplyFn, Params]:
    """``(apply_fn, params)`` of the decoder ``config`` holding ``params`` with qwix LoRA adapters of rank ``rank``
    and scale ``alpha / rank`` on the ``nnx.Linear`` modules whose path (``layers/3/mlp/down_proj``) ``modules``
    fully matches.

    ``apply_fn`` has ``split_decoder``'s signature; ``params`` is the base tree (the same arrays, not copies) plus
    ``<module>/kernel_lora_a`` [in, r] (he_uniform from ``seed``) and ``<module>/kernel_lora_b`` [r, out] (zeros),
    in the compute dtype ``config.dtype``. Needs ``scan_layers=False``.
    """
    if config.scan_layers:
        raise ValueError(
            "add_lora needs a decoder with scan_layers=False: qwix creates LoRA adapters on module objects and does "
            "not support layers stacked for lax.scan. Build or load the model with scan_layers=False."
        )
    base_fn, _ = build_decoder(config, abstract=True)
    decoder = merge_model(base_fn.apply_info, params, {})
    provider = qwix.LoraProvider(module_path=modules, rank=rank, alpha=alpha)
    # Standard promotion for this pass only: qwix adds a delta in the kernel's dtype to the output in the compute
    # dtype; the output is discarded and the adapters are cast to the compute dtype below.
    with jax.numpy_dtype_promotion("standard"):
        initialised = qwix.apply_lora_to_model(_EveryLinear(decoder), provider, rngs=nnx.Rngs(seed))
    for name, child in nnx.iter_children(initialised):
        setattr(decoder, name, child)
    adapters = nnx.state(decoder, nnx.LoRAParam)
    if not adapters:
        linears = ["/".join(map(str, path)) for path, m in nnx.iter_modules(decoder) if isinstance(m, nnx.Linear)]
        raise ValueError(f"LoRA modules {modules!r} fully match no linear module; the linear modules are {linears}.")
    nnx.update(decoder, jax.tree.map(lambda a: a.astype(config.dtype), adapters))
    model = qwix.apply_lora_to_model(decoder, provider, skip_nnx_init=True, rngs=nnx.Rngs(seed))
    return split_decoder(model)


def _fold(kernel: jax.Array, a: jax.Array, b: jax.Array, alpha: float) -> jax.Array:
    """W + (α/r)·A B in float32 (r = A's last dimension), cast back to W's dtype."""
    f32 = jnp.float32
    delta = jnp.einsum("...ir,...ro->...io", a.astype(f32), b.astype(f32), precision=jax.lax.Precision.HIGHEST)
    return (kernel.astype(f32) + (alpha / a.shape[-1]) * delta).astype(kernel.dtype)


def merge_lora(config: DecoderConfig, params: Params, *, alpha: float) -> Params:
    """The plain decoder tree of a LoRA tree: every kernel with adapters becomes W + (α/r)·A B (qwix's scaling; r
    read from A, ``alpha`` as given to ``add_lora``, since the tree does not hold it) and the adapter leaves are
    dropped. The result has exactly the leaves of ``build_decoder(config)``, for ``split_decoder``'s apply_fn and
    ``save_hf_checkpoint``; an adapter without its pair or its kernel, or a tree of another config, is an error."""
    flat = traversals.flatten_mapping(params)
    part = lambda kernel, suffix: (*kernel[:-1], kernel[-1] + suffix)
    adapters = {path for path in flat if path[-1].endswith((_SUFFIX_A, _SUFFIX_B))}
    kernels = {(*path[:-1], path[-1][: -len(_SUFFIX_A)]) for path in adapters}
    for kernel in kernels:
        for path in (kernel, part(kernel, _SUFFIX_A), part(kernel, _SUFFIX_B)):
            if path not in flat:
                raise ValueError(f"LoRA params lack {'/'.join(map(str, path))} (an adapter needs A, B and its kernel).")
    merged = {
        path: _fold(leaf, flat[part(path, _SUFFIX_A)], flat[part(path, _SUFFIX_B)], alpha) if path in kernels else leaf
        for path, leaf in flat.items()
        if path not in adapters
    }
    expected = traversals.flatten_mapping(build_decoder(config, abstract=True)[1])
    shapes = lambda tree: {"/".join(map(str, p)): tuple(x.shape) for p, x in tree.items()}
    got, want = shapes(merged), shapes(expected)
    if got != want:
        wrong = sorted(k for k in got.keys() | want.keys() if got.get(k) != want.get(k))
        raise ValueError(
            f"the merged params do not fit this config: {wrong[0]} is {got.get(wrong[0])}, expected "
            f"{want.get(wrong[0])} ({len(wrong)} leaves differ)."
        )
    return traversals.unflatten_mapping(merged)
