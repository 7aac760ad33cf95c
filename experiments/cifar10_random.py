"""cifar10 — random forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/cifar10_random.py (tfds, or --data-dir DIR with train/<class>/ and test/<class>/ image folders) --out results/cifar10_random
Expected Retrain (literature): UA ~5.2, RA 100, TA ~94.3, MIA ~12.9.
ROSU's published retain accuracy (a leaderboard quote of the paper, whose tables are not public): 99.84.
"""

from rosu_jax.runs import RunConfig
from rosu_jax.tasks.vision.presets import RESNET18_OVERRIDES, paper_task

CONFIG = RunConfig(task=paper_task("cifar10", "random"), overrides=RESNET18_OVERRIDES)
