import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax.models.lm import DecoderConfig, RopeScaling, build_decoder, llama_2_7b, llama_3_2_1b, tiny
from rosu_jax.models.lm.config import FAMILIES

# config.json as the hub ships them (transformers 4 layout: rope_theta / rope_scaling at the top level).
LLAMA_3_2_1B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 128256,
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "attention_bias": False,
    "mlp_bias": False,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "bos_token_id": 128000,
    "eos_token_id": 128001,
    "torch_dtype": "bfloat16",
}
LLAMA_2_7B = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "hidden_act": "silu",
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
}
ZEPHYR_7B = {  # Mistral-7B-v0.1 based, WMDP's model
    "architectures": ["MistralForCausalLM"],
    "model_type": "mistral",
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "sliding_window": 4096,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
}
QWEN2_5_0_5B = {
    "architectures": ["Qwen2ForCausalLM"],
    "model_type": "qwen2",
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "hidden_act": "silu",
    "max_position_embeddings": 32768,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000.0,
    "sliding_window": 32768,
    "use_sliding_window": False,
    "max_window_layers": 21,
    "tie_word_embeddings": True,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}
QWEN3_0_6B = {
    "architectures": ["Qwen3ForCausalLM"],
    "model_type": "qwen3",
    "vocab_size": 151936,
    "hidden_size": 1024,
    "intermediate_size": 3072,
    "num_hidden_layers": 28,
    "num_attention_heads": 16,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "hidden_act": "silu",
    "max_position_embeddings": 40960,
    "rms_norm_eps": 1e-06,
    "rope_theta": 1000000,
    "attention_bias": False,
    "use_sliding_window": False,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "bos_token_id": 151643,
    "eos_token_id": 151645,
}


def num_params(config):
    _, shapes = build_decoder(config, abstract=True)
    return sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(shapes))


def test_llama_3_2_1b_config_json():
    config = DecoderConfig.from_hf(LLAMA_3_2_1B)
    assert config == llama_3_2_1b()
    assert config.rope_scaling == RopeScaling(32.0, 1.0, 4.0, 8192)
    assert config.dtype == config.param_dtype == "float32"  # the checkpoint's torch_dtype is not the compute dtype
    assert num_params(config) == 1_235_814_400


def test_llama_2_7b_config_json():
    config = DecoderConfig.from_hf(LLAMA_2_7B, scan_layers=False, param_dtype="bfloat16")
    assert config == llama_2_7b(pad_token_id=0, scan_layers=False, param_dtype="bfloat16")
    assert (config.head_dim, config.rope_theta, config.rope_scaling) == (128, 10000.0, None)
    assert num_params(config) == 6_738_415_616


def test_mistral_qwen2_qwen3_config_json():
    mistral = DecoderConfig.from_hf(ZEPHYR_7B)
    assert (mistral.family, mistral.num_kv_heads, mistral.sliding_window, mistral.pad_token_id) == (
        "mistral",
        8,
        4096,
        2,
    )
    qwen2 = DecoderConfig.from_hf(QWEN2_5_0_5B)
    assert (qwen2.attention_bias, qwen2.qk_norm, qwen2.sliding_window, qwen2.tie_word_embeddings) == (
        True,
        False,
        None,
        True,
    )
    assert qwen2.head_dim == 64 and qwen2.rope_theta == 1e6
    assert num_params(qwen2) == 494_032_768  # Qwen2.5-0.5B
    qwen3 = DecoderConfig.from_hf(QWEN3_0_6B)
    assert (qwen3.qk_norm, qwen3.attention_bias, qwen3.head_dim, qwen3.eos_token_ids) == (True, False, 128, (151645,))
    assert num_params(qwen3) == 596_049_920  # Qwen3-0.6B


def test_transformers_5_config_json(fixtures, parity_case):
    """transformers 5 writes rope_parameters instead of rope_theta / rope_scaling."""
    raw = json.loads((fixtures / parity_case / "config.json").read_text())
    assert "rope_parameters" in raw
    config = DecoderConfig.from_hf(raw)
    assert config.rope_theta == raw["rope_parameters"]["rope_theta"]
    assert (config.rope_scaling is not None) == (parity_case == "llama3_tied")
    assert config.head_dim == raw.get("head_dim", raw["hidden_size"] // raw["num_attention_heads"])


@pytest.mark.parametrize("family", FAMILIES)
def test_to_hf_round_trip(family):
    config = tiny(
        family,
        rope_scaling={
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        eos_token_id=[2, 3],
    )
    assert config.eos_token_id == (2, 3) and isinstance(config.rope_scaling, RopeScaling)
    hf = json.loads(json.dumps(config.to_hf()))
    assert DecoderConfig.from_hf(hf) == config
    assert hash(config) == hash(DecoderConfig.from_hf(hf))


def test_unknown_family_names_it_and_the_supported_ones():
    with pytest.raises(ValueError, match=r"unsupported model_type 'gpt2'.*llama.*mistral.*qwen2.*qwen3"):
        DecoderConfig.from_hf({**LLAMA_2_7B, "model_type": "gpt2"})


@pytest.mark.parametrize(
    "change, match",
    [
        ({"hidden_act": "gelu"}, "hidden_act='gelu'"),
        ({"mlp_bias": True}, "mlp_bias"),
        ({"attention_bias": True}, "attention_bias"),
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_type 'linear'"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 2.0}}, "low_freq_factor"),
        ({"vocab_size": None}, "no 'vocab_size'"),
    ],
)
def test_unsupported_options_are_refused(change, match):
    with pytest.raises(ValueError, match=match):
        DecoderConfig.from_hf({**LLAMA_2_7B, **change})


def test_qwen_sliding_windows_are_refused():
    with pytest.raises(ValueError, match="use_sliding_window"):
        DecoderConfig.from_hf({**QWEN2_5_0_5B, "use_sliding_window": True})


@pytest.mark.parametrize(
    "fields, match",
    [
        ({"num_kv_heads": 3}, "multiple of num_kv_heads"),
        ({"head_dim": 15}, "even"),
        ({"dtype": "int8"}, "dtype"),
        ({"family": "gpt2"}, "unknown family"),
        ({"num_layers": 0}, "num_layers"),
        ({"attention_bias": True}, "attention_bias=True with family 'llama'"),
        ({"qk_norm": True}, "qk_norm=True with family 'llama'"),
        ({"sliding_window": 8}, "with family 'mistral'"),
    ],
)
def test_invalid_configs(fields, match):
    with pytest.raises(ValueError, match=match):
        tiny(**fields)


def test_7b_shapes_are_abstract():
    """The 7B tree is built from shapes only (nothing allocated), stacked over layers with scan_layers."""
    _, shapes = build_decoder(llama_2_7b(param_dtype="bfloat16"), abstract=True)
    leaves = jax.tree.leaves(shapes)
    assert all(isinstance(leaf, jax.ShapeDtypeStruct) for leaf in leaves)
    assert shapes["layers"]["mlp"]["down_proj"]["kernel"].shape == (32, 11008, 4096)
    assert {str(leaf.dtype) for leaf in leaves} == {"bfloat16"}


def test_dtypes_may_be_given_as_jax_dtypes():
    config = tiny(dtype=jnp.bfloat16, param_dtype=np.float32)
    assert (config.dtype, config.param_dtype) == ("bfloat16", "float32")
    assert tiny("qwen2").attention_bias and tiny("qwen3").qk_norm and tiny("mistral", sliding_window=8).sliding_window
