"""tiny_imagenet — random forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/tiny_imagenet_random.py (--data-dir DIR holding the Tiny-ImageNet folder tree) --out results/tiny_imagenet_random
Expected Retrain (literature): RA ~100.
ROSU's published retain accuracy (a leaderboard quote of the paper, whose tables are not public): 98.7.
"""

from rosu_jax.runs import RunConfig
from rosu_jax.tasks.vision.presets import RESNET18_OVERRIDES, paper_task

CONFIG = RunConfig(task=paper_task("tiny_imagenet", "random"), overrides=RESNET18_OVERRIDES)
