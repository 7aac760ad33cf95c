"""The TOFU task: fictitious-author unlearning of a causal LM, with TOFU's exact metrics."""

from rosu_jax.tasks.tofu.task import TofuConfig, TofuTask

TASK = TofuTask
CONFIG = TofuConfig

__all__ = ["CONFIG", "TASK", "TofuConfig", "TofuTask"]
