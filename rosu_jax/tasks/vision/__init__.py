"""The vision task: image classifiers, class-wise and random forgetting, UA / RA / TA / MIA, Avg.Gap."""

from rosu_jax.tasks.vision.task import VisionConfig, VisionTask

TASK = VisionTask
CONFIG = VisionConfig

__all__ = ["CONFIG", "TASK", "VisionConfig", "VisionTask"]
