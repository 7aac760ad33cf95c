"""Shared pieces of the step benchmarks (step_cost.py, memory.py, scaling.py): models, methods, batches, timing.

Methods compared (all with the classifier cross-entropy losses of ``rosu_jax.steps.classifier`` and the SGD
optimizer of ``rosu_jax.steps.registry.make_optimizer``):

  FT           fine-tune on the retain batch                                  1 gradient   (registry 'FT')
  UAM          published min-max step, δ = ρ g_f/‖g_f‖, λ = 0                  2 gradients  (``make_uam_step``)
  ROSU         retain-orthogonal δ, fresh g_r at θ                             3 gradients  (registry 'ROSU')
  ROSU-lagged  g_r = previous step's surrogate gradient                        2 gradients  (``lagged=True``)
  ROSU-noproj  ROSU's step with the projection off (same 3 gradients, same λ)  3 gradients  (registry 'UAM+λ')

The registry's 'UAM' entry takes g_r at θ as well (3 gradients) so that it can report the exact coupling κ;
the benchmarks use ``make_uam_step`` (2 gradients, as published) as the UAM baseline.

g_f and g_r do NOT share a forward pass: they are two ``value_and_grad`` calls on two different batches (the
forget batch in eval mode, the retain batch in train mode). With BatchNorm in train mode a shared pass over the
concatenated batch would normalise retain examples with forget examples' statistics and change the maths.

Timing is interleaved: every method's executable is compiled first (compile time recorded apart), warmed up,
then the repeats go round-robin over the methods (repeat 1 of every method, repeat 2 of every method, ...), so
slow drifts in machine load hit all methods alike and the ratios are taken within one run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import common
import jax
import jax.numpy as jnp
import numpy as np

from rosu_jax.core.perturbation import retain_orthogonal_perturbation
from rosu_jax.models import build_model, count_params
from rosu_jax.steps.classifier import cross_entropy, forget_loss_fn, retain_loss_fn
from rosu_jax.steps.minmax import make_rosu_step, make_uam_step
from rosu_jax.steps.registry import MethodConfig, get_method, make_optimizer

ALL_METHODS = ("FT", "UAM", "ROSU", "ROSU-lagged", "ROSU-noproj")
GRADIENTS = {"FT": 1, "UAM": 2, "ROSU": 3, "ROSU-lagged": 2, "ROSU-noproj": 3}
SHARED_FORWARD = False  # g_f and g_r are separate value_and_grad calls (see the module docstring)
TOTAL_STEPS = 1000
CONFIG = MethodConfig()


def loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover - not on every platform
        return None


def record_base(benchmark: str, case: str, env: dict[str, Any]) -> dict[str, Any]:
    return {"benchmark": benchmark, "case": case, "loadavg_1m": loadavg(), **env}


# --------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelCase:
    """A model and input shape: ``name`` is the case prefix ('small_cnn/digits', 'resnet18/cifar', ...)."""

    name: str
    model: str  # 'small_cnn' | 'resnet18' | 'mlp'
    image_shape: tuple[int, int, int]
    batch_size: int
    num_classes: int = 10
    model_kwargs: tuple[tuple[str, Any], ...] = ()


def mlp_apply_fn(params, model_state, images, *, train: bool):
    """A ReLU MLP on flattened images: the pure ``apply_fn`` contract, no model state."""
    del train
    x = images.reshape(images.shape[0], -1)
    n = len(params)
    for i in range(n):
        layer = params[f"dense{i}"]
        x = x @ layer["kernel"] + layer["bias"]
        if i < n - 1:
            x = jax.nn.relu(x)
    return x.astype(jnp.float32), model_state


def build_mlp(d_in: int, hidden: int, depth: int, num_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    dims = [d_in] + [hidden] * depth + [num_classes]
    params = {}
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        params[f"dense{i}"] = {
            "kernel": jnp.asarray(rng.normal(0.0, math.sqrt(2.0 / a), (a, b)).astype(np.float32)),
            "bias": jnp.zeros((b,), jnp.float32),
        }
    return mlp_apply_fn, params, {}


def build(case: ModelCase):
    """(apply_fn, params, model_state) of a case."""
    kwargs = dict(case.model_kwargs)
    if case.model == "mlp":
        d_in = math.prod(case.image_shape)
        return build_mlp(d_in, kwargs["hidden"], kwargs.get("depth", 2), case.num_classes)
    return build_model(case.model, case.num_classes, case.image_shape[-1], seed=0, **kwargs)


def make_batches(case: ModelCase, seed: int = 0) -> tuple[dict, dict]:
    """A forget batch (one class, as in class-wise forgetting) and a retain batch, normal-noise images."""
    rng = np.random.default_rng(seed)
    shape = (case.batch_size, *case.image_shape)
    forget = {
        "image": jnp.asarray(rng.normal(size=shape).astype(np.float32)),
        "label": jnp.zeros((case.batch_size,), jnp.int32),
    }
    retain = {
        "image": jnp.asarray(rng.normal(size=shape).astype(np.float32)),
        "label": jnp.asarray(rng.integers(1, case.num_classes, size=case.batch_size).astype(np.int32)),
    }
    return forget, retain


# --------------------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------------------


def make_stepper(method: str, apply_fn, num_classes: int):
    """The un-jitted ``Stepper`` of one of ``ALL_METHODS`` (the caller compiles it)."""
    cfg = CONFIG
    if method == "FT":
        return get_method("FT").factory(apply_fn, num_classes, cfg, TOTAL_STEPS, jit=False)
    if method == "ROSU":
        return get_method("ROSU").factory(apply_fn, num_classes, cfg, TOTAL_STEPS, jit=False)
    if method == "ROSU-noproj":
        return get_method("UAM+λ").factory(apply_fn, num_classes, cfg, TOTAL_STEPS, jit=False)
    opt = make_optimizer(cfg, TOTAL_STEPS)
    f_loss, r_loss = forget_loss_fn(apply_fn), retain_loss_fn(apply_fn)
    if method == "UAM":
        return make_uam_step(f_loss, r_loss, opt, rho=cfg.rho, jit=False)
    if method == "ROSU-lagged":
        return make_rosu_step(
            f_loss, r_loss, opt, rho=cfg.rho, amplification=cfg.amplification, project=True, lagged=True, jit=False
        )
    raise ValueError(f"unknown benchmark method {method!r}; known: {ALL_METHODS}")


def projection_fn(forget_grads, retain_grads):
    return retain_orthogonal_perturbation(forget_grads, retain_grads, CONFIG.rho)


def gradient_trees(params, seed: int = 1):
    """Two random pytrees shaped like ``params`` (stand-ins for g_f and g_r)."""
    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    trees = []
    for _ in range(2):
        trees.append(
            jax.tree.unflatten(treedef, [jnp.asarray(rng.normal(size=np.shape(x)).astype(np.float32)) for x in leaves])
        )
    return trees


def true_gradients(apply_fn, params, model_state, forget, retain):
    """The real g_f and g_r of the model at ``params`` (so the projection sees realistic values)."""

    def f_obj(p):
        logits, _ = apply_fn(p, model_state, forget["image"], train=False)
        return cross_entropy(logits, forget["label"])

    def r_obj(p):
        logits, _ = apply_fn(p, model_state, retain["image"], train=True)
        return cross_entropy(logits, retain["label"])

    return jax.jit(jax.grad(f_obj))(params), jax.jit(jax.grad(r_obj))(params)


# --------------------------------------------------------------------------------------------------------
# Compilation, memory analysis, interleaved timing
# --------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    """One thing to time: an executable and its arguments."""

    name: str
    fn: Callable
    args: tuple
    compiled: Any = None
    lower_s: float | None = None
    compile_s: float | None = None
    times: list[float] = dataclasses.field(default_factory=list)


QUICK_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}  # --quick: faster compiles, meaningless times


def compile_target(target: Target, compiler_options: dict | None = None) -> Target:
    """Lower and compile ``jax.jit(target.fn)`` at its arguments (timed apart, as ``common.compile_fn``)."""
    if not compiler_options:
        target.compiled, target.lower_s, target.compile_s = common.compile_fn(target.fn, *target.args)
        return target
    t0 = time.perf_counter()
    lowered = jax.jit(target.fn).lower(*target.args)
    t1 = time.perf_counter()
    target.compiled = lowered.compile(compiler_options)
    target.lower_s, target.compile_s = t1 - t0, time.perf_counter() - t1
    return target


def memory_of(compiled) -> dict[str, int | None]:
    """XLA's memory analysis of a compiled executable (bytes); None fields where the backend gives none."""
    keys = ("temp", "argument", "output", "alias", "generated_code")
    try:
        ma = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - some backends do not implement it
        ma = None
    out: dict[str, int | None] = {}
    for k in keys:
        v = getattr(ma, f"{k}_size_in_bytes", None) if ma is not None else None
        out[f"{k}_bytes"] = int(v) if v is not None else None
    if all(out[f"{k}_bytes"] is not None for k in ("temp", "argument", "output", "alias")):
        # Live at the peak: inputs + outputs + scratch; aliased outputs reuse input buffers.
        out["peak_bytes"] = out["temp_bytes"] + out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"]
    else:
        out["peak_bytes"] = None
    return out


def time_interleaved(targets: Sequence[Target], *, warmup: int, repeats: int, min_time: float = 0.0,
                     max_repeats: int = 200) -> None:
    """Warm up each target, then time them round-robin until each has ``repeats`` calls (and, if ``min_time``
    is set, until the slowest has spent that long). Appends to ``target.times``."""
    for t in targets:
        for _ in range(warmup):
            jax.block_until_ready(t.compiled(*t.args))
    n = 0
    while n < repeats or (min_time and max(sum(t.times) for t in targets) < min_time and n < max_repeats):
        for t in targets:
            t0 = time.perf_counter()
            out = t.compiled(*t.args)
            jax.block_until_ready(out)
            t.times.append(time.perf_counter() - t0)
            del out
        n += 1


def timing_fields(t: Target, warmup: int) -> dict[str, Any]:
    out = common.summarize(t.times)
    out.update(lower_s=t.lower_s, compile_s=t.compile_s, warmup=warmup, times_s=t.times)
    return out


def step_targets(case: ModelCase, methods: Sequence[str]):
    """(targets for every method's step, the projection target, n_params, param_bytes)."""
    apply_fn, params, model_state = build(case)
    forget, retain = make_batches(case)
    key = jax.random.key(0)
    targets = []
    for m in methods:
        stepper = make_stepper(m, apply_fn, case.num_classes)
        state = stepper.init(params, model_state)
        if m == "ROSU-lagged":  # a realistic (non-zero) lagged g̃ in the state
            g_f, g_r = true_gradients(apply_fn, params, model_state, forget, retain)
            state = state._replace(opt_state=state.opt_state._replace(lagged_retain_grads=g_r))
        targets.append(Target(m, stepper.step, (state, forget, retain, key)))
    g_f, g_r = true_gradients(apply_fn, params, model_state, forget, retain)
    proj = Target("projection", projection_fn, (g_f, g_r))
    n_params = count_params(params)
    param_bytes = sum(int(np.prod(np.shape(x))) * np.dtype(x.dtype).itemsize for x in jax.tree.leaves(params))
    return targets, proj, n_params, param_bytes


def met(value: float | None, threshold: float) -> bool | None:
    return None if value is None else bool(value <= threshold)
