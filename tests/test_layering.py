"""The layering of rosu_jax stays true: each layer imports only the layers before it (lazy imports included), and
a task package imports no other task package, so adding a task is adding one package."""

import ast
from pathlib import Path

import pytest

import rosu_jax

LAYERS = ("core", "transforms", "steps", "parallel", "models", "tasks", "methods", "runs", "cli")
ROOT = Path(rosu_jax.__file__).parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n == "rosu_jax" or n.startswith("rosu_jax.")}


def _files():
    return sorted(p for p in ROOT.rglob("*.py") if p.parent != ROOT)


def test_every_subpackage_is_a_known_layer():
    packages = {p.relative_to(ROOT).parts[0] for p in _files()}
    assert packages <= set(LAYERS), f"unlayered packages: {packages - set(LAYERS)}; add them to LAYERS in order"


@pytest.mark.parametrize("path", _files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_only_earlier_layers(path):
    layer = path.relative_to(ROOT).parts[0]
    rank = LAYERS.index(layer)
    for name in _imports(path):
        if name == "rosu_jax":
            assert rank >= LAYERS.index("runs"), f"{path}: the root package is imported only from runs and later"
            continue
        target = name.split(".")[1]
        assert LAYERS.index(target) <= rank, f"{path.relative_to(ROOT)} imports {name} (layer {target} > {layer})"


@pytest.mark.parametrize("path", sorted((ROOT / "tasks").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_task_packages_do_not_import_each_other(path):
    parts = path.relative_to(ROOT / "tasks").parts
    if len(parts) == 1:
        return  # tasks/base.py and shared modules
    own = parts[0]
    for name in _imports(path):
        bits = name.split(".")
        if bits[1] == "tasks" and len(bits) > 2 and (ROOT / "tasks" / bits[2]).is_dir():
            assert bits[2] == own, f"{path.relative_to(ROOT)} imports another task package: {name}"
