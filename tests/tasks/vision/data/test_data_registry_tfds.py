"""load_dataset dispatch and the optional tensorflow_datasets reader (never imported for real)."""

import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from rosu_jax.tasks.vision.data import load_dataset, load_tfds


def _cifar_like_tree(root, n_classes=10, n_train=10, n_test=2):
    for c in range(n_classes):
        for split, n in (("train", n_train), ("test", n_test)):
            d = root / split / f"class{c:03d}"
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((4, 4, 3), c, np.uint8)).save(d / f"{i}.png")


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="digits, folder, cifar10, cifar100, tiny_imagenet"):
        load_dataset("mnist")


@pytest.mark.parametrize("name", ["folder", "tiny_imagenet"])
def test_folder_datasets_need_data_dir(name):
    with pytest.raises(ValueError, match="needs data_dir"):
        load_dataset(name)


def test_digits_via_registry():
    ds = load_dataset("digits", seed=3)
    assert ds.name == "digits" and ds.x_train.shape == (1437, 8, 8, 1)


def test_cifar10_from_image_folder_holds_out_10_percent(tmp_path):
    _cifar_like_tree(tmp_path / "c10")
    ds = load_dataset("cifar10", tmp_path / "c10", cache_dir=tmp_path / "cache")
    assert ds.name == "cifar10" and ds.num_classes == 10
    assert ds.x_train.shape[0] == 90 and ds.x_val.shape[0] == 10 and ds.x_test.shape[0] == 20
    assert np.array_equal(np.bincount(ds.y_val), np.ones(10))
    with pytest.raises(ValueError, match="should have 100 classes"):
        load_dataset("cifar100", tmp_path / "c10", cache_dir=tmp_path / "cache")


def test_generic_folder_via_registry(tmp_path):
    _cifar_like_tree(tmp_path / "f", n_classes=2)
    ds = load_dataset("folder", tmp_path / "f", use_cache=False)
    assert ds.num_classes == 2 and ds.x_val is None


def test_tfds_missing_gives_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'rosu-jax\[tfds\]'"):
        load_tfds("cifar10")
    with pytest.raises(ImportError, match=r"rosu-jax\[tfds\]"):
        load_dataset("cifar100", tmp_path / "empty")  # no train/ + test/ folders -> tfds path


def test_tfds_rejects_other_names():
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        load_tfds("imagenet2012")


class _FakeBuilder:
    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.prepared_calls = 0
        self.info = types.SimpleNamespace(features={"label": types.SimpleNamespace(names=["a", "b"])})

    def download_and_prepare(self):
        self.prepared_calls += 1

    def as_dataset(self, split, batch_size):
        n = 20 if split == "train" else 4
        return {"image": np.zeros((n, 4, 4, 3), np.uint8), "label": np.arange(n) % 2}


def _fake_tfds(monkeypatch, builder):
    mod = types.ModuleType("tensorflow_datasets")
    mod.builder = lambda name, data_dir=None: builder
    mod.as_numpy = lambda ds: ds
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", mod)


def test_tfds_unprepared_fails_fast_without_download(monkeypatch, tmp_path):
    builder = _FakeBuilder(str(tmp_path / "cifar10" / "3.0.2"))
    _fake_tfds(monkeypatch, builder)
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError, match="download=True.*data_dir=<root>"):
        load_tfds("cifar10", data_dir=tmp_path)
    assert time.perf_counter() - start < 2 and builder.prepared_calls == 0
    load_tfds("cifar10", data_dir=tmp_path, download=True)
    assert builder.prepared_calls == 1


def test_tfds_prepared_reads_and_holds_out_val(monkeypatch, tmp_path):
    (tmp_path / "v").mkdir()
    (tmp_path / "v" / "dataset_info.json").write_text("{}")
    _fake_tfds(monkeypatch, _FakeBuilder(str(tmp_path / "v")))
    ds = load_tfds("cifar10", data_dir=tmp_path, val_fraction=0.1)
    assert ds.class_names == ("a", "b") and ds.x_train.shape[0] == 18 and ds.x_val.shape[0] == 2
    assert ds.x_test.shape[0] == 4 and ds.y_train.dtype == np.int32
