"""The min-max methods, declared once each: UAM as published, UAM with ROSU's amplification, and ROSU.

UAM (Unlearning-Aware Minimization, NeurIPS 2025) perturbs along g_f and steps with the retain gradient at the
perturbed point: two gradients per step. ROSU (arXiv 2605.05871) projects the perturbation to be retain-neutral
and moves along it by λ: three gradients (g_f, g_r at θ; g̃ at θ + δ), or two in lagged mode.
UAM+λ is ROSU's step with the projection off (same three gradients), so ROSU − UAM+λ is what the projection buys.
"""

from __future__ import annotations

import dataclasses

from rosu_jax.methods.base import Method, OptimizerSettings, hyper
from rosu_jax.steps import make_rosu_step, make_uam_step
from rosu_jax.transforms.rosu import DEFAULT_AMPLIFICATION, DEFAULT_RHO
from rosu_jax.transforms.schedules import make_schedule


@dataclasses.dataclass(frozen=True)
class MinMaxSettings(OptimizerSettings):
    rho: float = hyper(DEFAULT_RHO, "ρ: radius of the perturbation δ", symbol="ρ", grid=True, low=0.0, low_open=True)
    rho_schedule: str = hyper(
        "constant", "ρ schedule ('cosine': to 0 over the run, as UAM offers)", choices=("constant", "cosine")
    )
    measure_surrogate: bool = hyper(False, "also measure L_r(θ+δ) − L_r(θ) every step (two extra forward passes)")

    def rho_value(self, total_steps: int):
        return make_schedule(self.rho_schedule, self.rho, total_steps)


@dataclasses.dataclass(frozen=True)
class AmplifiedSettings(MinMaxSettings):
    amplification: float = hyper(
        DEFAULT_AMPLIFICATION, "λ: step along the perturbation δ", symbol="λ", grid=True, low=0.0
    )


@dataclasses.dataclass(frozen=True)
class RosuSettings(AmplifiedSettings):
    lagged: bool = hyper(False, "reuse the previous surrogate gradient as g_r (two gradients per step)")


def _uam(terms, s: MinMaxSettings, total_steps):
    return make_uam_step(
        terms["forget"],
        terms["retain"],
        s.make_optimizer(total_steps),
        rho=s.rho_value(total_steps),
        measure_surrogate=s.measure_surrogate,
    )


def minmax_step(
    forget,
    retain,
    s: MinMaxSettings,
    total_steps: int,
    *,
    project: bool = True,
    lagged: bool | None = None,
    surrogate_objective=None,
):
    """``make_rosu_step`` from a min-max method's settings (ρ and its schedule, λ if the settings have one, 0
    otherwise, ``lagged`` if not given, the surrogate measurement): one place for every min-max declaration."""
    return make_rosu_step(
        forget,
        retain,
        s.make_optimizer(total_steps),
        rho=s.rho_value(total_steps),
        amplification=getattr(s, "amplification", 0.0),
        project=project,
        lagged=getattr(s, "lagged", False) if lagged is None else lagged,
        surrogate_objective=surrogate_objective,
        measure_surrogate=s.measure_surrogate,
    )


def _rosu(project: bool):
    return lambda terms, s, total_steps: minmax_step(terms["forget"], terms["retain"], s, total_steps, project=project)


DECLARED = (
    Method(
        "UAM",
        "min-max step as published: δ = ρ g_f/‖g_f‖, retain gradient at θ+δ (2 gradients)",
        MinMaxSettings,
        _uam,
        coupling="probe",
    ),
    Method(
        "UAM+λ",
        "ROSU's step with the projection off: δ = ρ g_f/‖g_f‖, plus λ·δ (isolates the projection)",
        AmplifiedSettings,
        _rosu(project=False),
        coupling="exact",
    ),
    Method(
        "ROSU",
        "retain-orthogonal perturbation, transported retain step, amplification λ along δ",
        RosuSettings,
        _rosu(project=True),
        coupling="exact",
    ),
)
