"""Shared fixtures of the parallel tests: a tiny small CNN, a few digits batches (class-wise forgetting), and
cached single-device / sharded unlearning trajectories (compiling a step is what costs time on CPU)."""

import jax
import numpy as np
import pytest

from rosu_jax.methods import get_method
from rosu_jax.models import build_model
from rosu_jax.parallel import make_mesh, shard_batch, shard_state, sharded_step, state_sharding
from rosu_jax.tasks.vision.data import cycle_batches, dataset_stats, iterate_batches, load_digits, make_split
from rosu_jax.tasks.vision.losses import loss_terms

NUM_STEPS = 4
BATCH_SIZE = 32
MIN_SIZE = 256  # small enough that the conv1 / fc1 / fc2 kernels of the tiny CNN are split over 'fsdp'
LR = 0.05
# Compiling the steps dominates these tests on CPU; XLA's backend optimisation level 0 roughly halves it. The
# single-device reference and the sharded steps are compiled with the same options.
JIT_OPTIONS = {"compiler_options": {"xla_backend_optimization_level": 0}}


@pytest.fixture(scope="session")
def tiny_problem():
    """(apply_fn, params, model_state, [(forget_batch, retain_batch), ...]) with numpy batches of 32."""
    data = load_digits(seed=0)
    split = make_split(data, "classwise", forget_class=3)
    parts = split.subsets(data)
    mean, std = dataset_stats(data.x_train)
    forget = cycle_batches(*parts["forget"], BATCH_SIZE, seed=0, mean=mean, std=std)
    retain = iterate_batches(*parts["retain"], BATCH_SIZE, seed=0, mean=mean, std=std, drop_last=True)
    batches = [(next(forget), next(retain)) for _ in range(NUM_STEPS)]
    for f, r in batches:
        assert f["image"].shape == (BATCH_SIZE, 8, 8, 1) and np.all(f["label"] == 3)
        assert r["label"].dtype == np.int32 and not np.any(r["label"] == 3)
    apply_fn, params, model_state = build_model("small_cnn", 10, 1, seed=0, widths=(8, 16), hidden=32)
    return apply_fn, params, model_state, batches


class Trajectories:
    """NUM_STEPS steps of a registry method, single-device or through ``sharded_step``; each run once."""

    def __init__(self, problem):
        self.apply_fn, self.params, self.model_state, self.batches = problem
        self._cache = {}

    def stepper(self, method):
        m = get_method(method)
        return m.build(loss_terms(self.apply_fn, 10), m.configure({"lr": LR}), 10)

    def keys(self):
        return [jax.random.fold_in(jax.random.key(0), i) for i in range(NUM_STEPS)]

    def reference(self, method):
        """The registry's step, jitted on the default device: (states, metrics) per step."""
        if (method, None) not in self._cache:
            stepper = self.stepper(method)
            step = jax.jit(stepper.step, **JIT_OPTIONS)
            state, states, metrics = stepper.init(self.params, self.model_state), [], []
            for (forget, retain), key in zip(self.batches, self.keys(), strict=True):
                state, m = step(state, forget, retain, key)
                states.append(state)
                metrics.append(m)
            self._cache[method, None] = states, metrics
        return self._cache[method, None]

    def sharded(self, method, spec):
        """(states, metrics, expected state shardings) through ``sharded_step`` on ``make_mesh(spec)`` (the
        registry's jitted step is re-jitted with the mesh's shardings)."""
        if (method, spec) not in self._cache:
            mesh = make_mesh(spec)
            stepper = self.stepper(method)
            state = shard_state(stepper.init(self.params, self.model_state), mesh, min_size=MIN_SIZE)
            expected = state_sharding(state, mesh, min_size=MIN_SIZE)
            step = sharded_step(stepper, mesh, state, min_size=MIN_SIZE, **JIT_OPTIONS)
            states, metrics = [], []
            for (forget, retain), key in zip(self.batches, self.keys(), strict=True):
                state, m = step(state, shard_batch(forget, mesh), shard_batch(retain, mesh), key)
                states.append(state)
                metrics.append(m)
            self._cache[method, spec] = states, metrics, expected
        return self._cache[method, spec]


@pytest.fixture(scope="session")
def trajectories(tiny_problem):
    return Trajectories(tiny_problem)
