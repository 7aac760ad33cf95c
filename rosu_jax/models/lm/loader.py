"""Hugging Face checkpoints: load a folder into ``(config, apply_fn, params)`` and save params back.

A checkpoint folder holds ``config.json`` and the weights as ``model.safetensors`` or as shards listed by
``model.safetensors.index.json``. The safetensors format is read here with numpy memory maps (no torch, no extra
dependency): an 8-byte little-endian header length n, n bytes of JSON ``{name: {dtype, shape, data_offsets:
[begin, end]}}`` (offsets relative to the end of the header; an optional ``__metadata__`` entry), then the raw
little-endian tensor bytes. F32, BF16 (``ml_dtypes.bfloat16``) and F16 are supported.

Names map as ``model.embed_tokens.weight`` -> ``embed_tokens/embedding``, ``model.layers.{i}.self_attn.q_proj.weight``
[out, in] -> ``layers/{i}/self_attn/q_proj/kernel`` [in, out] (transposed; stacked over i with ``scan_layers``),
``*.bias`` -> ``bias``, norm ``weight`` -> ``scale``, ``lm_head.weight`` -> ``lm_head/kernel`` (absent with tied
embeddings). Every name, shape and dtype is checked from the headers before any tensor is read.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import ml_dtypes
import numpy as np
from flax.nnx import traversals
from jax.sharding import Mesh

from rosu_jax.models.lm.config import DecoderConfig
from rosu_jax.models.lm.decoder import ApplyFn, Params, build_decoder, materialize, unstacked_shapes

SAFETENSORS_DTYPES = {"F32": np.dtype("<f4"), "BF16": np.dtype(ml_dtypes.bfloat16), "F16": np.dtype("<f2")}
_DTYPE_CODES = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}
_LEAF_TO_HF = {"kernel": "weight", "embedding": "weight", "scale": "weight", "bias": "bias"}
# Tensors some checkpoints carry that the model does not need: RoPE buffers saved by old transformers versions.
_IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)


class TensorRef(NamedTuple):
    """Where one checkpoint tensor lies: file, numpy dtype, shape and absolute byte range."""

    file: Path
    dtype: np.dtype
    shape: tuple[int, ...]
    begin: int
    end: int


def hf_name(path: tuple) -> str:
    """Hugging Face tensor name of an unstacked params path, e.g. ('layers', 3, 'mlp', 'down_proj', 'kernel') ->
    'model.layers.3.mlp.down_proj.weight'."""
    name = ".".join(map(str, (*path[:-1], _LEAF_TO_HF[path[-1]])))
    return name if path[0] == "lm_head" else f"model.{name}"


def read_safetensors_header(file: Path) -> dict[str, TensorRef]:
    """The tensors of one ``.safetensors`` file (only its header is read)."""
    with open(file, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if entry["dtype"] not in SAFETENSORS_DTYPES:
            raise ValueError(
                f"{file}: tensor {name} has dtype {entry['dtype']}; only {sorted(SAFETENSORS_DTYPES)} are supported."
            )
        begin, end = entry["data_offsets"]
        tensors[name] = TensorRef(
            file, SAFETENSORS_DTYPES[entry["dtype"]], tuple(entry["shape"]), 8 + length + begin, 8 + length + end
        )
    return tensors


def index_checkpoint(folder: str | Path) -> dict[str, TensorRef]:
    """Every tensor of the checkpoint in ``folder``: ``model.safetensors``, or the shards named by
    ``model.safetensors.index.json``."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    elif (folder / "model.safetensors").exists():
        files = ["model.safetensors"]
    else:
        raise ValueError(
            f"no model.safetensors or model.safetensors.index.json in {folder}; only safetensors checkpoints are "
            "read (convert a pytorch_model.bin with transformers' save_pretrained(safe_serialization=True))."
        )
    tensors: dict[str, TensorRef] = {}
    for file in files:
        tensors.update(read_safetensors_header(folder / file))
    return tensors


def _tensor(ref: TensorRef, maps: dict[Path, np.memmap]) -> np.ndarray:
    """A read-only view of one tensor in its file's memory map (nothing is read until it is sliced)."""
    if ref.file not in maps:
        maps[ref.file] = np.memmap(ref.file, dtype=np.uint8, mode="r")
    return maps[ref.file][ref.begin : ref.end].view(ref.dtype).reshape(ref.shape)


def _hf_shapes(shapes: Params) -> dict[str, tuple[int, ...]]:
    """{Hugging Face name: Hugging Face shape} of a params shape tree (linear weights are [out, in])."""
    return {
        hf_name(path): tuple(leaf.shape)[::-1] if path[-1] == "kernel" else tuple(leaf.shape)
        for path, leaf in unstacked_shapes(shapes).items()
    }


def check_tensors(tensors: Mapping[str, TensorRef], shapes: Params, config: DecoderConfig) -> None:
    """``ValueError`` naming the first checkpoint tensor that is missing, has the wrong shape, or is not part of
    the model ``config`` describes."""
    expected = _hf_shapes(shapes)
    for name, shape in expected.items():
        if name not in tensors:
            raise ValueError(
                f"checkpoint tensor {name} is missing (expected shape {shape} for this {config.family} config); "
                "the weights do not belong to this config.json, or the shard list is incomplete."
            )
        if tensors[name].shape != shape:
            raise ValueError(
                f"checkpoint tensor {name} has shape {tensors[name].shape}, expected {shape} from config.json; "
                "the weights do not belong to this config.json."
            )
    for name in tensors:
        tied_head = name == "lm_head.weight" and config.tie_word_embeddings
        if name not in expected and not tied_head and not name.endswith(_IGNORED_SUFFIXES):
            raise ValueError(
                f"checkpoint tensor {name} is not part of a {config.family} model with this config.json (e.g. a bias "
                "or a layer the config does not declare); check config.json's model_type and sizes."
            )


def load_hf_checkpoint(
    folder: str | Path,
    *,
    dtype: str = "float32",
    mesh: Mesh | None = None,
    scan_layers: bool = True,
    remat: bool = False,
) -> tuple[DecoderConfig, ApplyFn, Params]:
    """``(config, apply_fn, params)`` of the Hugging Face checkpoint in ``folder`` (see the module docstring).

    ``dtype`` is the parameters' and the computation's dtype (tensors are cast as they are read; e.g. 'bfloat16'
    halves a float32 checkpoint). With ``mesh`` every leaf is placed straight onto
    ``NamedSharding(mesh, param_partition_specs(...))`` and each device reads only its own slice of the memory
    map, so no host holds a whole unsharded copy. Errors (unknown family, missing tensor, wrong shape, unsupported
    dtype) are raised from ``config.json`` and the safetensors headers, before any tensor is read.
    """
    folder = Path(folder)
    config_file = folder / "config.json"
    if not config_file.exists():
        raise ValueError(f"no config.json in {folder}; a Hugging Face checkpoint folder is expected.")
    config = DecoderConfig.from_hf(
        json.loads(config_file.read_text()), dtype=dtype, param_dtype=dtype, scan_layers=scan_layers, remat=remat
    )
    apply_fn, shapes = build_decoder(config, abstract=True)
    tensors = index_checkpoint(folder)
    check_tensors(tensors, shapes, config)
    maps: dict[Path, np.memmap] = {}

    def read(path, shape):
        tensor = _tensor(tensors[hf_name(path)], maps)
        return tensor.T if path[-1] == "kernel" else tensor

    return config, apply_fn, materialize(shapes, read, mesh=mesh)


def save_hf_checkpoint(folder: str | Path, config: DecoderConfig, params: Params) -> None:
    """Write ``config.json`` and ``model.safetensors`` (Hugging Face layout, the params' dtypes) into ``folder``.

    ``load_hf_checkpoint`` and transformers' ``from_pretrained`` read it back. Tensors are converted and written
    one at a time (a sharded leaf is gathered to the host one layer at a time).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    flat = traversals.flatten_mapping(params)
    layers = unstacked_shapes(params)
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for path, leaf in layers.items():
        dtype = np.dtype(leaf.dtype)
        if dtype not in _DTYPE_CODES:
            raise ValueError(f"cannot save {'/'.join(map(str, path))} of dtype {dtype}; use float32/bfloat16/float16.")
        size = int(np.prod(leaf.shape)) * dtype.itemsize
        shape = list(leaf.shape)[::-1] if path[-1] == "kernel" else list(leaf.shape)
        header[hf_name(path)] = {"dtype": _DTYPE_CODES[dtype], "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)  # the format pads the header to a multiple of 8 bytes
    with open(folder / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for path in layers:
            # One layer at a time: a stacked leaf is sliced on its devices, never copied whole to the host.
            value = np.asarray(flat[path] if path in flat else flat[(path[0], *path[2:])][path[1]])
            f.write(np.ascontiguousarray(value.T if path[-1] == "kernel" else value).tobytes())
    (folder / "config.json").write_text(json.dumps(config.to_hf(), indent=2) + "\n")


def check_vocab(tokenizer: Any, config: DecoderConfig) -> None:
    """``ValueError`` when ``tokenizer`` (anything with ``vocab_size``) can produce ids beyond the embedding."""
    if tokenizer.vocab_size > config.vocab_size:
        raise ValueError(
            f"the tokenizer has {tokenizer.vocab_size} tokens but the model's embedding has {config.vocab_size} "
            "rows: ids past the embedding would be read out of range. Use the tokenizer saved with this checkpoint "
            "(or resize the embedding before training)."
        )
