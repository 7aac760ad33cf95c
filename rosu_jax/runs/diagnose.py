"""Will ROSU help on this model? The coupling of the forget and retain gradients, measured before any unlearning.

On a few (forget, retain) batch pairs of the task, at the original weights, it measures κ = cos(g_f, g_r) over all
trainable parameters and per layer, the norms, and what the geometry of arXiv 2605.05871 predicts: the first-order
retain change of the unconstrained min-max perturbation (UAM) is ρ‖g_r‖κ and ROSU's is 0, and the two perturbations
differ by ‖δ_ROSU − δ_UAM‖ = ρ·√(2 − 2√(1 − κ²)). Near κ = 0 the two are nearly the same step; the larger κ, the
more retain loss UAM's perturbation costs that ROSU's avoids.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import jax
import numpy as np

from rosu_jax.core import coupling, tree_norm
from rosu_jax.runs.cache import default_work_dir
from rosu_jax.runs.config import RunConfig
from rosu_jax.runs.lock import WorkDirLock
from rosu_jax.runs.pipeline import Run, _train
from rosu_jax.tasks import make_task

# |κ| below this: "near-orthogonal" (ROSU and UAM nearly coincide: ‖δ_ROSU − δ_UAM‖ < 0.1 ρ).
NEAR_ORTHOGONAL = 0.1


def layer_of(path: tuple) -> str:
    """The layer a parameter belongs to: its first name, or ``layers.<i>`` for a decoder's layers."""
    keys = [str(getattr(k, "key", getattr(k, "idx", k))) for k in path]
    return ".".join(keys[:2]) if keys[0] == "layers" and len(keys) > 1 else keys[0]


def _grouped(tree) -> dict[str, list]:
    groups: dict[str, list] = defaultdict(list)
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        groups[layer_of(path)].append(leaf)
    return groups


def diagnose(
    config: RunConfig,
    *,
    batches: int = 5,
    rho: float = 0.5,
    work_dir: str | Path | None = None,
    progress: bool = True,
    log: Callable[[str], None] = lambda s: None,
) -> dict:
    """Per scenario: the coupling κ (mean, std, per batch, per layer), ‖g_f‖, ‖g_r‖ and the predictions (see the
    module docstring), at the original model of ``config`` (trained, or restored from the work dir)."""
    task = make_task(config.task)
    task.validate()
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir()
    seed = config.seeds[0]
    report = {"task": task.name, "seed": seed, "rho": rho, "batches": batches, "scenarios": {}}
    with WorkDirLock(work_dir):
        data = task.load()
        run = Run(config, task, [], work_dir, None, progress, log, False)
        original = _train(run, "original", data.fingerprint, None, seed, task.training_data(data, seed))
        params, model_state = task.unlearning_start(original.params, original.model_state)
        terms = task.loss_terms()
        grads = jax.jit(
            lambda p, f, r: (
                jax.grad(lambda q: terms["forget"](q, model_state, f, None)[0])(p),
                jax.grad(lambda q: terms["retain"](q, model_state, r, None)[0])(p),
            )
        )
        for scenario in task.scenarios():
            setting = task.setting(data, scenario, seed)
            pairs = task.unlearning_data(setting, seed).pairs(1)
            kappas, per_layer, norms = [], defaultdict(list), []
            for _, (forget_batch, retain_batch) in zip(range(batches), pairs, strict=False):
                g_f, g_r = grads(params, forget_batch, retain_batch)
                kappas.append(float(coupling(g_f, g_r)))
                norms.append((float(tree_norm(g_f)), float(tree_norm(g_r))))
                layers_f, layers_r = _grouped(g_f), _grouped(g_r)
                for layer in layers_f:
                    per_layer[layer].append(float(coupling(layers_f[layer], layers_r[layer])))
            report["scenarios"][scenario] = _summary(kappas, norms, per_layer, rho)
    return report


def _summary(kappas: list[float], norms: list[tuple[float, float]], per_layer: dict, rho: float) -> dict:
    kappa = float(np.mean(kappas))
    norm_f, norm_r = (float(np.mean(v)) for v in zip(*norms, strict=True))
    distance = rho * math.sqrt(max(2.0 - 2.0 * math.sqrt(max(1.0 - kappa**2, 0.0)), 0.0))
    return {
        "coupling": kappa,
        "coupling_std": float(np.std(kappas, ddof=1)) if len(kappas) > 1 else 0.0,
        "coupling_per_batch": kappas,
        "forget_norm": norm_f,
        "retain_norm": norm_r,
        "uam_first_order_retain_change": rho * norm_r * kappa,
        "rosu_first_order_retain_change": 0.0,
        "rosu_uam_distance": distance,
        "per_layer": {layer: float(np.mean(values)) for layer, values in per_layer.items()},
        "verdict": verdict(kappa, rho),
    }


def verdict(kappa: float, rho: float) -> str:
    """What the mean coupling predicts, in a sentence."""
    if abs(kappa) < NEAR_ORTHOGONAL:
        return (
            f"near-orthogonal (κ = {kappa:+.2f}): ROSU's and UAM's perturbations nearly coincide "
            f"(they differ by {rho * math.sqrt(2 - 2 * math.sqrt(1 - kappa**2)):.3f} at ρ = {rho:g}); expect "
            "similar results"
        )
    if kappa > 0:
        return (
            f"positive coupling (κ = {kappa:+.2f}): UAM's perturbation raises the retain loss to first order, "
            "ROSU's does not; this is where ROSU should keep more retain performance"
        )
    return (
        f"negative coupling (κ = {kappa:+.2f}): UAM's perturbation lowers the retain loss to first order; ROSU "
        "gives that up for a retain-neutral direction, so UAM may do as well or better here"
    )


def markdown(report: dict) -> str:
    """The diagnosis as Markdown: one line per scenario, then the per-layer couplings."""
    lines = [
        f"# Coupling diagnosis ({report['task']}, seed {report['seed']}, {report['batches']} batch pairs, "
        f"ρ = {report['rho']:g})",
        "",
        "| scenario | κ mean ± std | ‖g_f‖ | ‖g_r‖ | UAM first-order retain change | ROSU's | ‖δ_ROSU − δ_UAM‖ |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario, s in report["scenarios"].items():
        lines.append(
            f"| {scenario} | {s['coupling']:+.3f} ± {s['coupling_std']:.3f} | {s['forget_norm']:.3g} | "
            f"{s['retain_norm']:.3g} | {s['uam_first_order_retain_change']:+.3g} | 0 | "
            f"{s['rosu_uam_distance']:.3g} |"
        )
    for scenario, s in report["scenarios"].items():
        lines += ["", f"**{scenario}**: {s['verdict']}.", "", "| layer | κ |", "|---|---|"]
        lines += [f"| {layer} | {k:+.3f} |" for layer, k in s["per_layer"].items()]
    return "\n".join(lines) + "\n"
