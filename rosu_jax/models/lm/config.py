"""``DecoderConfig``: the shape and options of a Llama-style causal decoder, and its Hugging Face mapping.

One config covers the four families the language-model experiments use; they differ only in small switches:

=========  ===========================================================================================
llama      Llama-2 (rope_theta 1e4) and Llama-3 (rope_theta 5e5, ``rope_scaling`` of rope_type 'llama3')
mistral    Llama with a sliding attention window (``sliding_window``; None in Mistral v0.2+)
qwen2      bias on the q/k/v projections (``attention_bias``)
qwen3      RMSNorm of q and k per head before RoPE (``qk_norm``), explicit ``head_dim``
=========  ===========================================================================================
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax.numpy as jnp

FAMILIES = ("llama", "mistral", "qwen2", "qwen3")
DTYPES = ("float32", "bfloat16", "float16")
_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "qwen3": "Qwen3ForCausalLM",
}


class RopeScaling(NamedTuple):
    """Llama-3 RoPE frequency rescaling (Hugging Face rope_type 'llama3'); see ``decoder.rope_frequencies``."""

    factor: float
    low_freq_factor: float
    high_freq_factor: float
    original_max_position_embeddings: int


@dataclasses.dataclass(frozen=True)
class DecoderConfig:
    """Hyper-parameters of a causal decoder (hashable, so it can be a static ``jax.jit`` argument).

    ``dtype`` is the compute dtype of activations and matmuls, ``param_dtype`` the storage dtype of the
    parameters; norms, softmax and the logits are float32 whatever these are. ``scan_layers`` stacks the layer
    parameters along a leading axis and runs them with one ``jax.lax.scan`` (one layer compiled instead of
    ``num_layers``); ``remat`` recomputes each layer's activations in the backward pass. ``sliding_window``
    (Mistral v0.1: 4096) masks keys ``sliding_window`` or more slots back, as Hugging Face does; None, or a window
    at least as long as the sequences, is plain causal attention.
    ``eos_token_id`` may be a tuple (Llama-3-Instruct stops on several tokens).
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int | None = None  # None: hidden_size // num_heads
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    qk_norm: bool = False
    sliding_window: int | None = None
    max_position_embeddings: int = 4096
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None
    dtype: str = "float32"
    param_dtype: str = "float32"
    scan_layers: bool = True
    remat: bool = False
    family: str = "llama"

    def __post_init__(self):
        # Normalise the convenient spellings (a rope_scaling dict, an eos list) into hashable values.
        if self.head_dim is None:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)
        if isinstance(self.rope_scaling, Mapping):
            object.__setattr__(self, "rope_scaling", _llama3_scaling(self.rope_scaling))
        if isinstance(self.eos_token_id, list | tuple):
            object.__setattr__(self, "eos_token_id", tuple(int(i) for i in self.eos_token_id))
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_layers",
            "num_heads",
            "num_kv_heads",
            "head_dim",
        ):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"DecoderConfig.{name} must be >= 1, got {getattr(self, name)}.")
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"num_heads ({self.num_heads}) must be a multiple of num_kv_heads ({self.num_kv_heads}): each group "
                "of query heads shares one key/value head."
            )
        if self.head_dim % 2:
            raise ValueError(f"head_dim must be even for RoPE's rotate-half, got {self.head_dim}.")
        for name in ("dtype", "param_dtype"):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, jnp.dtype(value).name)  # jnp.bfloat16 -> 'bfloat16'
            except TypeError:
                raise ValueError(f"DecoderConfig.{name} must be one of {DTYPES}, got {value!r}.") from None
            if getattr(self, name) not in DTYPES:
                raise ValueError(f"DecoderConfig.{name} must be one of {DTYPES}, got {value!r}.")
        if self.family not in FAMILIES:
            raise ValueError(f"unknown family {self.family!r}; the supported families are {FAMILIES}.")
        # The switches are what distinguishes the families' checkpoints: a combination no family has could not be
        # saved in (or loaded from) the Hugging Face layout.
        for name, family in (("attention_bias", "qwen2"), ("qk_norm", "qwen3")):
            if getattr(self, name) != (self.family == family):
                raise ValueError(
                    f"{name}={getattr(self, name)} with family {self.family!r}: {name} is the {family} layout, which "
                    f"family {family!r} always has and the others never have."
                )
        if self.sliding_window is not None and (self.family != "mistral" or self.sliding_window < 1):
            raise ValueError(f"sliding_window must be None, or >= 1 with family 'mistral'; got {self.sliding_window}.")

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        """``eos_token_id`` as a (possibly empty) tuple."""
        if self.eos_token_id is None:
            return ()
        return self.eos_token_id if isinstance(self.eos_token_id, tuple) else (self.eos_token_id,)

    @classmethod
    def from_hf(cls, config: Mapping[str, Any], **overrides: Any) -> DecoderConfig:
        """Map a Hugging Face ``config.json`` dict (model_type llama, mistral, qwen2 or qwen3) to a DecoderConfig.

        RoPE settings are read from the legacy keys (``rope_theta``, ``rope_scaling``) or from transformers 5's
        ``rope_parameters``. Options this decoder does not implement raise a ``ValueError`` instead of being
        silently dropped: an activation other than SiLU, biases on o_proj or the MLP, a RoPE type other than
        'default'/'llama3', and Qwen's per-layer sliding windows (``use_sliding_window``). ``overrides`` set the
        fields that are not part of the checkpoint (``dtype``, ``param_dtype``, ``scan_layers``, ``remat``) or
        replace mapped ones.
        """
        family = config.get("model_type")
        if family not in FAMILIES:
            raise ValueError(
                f"unsupported model_type {family!r}; the supported families are {FAMILIES} (Llama-2/3, Mistral, "
                "Qwen2, Qwen3 style decoders)."
            )

        def need(key: str) -> Any:
            if config.get(key) is None:
                raise ValueError(f"{family} config.json has no {key!r}; is this a {family} causal-LM config?")
            return config[key]

        def unsupported(what: str) -> ValueError:
            return ValueError(f"{family} config.json sets {what}, which this decoder does not implement.")

        if config.get("hidden_act", "silu") != "silu":
            raise unsupported(f"hidden_act={config['hidden_act']!r} (only SiLU/SwiGLU)")
        if config.get("mlp_bias"):
            raise unsupported("mlp_bias=true")
        if family != "qwen2" and config.get("attention_bias"):
            raise unsupported("attention_bias=true (a bias on q/k/v/o_proj)")
        if family in ("qwen2", "qwen3") and config.get("use_sliding_window"):
            raise unsupported("use_sliding_window=true (per-layer sliding windows)")
        hidden, heads = int(need("hidden_size")), int(need("num_attention_heads"))
        theta, scaling = _rope_from_hf(config, family)
        fields = dict(
            vocab_size=int(need("vocab_size")),
            hidden_size=hidden,
            intermediate_size=int(need("intermediate_size")),
            num_layers=int(need("num_hidden_layers")),
            num_heads=heads,
            num_kv_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            rope_theta=theta,
            rope_scaling=scaling,
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            attention_bias=family == "qwen2",  # Qwen2 always has q/k/v biases; its config has no switch for it
            qk_norm=family == "qwen3",
            sliding_window=config.get("sliding_window") if family == "mistral" else None,
            max_position_embeddings=int(config.get("max_position_embeddings", 4096)),
            bos_token_id=config.get("bos_token_id"),
            eos_token_id=config.get("eos_token_id"),
            pad_token_id=config.get("pad_token_id"),
            family=family,
        )
        return cls(**{**fields, **overrides})

    def to_hf(self) -> dict[str, Any]:
        """The Hugging Face ``config.json`` dict of this config (inverse of ``from_hf``; legacy RoPE keys, which
        transformers 4 and 5 both read)."""
        scaling = None if self.rope_scaling is None else {"rope_type": "llama3", **self.rope_scaling._asdict()}
        config = {
            "architectures": [_ARCHITECTURES[self.family]],
            "model_type": self.family,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "hidden_act": "silu",
            "rope_theta": self.rope_theta,
            "rope_scaling": scaling,
            "rms_norm_eps": self.rms_norm_eps,
            "tie_word_embeddings": self.tie_word_embeddings,
            "max_position_embeddings": self.max_position_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id) if isinstance(self.eos_token_id, tuple) else self.eos_token_id,
            "pad_token_id": self.pad_token_id,
            "torch_dtype": self.param_dtype,
        }
        if self.family in ("llama", "qwen3"):
            config["attention_bias"] = False
        if self.family == "mistral":
            config["sliding_window"] = self.sliding_window
        if self.family in ("qwen2", "qwen3"):
            config["use_sliding_window"] = False
        return config


def _llama3_scaling(scaling: Mapping[str, Any]) -> RopeScaling:
    missing = [k for k in RopeScaling._fields if k not in scaling]
    if missing:
        raise ValueError(f"Llama-3 rope_scaling needs {list(RopeScaling._fields)}; {missing} missing: {dict(scaling)}.")
    return RopeScaling(
        factor=float(scaling["factor"]),
        low_freq_factor=float(scaling["low_freq_factor"]),
        high_freq_factor=float(scaling["high_freq_factor"]),
        original_max_position_embeddings=int(scaling["original_max_position_embeddings"]),
    )


def _rope_from_hf(config: Mapping[str, Any], family: str) -> tuple[float, RopeScaling | None]:
    """(rope_theta, rope_scaling) from the legacy keys or transformers 5's ``rope_parameters``."""
    params = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    theta = float(params.get("rope_theta", config.get("rope_theta", 10000.0)))
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type == "default":
        return theta, None
    if rope_type == "llama3":
        return theta, _llama3_scaling(params)
    raise ValueError(
        f"{family} config.json uses rope_type {rope_type!r}; only 'default' and 'llama3' RoPE are implemented."
    )


def tiny(family: str = "llama", **overrides: Any) -> DecoderConfig:
    """A decoder of about 100k parameters for tests: vocab 256, width 64, 2 layers, 4 query heads of size 16
    sharing 2 key/value heads; Qwen2 gets its q/k/v biases, Qwen3 its q/k norms."""
    fields = dict(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        attention_bias=family == "qwen2",
        qk_norm=family == "qwen3",
        family=family,
    )
    return DecoderConfig(**{**fields, **overrides})


def llama_3_2_1b(**overrides: Any) -> DecoderConfig:
    """The shape of Llama-3.2-1B (1.24 B parameters, tied embeddings, Llama-3 RoPE scaling)."""
    fields = dict(
        vocab_size=128256,
        hidden_size=2048,
        intermediate_size=8192,
        num_layers=16,
        num_heads=32,
        num_kv_heads=8,
        head_dim=64,
        rope_theta=500000.0,
        rope_scaling=RopeScaling(32.0, 1.0, 4.0, 8192),
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        max_position_embeddings=131072,
        bos_token_id=128000,
        eos_token_id=128001,
    )
    return DecoderConfig(**{**fields, **overrides})


def llama_2_7b(**overrides: Any) -> DecoderConfig:
    """The shape of Llama-2-7B (6.74 B parameters; TOFU's base model in its chat variant)."""
    fields = dict(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=11008,
        num_layers=32,
        num_heads=32,
        num_kv_heads=32,
        rms_norm_eps=1e-5,
        bos_token_id=1,
        eos_token_id=2,
    )
    return DecoderConfig(**{**fields, **overrides})
