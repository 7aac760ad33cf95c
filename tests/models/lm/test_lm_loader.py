import json
import shutil
import struct

import jax
import ml_dtypes
import numpy as np
import pytest
from flax.nnx import traversals
from jax.sharding import NamedSharding

from rosu_jax.models.lm import (
    Tokenizer,
    check_vocab,
    load_hf_checkpoint,
    param_partition_specs,
    save_hf_checkpoint,
)
from rosu_jax.models.lm.loader import index_checkpoint
from rosu_jax.parallel import make_mesh

CODES = {np.dtype("float32"): "F32", np.dtype(ml_dtypes.bfloat16): "BF16", np.dtype("int64"): "I64"}


def write_safetensors(file, tensors):
    """A minimal safetensors writer, independent of the loader's."""
    header, offset = {}, 0
    for name, array in tensors.items():
        header[name] = {
            "dtype": CODES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    with open(file, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded)
        for array in tensors.values():
            f.write(np.ascontiguousarray(array).tobytes())


def read_tensors(folder):
    """{name: numpy array} of a checkpoint, read through the loader's index."""
    return {
        name: np.fromfile(ref.file, np.uint8)[ref.begin : ref.end].view(ref.dtype).reshape(ref.shape)
        for name, ref in index_checkpoint(folder).items()
    }


def copy_checkpoint(source, folder, *, drop=(), add=None, config=None):
    """A copy of ``source`` with tensors dropped or added and config.json fields changed."""
    folder.mkdir()
    tensors = {k: v for k, v in read_tensors(source).items() if k not in drop}
    write_safetensors(folder / "model.safetensors", {**tensors, **(add or {})})
    (folder / "config.json").write_text(
        json.dumps({**json.loads((source / "config.json").read_text()), **(config or {})})
    )
    return folder


def assert_same_params(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_save_load_round_trip_in_the_hugging_face_layout(fixtures, tmp_path):
    for case in ("qwen3", "llama3_tied"):
        config, _, params = load_hf_checkpoint(fixtures / case)
        save_hf_checkpoint(tmp_path / case, config, params)
        original, saved = read_tensors(fixtures / case), read_tensors(tmp_path / case)
        assert saved.keys() == original.keys()  # tied: no lm_head.weight
        jax.tree.map(np.testing.assert_array_equal, saved, original)
        config_back, _, params_back = load_hf_checkpoint(tmp_path / case)
        assert config_back == config
        assert_same_params(params_back, params)


def test_sharded_checkpoint_and_layer_loop_layout(fixtures, tmp_path):
    tensors = read_tensors(fixtures / "qwen2")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, shard_names in shards.items():
        write_safetensors(tmp_path / file, {n: tensors[n] for n in shard_names})
    weight_map = {n: file for file, shard_names in shards.items() for n in shard_names}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    shutil.copy(fixtures / "qwen2" / "config.json", tmp_path)
    _, _, params = load_hf_checkpoint(tmp_path, scan_layers=False)
    _, _, reference = load_hf_checkpoint(fixtures / "qwen2", scan_layers=False)
    assert_same_params(params, reference)
    kernel = np.asarray(params["layers"][1]["self_attn"]["k_proj"]["kernel"])
    np.testing.assert_array_equal(kernel, tensors["model.layers.1.self_attn.k_proj.weight"].T)  # [out, in] -> [in, out]
    np.testing.assert_array_equal(
        params["layers"][1]["self_attn"]["k_proj"]["bias"], tensors["model.layers.1.self_attn.k_proj.bias"]
    )


def test_wrong_shape_names_the_tensor_before_reading_any(fixtures, tmp_path, monkeypatch):
    folder = copy_checkpoint(fixtures / "llama2", tmp_path / "ckpt", config={"intermediate_size": 48})
    monkeypatch.setattr("rosu_jax.models.lm.loader.materialize", lambda *a, **k: pytest.fail("read tensors"))
    with pytest.raises(
        ValueError, match=r"model\.layers\.0\.mlp\.down_proj\.weight has shape \(32, 64\), expected \(32, 48\)"
    ):
        load_hf_checkpoint(folder)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            dict(drop=["model.layers.1.self_attn.k_proj.weight"]),
            r"tensor model\.layers\.1\.self_attn\.k_proj\.weight is missing",
        ),
        (
            dict(add={"model.layers.0.self_attn.o_proj.bias": np.zeros(32, np.float32)}),
            r"o_proj\.bias is not part of a llama model",
        ),
        (dict(add={"model.layers.0.self_attn.rotary_emb.inv_freq": np.zeros(4, np.float32)}), None),
        (dict(add={"extra": np.zeros(3, np.int64)}), "dtype I64"),
        (dict(config={"model_type": "gpt2"}), "unsupported model_type 'gpt2'"),
    ],
)
def test_checkpoint_errors(fixtures, tmp_path, edit, match):
    folder = copy_checkpoint(fixtures / "llama2", tmp_path / "ckpt", **edit)
    if match is None:  # RoPE buffers of old checkpoints are ignored
        load_hf_checkpoint(folder)
        return
    with pytest.raises(ValueError, match=match):
        load_hf_checkpoint(folder)


def test_missing_files(fixtures, tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_hf_checkpoint(tmp_path)
    shutil.copy(fixtures / "llama2" / "config.json", tmp_path)
    with pytest.raises(ValueError, match="no model.safetensors or model.safetensors.index.json"):
        load_hf_checkpoint(tmp_path)


def test_check_vocab(fixtures):
    tokenizer = Tokenizer.from_folder(fixtures / "tokenizer")  # 320 tokens
    config, _, _ = load_hf_checkpoint(fixtures / "llama2")  # 128 embedding rows
    with pytest.raises(ValueError, match="320 tokens but the model's embedding has 128 rows"):
        check_vocab(tokenizer, config)
    check_vocab(tokenizer, config.__class__(**{**config.__dict__, "vocab_size": 320}))


def test_bfloat16_load_casts_and_runs(fixtures, quick_jit):
    ref = np.load(fixtures / "mistral" / "reference.npz")
    config, apply_fn, params = load_hf_checkpoint(fixtures / "mistral", dtype="bfloat16")
    assert config.dtype == config.param_dtype == "bfloat16"
    _, _, params32 = load_hf_checkpoint(fixtures / "mistral")
    jax.tree.map(
        lambda a, b: np.testing.assert_array_equal(a, np.asarray(b).astype(ml_dtypes.bfloat16)), params, params32
    )
    logits = np.asarray(quick_jit(apply_fn)(params, ref["input_ids"], ref["attention_mask"]))
    real = ref["attention_mask"].astype(bool)
    assert logits.dtype == np.float32
    np.testing.assert_allclose(logits[real], ref["logits"][real], atol=0.15)


def test_load_onto_a_mesh(fixtures, quick_jit):
    mesh = make_mesh("data=2,fsdp=4")
    ref = np.load(fixtures / "qwen3" / "reference.npz")
    _, apply_fn, sharded = load_hf_checkpoint(fixtures / "qwen3", mesh=mesh)
    _, _, params = load_hf_checkpoint(fixtures / "qwen3")
    assert_same_params(sharded, params)
    specs = traversals.flatten_mapping(param_partition_specs(params, mesh))
    for path, leaf in traversals.flatten_mapping(sharded).items():
        assert leaf.sharding == NamedSharding(mesh, specs[path]), path
    embedding = sharded["embed_tokens"]["embedding"]
    assert embedding.addressable_shards[0].data.shape == (128 // 4, 32)  # vocab split over fsdp=4
    assert sharded["layers"]["mlp"]["up_proj"]["kernel"].addressable_shards[0].data.shape == (2, 32, 64 // 4)
    forward = quick_jit(apply_fn)
    np.testing.assert_allclose(
        forward(sharded, ref["input_ids"], ref["attention_mask"]),
        forward(params, ref["input_ids"], ref["attention_mask"]),
        atol=1e-5,
    )
