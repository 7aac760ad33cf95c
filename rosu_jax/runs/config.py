"""What to run: a task's settings, which methods with which hyperparameters and grids, seeds, the device mesh.

``RunConfig`` is a frozen dataclass; everything in it is JSON-able, and ``stable_hash`` of the parts that change
the numbers names checkpoints and cached rows. Methods take their hyperparameters from, in order: their
declaration's defaults, the task's defaults (``task.method_defaults()``), ``overrides`` (``--set ROSU.rho=0.2``),
and a grid point (``grids``: ``--rho-grid 0.2,0.5``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import Any

from rosu_jax.methods import get_method
from rosu_jax.methods.base import FLOAT32_MAX, OptimizerSettings

ALL_METHODS = "*"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One experiment: a task × methods × seeds.

    task: the task's config (e.g. ``rosu_jax.tasks.vision.VisionConfig``).
    methods: method names (None: the task's default list).
    overrides: ``{method name or "*": {hyperparameter: value}}``.
    grids: ``{hyperparameter: values}`` tried for every method that declares the hyperparameter grid-able
      (one row per point; grids multiply), or ``{"ROSU.rho": values}`` for one method only.
    mesh: device mesh, e.g. ``"data=8"`` (None: one device).
    tune: fair tuning: every method gets the same number of grid points, each variant is also scored on the task's
      held-out validation data, and the report keeps, per method, the variant with the best mean validation summary
      (never chosen on the reported numbers); the grids and the choice are recorded.
    relearn: ``(k, n)``: after unlearning, fine-tune on k forget examples for n steps and record how fast the forget
      score comes back (a relearning attack; every method alike).
    """

    task: Any
    methods: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    grids: dict[str, tuple] = dataclasses.field(default_factory=dict)
    mesh: str | None = None
    tune: bool = False
    relearn: tuple[int, int] | None = None

    def __post_init__(self):
        if not self.seeds:
            raise ValueError("--seeds: at least one seed is needed.")
        for seed in self.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"--seeds: seeds are integers >= 0, got {seed!r}.")
        for name in self.methods or ():
            get_method(name)
        for target, values in self.overrides.items():
            if target != ALL_METHODS:
                get_method(target).configure(values)
        if self.relearn is not None and (len(self.relearn) != 2 or min(self.relearn) < 1):
            raise ValueError(f"--relearn K,N: k forget examples and n steps, both >= 1; got {self.relearn!r}.")
        for target, values in self.grids.items():
            if not values:
                raise ValueError(f"the grid of {target} is empty.")
            for value in values:
                if isinstance(value, float) and not (math.isfinite(value) and abs(value) <= FLOAT32_MAX):
                    raise ValueError(
                        f"--{target.split('.')[-1].replace('_', '-')}-grid: {value!r} is not a finite float32 number."
                    )

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))


def stable_hash(obj: Any, length: int = 16) -> str:
    """A short hash of a JSON-able description (dataclasses allowed), stable across runs and machines."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = dataclasses.asdict(obj)
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def method_variants(config: RunConfig, method_names: tuple[str, ...], task_defaults: dict) -> list:
    """``[(method name, settings)]``: every method with its defaults and overrides, times the grids that apply."""
    variants = []
    for name in method_names:
        method = get_method(name)
        known = {f.name for f in method.fields()}
        values = {}
        for layer in (task_defaults, config.overrides):  # "*" applies where the method has the field
            values |= {k: v for k, v in layer.get(ALL_METHODS, {}).items() if k in known}
            values |= layer.get(name, {})
        base = method.configure(values)
        points = [base]
        for field in method.grid_fields():
            grid = config.grids.get(f"{name}.{field}", config.grids.get(field))
            if grid:
                points = [dataclasses.replace(p, **{field: v}) for p in points for v in grid]
        variants += [(name, p) for p in points]
    return variants


def parse_assignment(text: str) -> tuple[str, str, Any]:
    """``'ROSU.rho=0.2'`` -> ('ROSU', 'rho', 0.2); ``'train.epochs=3'`` -> ('train', 'epochs', 3).

    The value is read as JSON when it parses (numbers, true/false, null, lists), else kept as a string.
    """
    target, sep, value = text.partition("=")
    if not sep or "." not in target:
        raise ValueError(f"--set {text!r}: expected TARGET.NAME=VALUE, e.g. ROSU.rho=0.2 or train.epochs=3.")
    owner, _, name = target.rpartition(".")
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return owner, name, parsed


def settings_dict(settings: OptimizerSettings) -> dict:
    return dataclasses.asdict(settings)
