"""Models (Flax NNX) and the pure functional boundary ``apply_fn(params, model_state, images, *, train)``."""

from rosu_jax.models.functional import ApplyInfo, make_apply_fn, merge_model, split_model
from rosu_jax.models.registry import MODELS, build_model, count_params
from rosu_jax.models.resnet import BasicBlock, ResNet18
from rosu_jax.models.resnet_fast import ResNetFast
from rosu_jax.models.small_cnn import SmallCNN

__all__ = [
    "MODELS",
    "ApplyInfo",
    "BasicBlock",
    "ResNet18",
    "ResNetFast",
    "SmallCNN",
    "build_model",
    "count_params",
    "make_apply_fn",
    "merge_model",
    "split_model",
]
