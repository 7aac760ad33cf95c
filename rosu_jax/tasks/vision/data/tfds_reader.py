"""CIFAR-10/100 through tensorflow_datasets (optional extra ``rosu-jax[tfds]``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from rosu_jax.tasks.vision.data.dataset import ImageDataset, with_validation

TFDS_DATASETS = ("cifar10", "cifar100")


def _is_prepared(builder) -> bool:
    """True when the builder's versioned data folder already holds a prepared dataset."""
    check = getattr(builder, "is_prepared", None)
    if callable(check):
        return bool(check())
    data_dir = str(builder.data_dir)
    if "://" in data_dir:  # remote (e.g. gs://) storage: let tfds itself decide
        return True
    return (Path(data_dir) / "dataset_info.json").is_file()


def _not_prepared_error(name: str, data_dir: str | os.PathLike | None) -> FileNotFoundError:
    where = data_dir if data_dir is not None else os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")
    return FileNotFoundError(
        f"tensorflow_datasets has no prepared {name!r} in {where}. Either prepare it once on a machine with "
        f"internet access (load_tfds({name!r}, data_dir=..., download=True), or "
        f"`tfds build {name} --data_dir=...`) and copy the folder here, or export the images as "
        f"<root>/train/<class>/*.png and <root>/test/<class>/*.png and pass that folder: "
        f"load_dataset({name!r}, data_dir=<root>)"
    )


def load_tfds(
    name: str,
    *,
    data_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    download: bool = False,
) -> ImageDataset:
    """Load 'cifar10' or 'cifar100' via tensorflow_datasets, holding out val_fraction per class (seeded).

    Never downloads unless ``download=True``; a dataset missing from data_dir fails fast with instructions.
    """
    if name not in TFDS_DATASETS:
        raise ValueError(f"load_tfds supports {', '.join(TFDS_DATASETS)}; got {name!r}")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError(
            f"loading {name!r} through tensorflow_datasets needs the optional extra: "
            "pip install 'rosu-jax[tfds]' "
            f"(or pass data_dir=<root> holding <root>/train/<class>/*.png and <root>/test/<class>/*.png)"
        ) from e
    builder = tfds.builder(name, data_dir=None if data_dir is None else str(data_dir))
    if not _is_prepared(builder):
        if not download:
            raise _not_prepared_error(name, data_dir)
        builder.download_and_prepare()
    splits = {}
    for split in ("train", "test"):
        data = tfds.as_numpy(builder.as_dataset(split=split, batch_size=-1))
        splits[split] = (np.asarray(data["image"], np.uint8), np.asarray(data["label"]).astype(np.int32))
    names = tuple(builder.info.features["label"].names)
    (x_train, y_train), (x_test, y_test) = splits["train"], splits["test"]
    return with_validation(name, x_train, y_train, x_test, y_test, names, val_fraction, seed)
