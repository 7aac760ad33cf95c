"""Layer 5: unlearning methods, each declared once with its hyperparameters (``rosu_jax.methods.base.Method``).

Methods combine a task's loss terms into a step (``rosu_jax.steps``); they know nothing of images or tokens.
"""

from rosu_jax.methods.base import ExtrasContext, Method, OptimizerSettings, hyper
from rosu_jax.methods.registry import get_method, methods, methods_for

__all__ = ["ExtrasContext", "Method", "OptimizerSettings", "get_method", "hyper", "methods", "methods_for"]
