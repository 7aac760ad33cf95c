"""Run one method from the original weights over a task's (forget, retain) batch pairs, and time it.

The step is compiled ahead of time (``compile_s``, reported apart); ``seconds`` is the wall time of the run with
the compiled step: the method's own preparation (SalUn's saliency) and every step. Diagnostics that a method's
step does not compute (the coupling κ of the published two-gradient UAM) are measured on a sample of steps by a
separate function, outside the timed time. A run whose loss or weights become non-finite stops early and is
marked ``diverged``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh
from tqdm.auto import tqdm

from rosu_jax.core.types import PyTree
from rosu_jax.methods import ExtrasContext, Method
from rosu_jax.methods.base import OptimizerSettings
from rosu_jax.parallel.distributed import batch_placer
from rosu_jax.parallel.mesh import shard_state, sharded_step, state_sharding
from rosu_jax.steps import make_coupling_probe
from rosu_jax.steps.state import Stepper
from rosu_jax.tasks.base import UnlearningData

# Per-step metrics kept in the history (when a method reports them).
HISTORY_KEYS = (
    "coupling",
    "forget_norm",
    "retain_norm",
    "neutral_fraction",
    "predicted_retain_change_minmax",
    "predicted_retain_change",
    "surrogate_retain_increase",
    "forget_loss",
    "retain_loss",
)
# How many steps a coupling probe samples per run (evenly spaced, the first step included).
PROBE_SAMPLES = 20
# How often (in steps) a run checks that its weights are still finite (each check waits for the device).
FINITE_CHECK_EVERY = 25


@dataclasses.dataclass
class UnlearnResult:
    params: PyTree
    model_state: PyTree
    seconds: float
    compile_s: float
    steps: int
    gradient_evaluations: int
    history: dict[str, list[float]]
    diverged_at: int | None  # the step after which the weights were found non-finite, or None
    coupling_source: str  # 'exact (every step)', 'probe (N steps, outside the timed step)' or 'none'


@dataclasses.dataclass
class Plan:
    """What one unlearning run compiles and steps: the stepper, its abstract state and example batches."""

    stepper: Stepper
    template: PyTree
    example: tuple
    mesh: Mesh | None
    total_steps: int


class StepperCache:
    """Steppers built once per (method, settings, steps) and their steps compiled once per shape, ahead of time:
    ``prefetch`` compiles in a background thread (XLA compiles outside the GIL, so on two cores the compile of later
    methods overlaps the training and the runs of earlier ones), ``compiled`` waits for it or compiles now."""

    def __init__(self, workers: int = 1):
        self._steppers: dict[tuple, Stepper] = {}
        self._compiled: dict[tuple, Future] = {}
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="rosu-compile")

    def stepper(self, method: Method, settings: OptimizerSettings, terms, total_steps: int) -> Stepper:
        key = (method.name, settings, id(terms["retain"]), total_steps)
        if key not in self._steppers:
            self._steppers[key] = method.build(terms, settings, total_steps)
        return self._steppers[key]

    def plan(self, method, settings, terms, params, model_state, data: UnlearningData, mesh) -> Plan:
        total_steps = data.steps_per_epoch * data.epochs
        stepper = self.stepper(method, settings, terms, total_steps)
        template = abstract_state(stepper, method, settings, terms, params, model_state, data, mesh)
        place = (lambda b: b) if mesh is None else batch_placer(mesh)
        return Plan(stepper, template, tuple(place(b) for b in data.example), mesh, total_steps)

    def _submit(self, plan: Plan) -> Future:
        args = (plan.template, *plan.example)
        signature = tuple(
            (np.shape(x), str(x.dtype), bool(getattr(x, "weak_type", False))) for x in jax.tree.leaves(args)
        )
        key = (id(plan.stepper), plan.mesh, jax.tree.structure(args), signature)
        if key not in self._compiled:
            self._compiled[key] = self._pool.submit(_compile, plan)
        return self._compiled[key]

    def prefetch(self, *plan_args) -> None:
        """Start compiling the step of ``plan(*plan_args)`` in the background."""
        self._submit(self.plan(*plan_args))

    def compiled(self, plan: Plan) -> tuple[Callable, float]:
        """(the compiled step, its compile seconds), waiting for a prefetched compile if one is running."""
        return self._submit(plan).result()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _compile(plan: Plan) -> tuple[Callable, float]:
    """Compile the step with the state donated: the new state reuses the old one's buffers, so what passes through
    unchanged (frozen weights in the model state, a LoRA base) is never copied step after step."""
    started = time.perf_counter()
    if plan.mesh is None:
        jitted = jax.jit(plan.stepper.step, donate_argnums=(0,))
    else:
        jitted = sharded_step(plan.stepper, plan.mesh, plan.template, donate_state=True).jitted
    compiled = jitted.lower(plan.template, *plan.example, jax.random.key(0)).compile()
    return compiled, time.perf_counter() - started


def abstract_state(stepper: Stepper, method: Method, settings, terms, params, model_state, data, mesh):
    """The ``UnlearnState`` the run will step, as ``ShapeDtypeStruct``s (with the mesh's shardings): what the step
    is compiled for before any extras (SalUn's saliency) are computed (shapes do not depend on the seed)."""
    context = ExtrasContext(terms, params, model_state, data.forget_batches, data.num_forget, 0, data.info)
    extras = None if method.extras is None else jax.eval_shape(lambda: method.extras(context, settings))
    abstract = jax.eval_shape(lambda e: stepper.init(params, model_state, e), extras)
    if mesh is None:
        return abstract
    return jax.tree.map(
        lambda s, sharding: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding, weak_type=s.weak_type),
        abstract,
        state_sharding(abstract, mesh),
    )


def run_unlearning(
    method: Method,
    settings: OptimizerSettings,
    terms,
    params: PyTree,
    model_state: PyTree,
    data: UnlearningData,
    *,
    seed: int,
    steppers: StepperCache | None = None,
    progress: bool = True,
    mesh: Mesh | None = None,
) -> UnlearnResult:
    """Unlearn with ``method`` from (params, model_state) for ``data.epochs`` passes; return the weights and record.

    With a ``mesh`` the state is placed by ``rosu_jax.parallel.shard_state`` (params replicated or FSDP-sharded),
    batches are split over the mesh, and the step keeps that layout.
    """
    steppers = steppers or StepperCache()
    plan = steppers.plan(method, settings, terms, params, model_state, data, mesh)
    stepper, total_steps = plan.stepper, plan.total_steps
    place = (lambda b: b) if mesh is None else batch_placer(mesh)
    base_key = jax.random.key(seed)
    # Compiled first (timed apart, perhaps already in the background): the state's shapes do not depend on the
    # extras' values.
    step, compile_s = steppers.compiled(plan)

    probe = None
    if method.coupling == "probe":
        probe = make_coupling_probe(terms["forget"], terms["retain"])
        probe_at = set(np.linspace(0, total_steps - 1, min(PROBE_SAMPLES, total_steps)).astype(int).tolist())
    untimed = 0.0
    started = time.perf_counter()
    extras = (
        None
        if method.extras is None
        else method.extras(
            ExtrasContext(terms, params, model_state, data.forget_batches, data.num_forget, seed, data.info), settings
        )
    )
    # The step donates its state: start from a copy (the original weights, which the extras may hold too, serve the
    # next runs).
    state = jax.tree.map(jnp.copy, stepper.init(params, model_state, extras))
    if mesh is not None:
        state = shard_state(state, mesh)
    records: list[dict] = []
    probes: dict[str, list[float]] = {"probe_step": [], "coupling": []}
    diverged_at = None
    bar = tqdm(total=total_steps, desc=method.name, disable=not progress, leave=False)
    try:
        for i, (forget_batch, retain_batch) in enumerate(data.pairs(data.epochs)):
            key = jax.random.fold_in(base_key, i)
            forget_batch, retain_batch = place(forget_batch), place(retain_batch)
            if probe is not None and i in probe_at:
                paused = time.perf_counter()
                result = probe(jax.block_until_ready(state), forget_batch, retain_batch, key)
                probes["probe_step"].append(i)
                probes["coupling"].append(float(result["coupling"]))
                untimed += time.perf_counter() - paused
            state, metrics = step(state, forget_batch, retain_batch, key)
            records.append({k: metrics[k] for k in HISTORY_KEYS if k in metrics} | {"finite": metrics["all_finite"]})
            bar.update(1)
            if (i + 1) % FINITE_CHECK_EVERY == 0 and not bool(metrics["all_finite"]):
                diverged_at = i + 1
                break
        state = jax.block_until_ready(state)
    finally:
        bar.close()
    seconds = time.perf_counter() - started - untimed
    history = {k: [float(r[k]) for r in records] for k in (records[0] if records else {}) if k != "finite"}
    if diverged_at is None and records and not all(bool(r["finite"]) for r in records[-FINITE_CHECK_EVERY:]):
        diverged_at = next(i + 1 for i, r in enumerate(records) if not bool(r["finite"]))
    if probe is not None:
        history |= probes
        source = f"probe ({len(probes['coupling'])} steps, outside the timed step)"
    else:
        source = "exact (every step)" if method.coupling == "exact" else "none"
    return UnlearnResult(
        state.params,
        state.model_state,
        seconds,
        compile_s,
        len(records),
        stepper.gradient_evaluations,
        history,
        diverged_at,
        source,
    )
