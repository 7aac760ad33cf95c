"""Causal language models (Llama-2/3, Mistral, Qwen2, Qwen3) in Flax NNX: config, decoder, greedy generation,
Hugging Face checkpoints and tokenizers. Same functional boundary as the vision models: ``apply_fn(params, ...)``
over a pure dict of parameters."""

from rosu_jax.models.lm.config import DecoderConfig, RopeScaling, llama_2_7b, llama_3_2_1b, tiny
from rosu_jax.models.lm.decoder import (
    Decoder,
    KVCache,
    build_decoder,
    param_partition_specs,
    positions_from_mask,
    rope_frequencies,
    split_decoder,
)
from rosu_jax.models.lm.generate import bucket_length, greedy_generate
from rosu_jax.models.lm.loader import check_vocab, load_hf_checkpoint, save_hf_checkpoint
from rosu_jax.models.lm.tokenizer import Tokenizer, train_bpe_tokenizer

__all__ = [
    "Decoder",
    "DecoderConfig",
    "KVCache",
    "RopeScaling",
    "Tokenizer",
    "bucket_length",
    "build_decoder",
    "check_vocab",
    "greedy_generate",
    "llama_2_7b",
    "llama_3_2_1b",
    "load_hf_checkpoint",
    "param_partition_specs",
    "positions_from_mask",
    "rope_frequencies",
    "save_hf_checkpoint",
    "split_decoder",
    "tiny",
    "train_bpe_tokenizer",
]
