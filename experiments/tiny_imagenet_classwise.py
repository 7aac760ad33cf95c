"""tiny_imagenet — classwise forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/tiny_imagenet_classwise.py (--data-dir DIR holding the Tiny-ImageNet folder tree) --out results/tiny_imagenet_classwise
Expected Retrain (literature): UA 100, MIA 100.
ROSU's published retain accuracy (a leaderboard quote of the paper, whose tables are not public): 99.97.
"""

from rosu_jax.runs import RunConfig
from rosu_jax.tasks.vision.presets import RESNET18_OVERRIDES, paper_task

CONFIG = RunConfig(task=paper_task("tiny_imagenet", "classwise"), overrides=RESNET18_OVERRIDES)
