"""cifar100 — classwise forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/cifar100_classwise.py (tfds, or --data-dir DIR with train/<class>/ and test/<class>/ image folders) --out results/cifar100_classwise
Expected Retrain (literature): UA 100, RA ~100, MIA 100.
ROSU's published retain accuracy (a leaderboard quote of the paper, whose tables are not public): 99.98.
"""

from rosu_jax.runs import RunConfig
from rosu_jax.tasks.vision.presets import RESNET18_OVERRIDES, paper_task

CONFIG = RunConfig(task=paper_task("cifar100", "classwise"), overrides=RESNET18_OVERRIDES)
