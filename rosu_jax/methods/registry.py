"""The registry: every ``Method`` declared in a module of ``rosu_jax.methods`` (its ``DECLARED`` tuple).

Adding a method is adding one declaration to a module here, or one new module with a ``DECLARED`` tuple; the CLI,
grids, variant labels and reports pick it up. Names are unique.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil

from rosu_jax.methods.base import Method


@functools.cache
def methods() -> dict[str, Method]:
    """name -> Method, in module order then declaration order."""
    import rosu_jax.methods as package

    found: dict[str, Method] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for method in getattr(module, "DECLARED", ()):
            if method.name in found:
                raise ValueError(f"method {method.name!r} is declared twice (in {module.__name__} and before).")
            found[method.name] = method
    return found


def get_method(name: str) -> Method:
    registry = methods()
    if name not in registry:
        raise ValueError(f"unknown method {name!r}; known methods: {', '.join(registry)}.")
    return registry[name]


def methods_for(provides: frozenset[str]) -> tuple[str, ...]:
    """The methods whose required loss terms a task provides."""
    return tuple(name for name, m in methods().items() if m.requires <= provides)
