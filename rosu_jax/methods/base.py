"""What a method is: one declaration with its hyperparameters, how it builds its step, and what it needs.

A method is a ``Method``: a name (its row label), a frozen dataclass of hyperparameters with defaults (every
field's metadata says whether a grid may vary it and its symbol in variant labels), the loss terms it needs from a
task (``rosu_jax.tasks.base``), a ``build(terms, settings, total_steps) -> Stepper``, optionally ``extras`` (what
the step keeps besides the weights: SCRUB's teacher, SalUn's mask) and how it reports the coupling κ.
The CLI flags (``--lr-grid``, ``--rho``...), variant labels and report columns are all derived from these.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rosu_jax.core.types import PyTree
from rosu_jax.steps.state import LossFn, Stepper
from rosu_jax.transforms.optimizers import OPTIMIZERS, make_optimizer
from rosu_jax.transforms.schedules import SCHEDULES

FLOAT32_MAX = 3.4028234663852886e38


def hyper(
    default: Any,
    meaning: str,
    *,
    symbol: str | None = None,
    grid: bool = False,
    choices=None,
    low=None,
    low_open: bool = False,
) -> Any:
    """A hyperparameter field: default, one-line meaning, table symbol, whether a grid may vary it, allowed
    choices (strings) or lower bound (``low``; ``low_open`` excludes it) for numbers, which must be finite."""
    return dataclasses.field(
        default=default,
        metadata={
            "meaning": meaning,
            "symbol": symbol,
            "grid": grid,
            "choices": choices,
            "low": low,
            "low_open": low_open,
        },
    )


@dataclasses.dataclass(frozen=True)
class OptimizerSettings:
    """The optimizer every method steps with (its own hyperparameters come on top of these)."""

    lr: float = hyper(0.01, "learning rate", symbol="lr", grid=True, low=0.0, low_open=True)
    optimizer: str = hyper("sgd", "optimizer", choices=OPTIMIZERS)
    momentum: float = hyper(0.9, "SGD momentum", low=0.0)
    weight_decay: float = hyper(5e-4, "weight decay (SGD: added to the gradient; AdamW: decoupled)", low=0.0)
    schedule: str = hyper("constant", "learning-rate schedule", choices=SCHEDULES)
    warmup_fraction: float = hyper(0.0, "fraction of the steps spent in a linear warm-up", low=0.0)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            check_value(field, getattr(self, field.name))

    def make_optimizer(self, total_steps: int):
        warmup = int(round(self.warmup_fraction * total_steps))
        return make_optimizer(
            self.optimizer,
            self.lr,
            total_steps,
            schedule=self.schedule,
            momentum=self.momentum,
            weight_decay=self.weight_decay,
            warmup_steps=warmup,
        )


def check_value(field: dataclasses.Field, value: Any) -> None:
    """Raise ``ValueError`` for a hyperparameter value its declaration does not allow (non-finite numbers too)."""
    meta = field.metadata
    if meta.get("choices") is not None:
        if value not in meta["choices"]:
            raise ValueError(f"{field.name} must be one of {', '.join(map(str, meta['choices']))}, got {value!r}.")
        return
    if field.type in ("bool", bool):
        if not isinstance(value, bool):
            raise ValueError(f"{field.name} must be true or false, got {value!r}.")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{field.name} must be a number, got {value!r}.")
    if not math.isfinite(value) or abs(value) > FLOAT32_MAX:  # computed in float32: 1e300 would be inf
        raise ValueError(f"{field.name} must be a finite number (within float32's range), got {value!r}.")
    low = meta.get("low")
    if low is not None and (value < low or (meta.get("low_open") and value == low)):
        raise ValueError(f"{field.name} must be {'>' if meta.get('low_open') else '>='} {low}, got {value!r}.")


@dataclasses.dataclass
class ExtrasContext:
    """What a method's ``extras`` may use: the task's loss terms, the weights it starts from, one ordered pass over
    the forget set, its size, the run's seed and the task's static ``info``. Extras are traced once abstractly (for
    their shapes, to compile the step ahead of time), so they must be computed with JAX operations, not by reading
    values on the host."""

    terms: Mapping[str, Callable]
    params: PyTree
    model_state: PyTree
    forget_batches: Callable[[], Iterable]
    num_forget: int
    seed: int = 0
    info: Mapping = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Method:
    """One unlearning method, declared once (see the module docstring).

    coupling: how its rows report κ = cos(g_f, g_r): 'exact' (the step computes g_r at θ), 'probe' (measured by a
    separate function on a sample of steps, outside the timed step), or 'none'.
    """

    name: str
    summary: str
    settings: type[OptimizerSettings]
    build: Callable[[Mapping[str, LossFn], Any, int], Stepper]
    requires: frozenset[str] = frozenset({"forget", "retain"})
    extras: Callable[[ExtrasContext, Any], PyTree] | None = None
    coupling: str = "none"

    def fields(self) -> tuple[dataclasses.Field, ...]:
        return dataclasses.fields(self.settings)

    def grid_fields(self) -> tuple[str, ...]:
        """The hyperparameters a grid may vary, in declaration order."""
        return tuple(f.name for f in self.fields() if f.metadata.get("grid"))

    def configure(self, values: Mapping[str, Any] | None = None) -> OptimizerSettings:
        """The method's settings with ``values`` applied; an unknown name raises, listing the known ones."""
        values = dict(values or {})
        known = {f.name for f in self.fields()}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"{self.name} has no hyperparameter {unknown[0]!r}; its hyperparameters are {', '.join(sorted(known))}."
            )
        try:
            return self.settings(**values)
        except ValueError as err:
            raise ValueError(f"{self.name}.{err}") from None

    def label(self, settings: OptimizerSettings) -> str:
        """The variant label of a row: its grid hyperparameters, e.g. 'lr=0.1 ρ=0.5 λ=0.05'."""
        by_name = {f.name: f for f in self.fields()}
        return " ".join(
            f"{by_name[n].metadata.get('symbol') or n}={getattr(settings, n):g}" for n in self.grid_fields()
        )

    def key(self, settings: OptimizerSettings) -> dict:
        """Every hyperparameter value (keys cached rows)."""
        return {"method": self.name, **dataclasses.asdict(settings)}
