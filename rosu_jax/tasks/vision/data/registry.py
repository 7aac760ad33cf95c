"""Name-based dataset loading: digits, folder, cifar10, cifar100, tiny_imagenet."""

from __future__ import annotations

import os
from pathlib import Path

from rosu_jax.tasks.vision.data.dataset import ImageDataset
from rosu_jax.tasks.vision.data.digits import load_digits
from rosu_jax.tasks.vision.data.folder import LAYOUT_HELP, load_image_folder
from rosu_jax.tasks.vision.data.tfds_reader import load_tfds

DATASET_NAMES = ("digits", "folder", "cifar10", "cifar100", "tiny_imagenet")
_EXPECTED_CLASSES = {"cifar10": 10, "cifar100": 100}
CIFAR_VAL_FRACTION = 0.1


def _has_train_test(data_dir: str | os.PathLike | None) -> bool:
    return data_dir is not None and (Path(data_dir) / "train").is_dir() and (Path(data_dir) / "test").is_dir()


def load_dataset(
    name: str, data_dir: str | os.PathLike | None = None, *, seed: int = 0, skip_bad: bool = False, **kw
) -> ImageDataset:
    """Load a dataset by name following the evaluation protocol; extra keywords go to the underlying loader.

    ``skip_bad``: image files that do not decode are left out with a warning (image folders only; by default
    they fail the load, naming the files).

    'digits' is bundled (data_dir ignored); 'folder' and 'tiny_imagenet' read ``data_dir``; 'cifar10' /
    'cifar100' read an image folder when ``data_dir`` has train/ and test/ (val_fraction=0.1), else tfds.
    """
    if name not in DATASET_NAMES:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASET_NAMES)}")
    if name == "digits":
        return load_digits(seed=seed, **kw)
    if name in ("folder", "tiny_imagenet"):
        if data_dir is None:
            raise ValueError(f"dataset {name!r} needs data_dir=<root>; {LAYOUT_HELP}")
        if name == "tiny_imagenet":
            kw.setdefault("name", name)
        return load_image_folder(data_dir, seed=seed, skip_bad=skip_bad, **kw)
    if _has_train_test(data_dir):
        kw.setdefault("val_fraction", CIFAR_VAL_FRACTION)
        kw.setdefault("name", name)
        ds = load_image_folder(data_dir, seed=seed, skip_bad=skip_bad, **kw)
    else:
        ds = load_tfds(name, data_dir=data_dir, seed=seed, **kw)
    if ds.num_classes != _EXPECTED_CLASSES[name]:
        raise ValueError(f"{name} should have {_EXPECTED_CLASSES[name]} classes but {data_dir} has {ds.num_classes}")
    return ds
