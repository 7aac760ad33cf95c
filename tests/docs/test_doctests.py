"""Every ``>>>`` example in the library's docstrings runs and prints what it shows."""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

import rosu_jax

ROOT = Path(rosu_jax.__file__).parent
MODULES = sorted(
    info.name
    for info in pkgutil.walk_packages([str(ROOT)], prefix="rosu_jax.")
    if ">>>" in (ROOT.parent / (info.name.replace(".", "/") + ("/__init__.py" if info.ispkg else ".py"))).read_text()
)


def test_the_public_core_has_examples():
    for module in ("rosu_jax.core.perturbation", "rosu_jax.transforms.rosu", "rosu_jax.steps.minmax"):
        assert module in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.attempted > 0 and result.failed == 0, f"{name}: {result.failed} of {result.attempted} failed"
