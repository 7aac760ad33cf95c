"""Image-folder reader on tiny trees written with Pillow (class folders and Tiny-ImageNet), and its cache."""

import os

import numpy as np
import pytest
from PIL import Image

from rosu_jax.tasks.vision.data import folder as folder_mod
from rosu_jax.tasks.vision.data import load_image_folder


def _img(seed, size=(6, 5)):
    h, w = size
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write(path, arr, fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format=fmt)


def _make_tree(root, classes=("cat", "ant", "bee"), n_train=4, n_test=2, size=(6, 5)):
    """PNG tree; returns {(split, class, i): array}."""
    arrays = {}
    for ci, c in enumerate(classes):
        for split, n in (("train", n_train), ("test", n_test)):
            for i in range(n):
                a = _img(1000 * ci + 10 * i + (split == "test"), size)
                _write(root / split / c / f"{i:03d}.png", a)
                arrays[split, c, i] = a
    return arrays


def test_reads_class_folders_in_sorted_order(tmp_path):
    arrays = _make_tree(tmp_path / "ds")
    (tmp_path / "ds" / "train" / "ant" / "notes.txt").write_text("ignored")
    ds = load_image_folder(tmp_path / "ds", cache_dir=tmp_path / "cache")
    assert ds.name == "ds" and ds.class_names == ("ant", "bee", "cat")
    assert ds.x_train.shape == (12, 6, 5, 3) and ds.x_train.dtype == np.uint8 and ds.x_test.shape == (6, 6, 5, 3)
    assert np.array_equal(ds.y_train, np.repeat([0, 1, 2], 4)) and np.array_equal(ds.y_test, np.repeat([0, 1, 2], 2))
    assert np.array_equal(ds.x_train[0], arrays["train", "ant", 0])
    assert np.array_equal(ds.x_train[11], arrays["train", "cat", 3])
    assert np.array_equal(ds.x_test[3], arrays["test", "bee", 1])
    assert ds.x_val is None


def test_jpeg_grayscale_and_uppercase_suffixes(tmp_path):
    root = tmp_path / "ds"
    gray = np.full((4, 4), 200, np.uint8)
    for split in ("train", "test"):
        (root / split / "a").mkdir(parents=True)
        Image.fromarray(gray).save(root / split / "a" / "x.JPEG", format="JPEG")
        _write(root / split / "b" / "y.PNG", np.zeros((4, 4, 3), np.uint8))
        _write(root / split / "b" / "z.jpg", np.zeros((4, 4, 3), np.uint8), fmt="JPEG")
    ds = load_image_folder(root, use_cache=False)
    assert ds.x_train.shape == (3, 4, 4, 3) and np.array_equal(ds.y_train, [0, 1, 1])
    assert abs(int(ds.x_train[0].mean()) - 200) <= 2  # grayscale JPEG converted to RGB


def test_val_fraction_per_class_and_seeded(tmp_path):
    _make_tree(tmp_path / "ds", n_train=10)
    kw = dict(cache_dir=tmp_path / "cache", val_fraction=0.2)
    a = load_image_folder(tmp_path / "ds", seed=0, **kw)
    assert a.x_train.shape[0] == 24 and a.x_val.shape[0] == 6
    assert np.array_equal(np.bincount(a.y_val), [2, 2, 2]) and np.array_equal(np.bincount(a.y_train), [8, 8, 8])
    b = load_image_folder(tmp_path / "ds", seed=0, **kw)
    c = load_image_folder(tmp_path / "ds", seed=1, **kw)
    assert np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_val, c.x_val)


def test_mixed_sizes_need_image_size(tmp_path):
    _make_tree(tmp_path / "ds")
    _write(tmp_path / "ds" / "train" / "ant" / "big.png", _img(7, (9, 9)))
    with pytest.raises(ValueError, match="image_size"):
        load_image_folder(tmp_path / "ds", use_cache=False)
    ds = load_image_folder(tmp_path / "ds", image_size=4, use_cache=False)
    assert ds.image_shape == (4, 4, 3) and ds.x_test.shape == (6, 4, 4, 3)


def test_missing_layout_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*expected"):
        load_image_folder(tmp_path / "nope")
    (tmp_path / "a" / "train" / "c0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="missing folder .*test.*expected"):
        load_image_folder(tmp_path / "a")
    (tmp_path / "a" / "test" / "c0").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no .jpg/.jpeg/.png images"):
        load_image_folder(tmp_path / "a")
    _write(tmp_path / "a" / "train" / "c0" / "0.png", _img(0))
    with pytest.raises(FileNotFoundError, match="test"):
        load_image_folder(tmp_path / "a")


def test_unknown_test_class(tmp_path):
    _make_tree(tmp_path / "ds")
    _write(tmp_path / "ds" / "test" / "dog" / "0.png", _img(0))
    with pytest.raises(ValueError, match="dog"):
        load_image_folder(tmp_path / "ds", use_cache=False)


def test_cache_is_reused_and_invalidated(tmp_path, monkeypatch):
    _make_tree(tmp_path / "ds")
    cache = tmp_path / "cache"
    first = load_image_folder(tmp_path / "ds", name="toy", cache_dir=cache)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith("toy-") and files[0].suffix == ".npz"

    def boom(*args, **kwargs):
        raise AssertionError("decoded although a cache exists")

    monkeypatch.setattr(folder_mod, "_decode", boom)
    second = load_image_folder(tmp_path / "ds", name="toy", cache_dir=cache)
    assert np.array_equal(first.x_train, second.x_train) and np.array_equal(first.y_test, second.y_test)
    assert second.class_names == first.class_names
    # a changed file (new mtime) changes the key: decoding is attempted again
    target = tmp_path / "ds" / "train" / "ant" / "000.png"
    os.utime(target, ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded"):
        load_image_folder(tmp_path / "ds", name="toy", cache_dir=cache)


def test_cache_dir_env_override_and_disable(tmp_path, monkeypatch):
    _make_tree(tmp_path / "ds")
    monkeypatch.setenv("ROSU_JAX_CACHE", str(tmp_path / "envcache"))
    load_image_folder(tmp_path / "ds", use_cache=False)
    assert not (tmp_path / "envcache").exists()
    load_image_folder(tmp_path / "ds")
    assert len(list((tmp_path / "envcache").glob("ds-*.npz"))) == 1


def _make_tiny_imagenet(root, wnids=("n03", "n01", "n02"), n_train=3, n_val=4):
    """Tiny-ImageNet tree whose images are uniformly coloured by class (robust to JPEG loss)."""
    (root / "val" / "images").mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    colors = {w: 40 + 60 * i for i, w in enumerate(sorted(wnids))}
    for w in wnids:
        for i in range(n_train):
            _write(
                root / "train" / w / "images" / f"{w}_{i}.JPEG",
                np.full((8, 8, 3), colors[w], np.uint8),
                "JPEG",
            )
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    lines, k = [], 0
    for _ in range(n_val):
        for w in wnids:
            _write(root / "val" / "images" / f"val_{k}.JPEG", np.full((8, 8, 3), colors[w], np.uint8), "JPEG")
            lines.append(f"val_{k}.JPEG\t{w}\t0\t0\t7\t7")
            k += 1
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return colors


def test_tiny_imagenet_layout(tmp_path):
    colors = _make_tiny_imagenet(tmp_path / "tiny")
    ds = load_image_folder(tmp_path / "tiny", name="tiny_imagenet", cache_dir=tmp_path / "cache", seed=0)
    assert ds.class_names == ("n01", "n02", "n03") and ds.image_shape == (8, 8, 3)
    assert ds.x_train.shape[0] == 9 and np.array_equal(np.bincount(ds.y_train), [3, 3, 3])
    assert np.array_equal(np.bincount(ds.y_val), [2, 2, 2]) and np.array_equal(np.bincount(ds.y_test), [2, 2, 2])
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        expected = np.array([colors[ds.class_names[c]] for c in y])
        assert np.all(np.abs(x.reshape(len(y), -1).mean(1) - expected) <= 3)
    again = load_image_folder(tmp_path / "tiny", name="tiny_imagenet", cache_dir=tmp_path / "cache", seed=0)
    assert np.array_equal(again.x_test, ds.x_test) and np.array_equal(again.y_val, ds.y_val)
    with pytest.raises(ValueError, match="val_fraction must be 0"):
        load_image_folder(tmp_path / "tiny", val_fraction=0.1, use_cache=False)


def test_tiny_imagenet_bad_annotation(tmp_path):
    _make_tiny_imagenet(tmp_path / "tiny")
    with open(tmp_path / "tiny" / "val" / "val_annotations.txt", "a") as f:
        f.write("val_x.JPEG\tn99\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match="n99"):
        load_image_folder(tmp_path / "tiny", use_cache=False)
