"""Tasks: what is unlearned from what. A task owns its data, its model boundary, its loss terms and its metrics.

Each sub-package is one task and exports ``TASK`` (its ``rosu_jax.tasks.base.Task`` class) and ``CONFIG`` (its
settings dataclass). Adding a task is adding one package here.
"""

from __future__ import annotations

import importlib
import pkgutil


def task_names() -> tuple[str, ...]:
    """The task packages, e.g. ('tofu', 'vision', 'wmdp')."""
    return tuple(m.name for m in pkgutil.iter_modules(__path__) if m.ispkg)


def task_package(name: str):
    if name not in task_names():
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(task_names())}.")
    return importlib.import_module(f"{__name__}.{name}")


def make_task(config):
    """The task object for a task config (an instance of some task package's ``CONFIG``)."""
    for name in task_names():
        package = task_package(name)
        if isinstance(config, getattr(package, "CONFIG", ())):
            return package.TASK(config)
    raise ValueError(f"{type(config).__name__} is not the config of a task ({', '.join(task_names())}).")
