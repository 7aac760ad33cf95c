"""The WMDP task: hazardous-knowledge unlearning of a causal LM, scored through lm-evaluation-harness."""

from rosu_jax.tasks.wmdp.task import WmdpConfig, WmdpTask

TASK = WmdpTask
CONFIG = WmdpConfig

__all__ = ["CONFIG", "TASK", "WmdpConfig", "WmdpTask"]
