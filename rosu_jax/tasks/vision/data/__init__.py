"""Data layer: datasets, loaders, forget/retain splits and host-side batching."""

from rosu_jax.tasks.batching import FORGET_STREAM, RETAIN_STREAM, num_batches
from rosu_jax.tasks.vision.data.batching import (
    augment_batch,
    cycle_batches,
    dataset_stats,
    iterate_batches,
    normalize_images,
)
from rosu_jax.tasks.vision.data.dataset import ImageDataset, per_class_holdout, subsample_per_class
from rosu_jax.tasks.vision.data.digits import load_digits
from rosu_jax.tasks.vision.data.folder import BadImagesError, decode_images, load_image_folder
from rosu_jax.tasks.vision.data.registry import DATASET_NAMES, load_dataset
from rosu_jax.tasks.vision.data.splits import SCENARIOS, ForgetSplit, classwise_split, make_split, random_split
from rosu_jax.tasks.vision.data.tfds_reader import load_tfds

__all__ = [
    "BadImagesError",
    "DATASET_NAMES",
    "FORGET_STREAM",
    "RETAIN_STREAM",
    "SCENARIOS",
    "ForgetSplit",
    "ImageDataset",
    "augment_batch",
    "classwise_split",
    "cycle_batches",
    "dataset_stats",
    "decode_images",
    "iterate_batches",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_tfds",
    "make_split",
    "normalize_images",
    "num_batches",
    "per_class_holdout",
    "random_split",
    "subsample_per_class",
]
