"""The relearning attack: how fast does forgotten knowledge come back?

After unlearning, the model is fine-tuned on ``k`` forget examples for ``n`` steps (full-batch steps, the task's
training optimizer and learning rate, the task's retain loss term) and its forget score is measured at steps
0, n/4, n/2, 3n/4 and n. A method whose forget score jumps back within a few steps hid the knowledge rather than
removing it (Lynch et al. 2024, "Eight methods to evaluate robust unlearning in LLMs"; Hu et al. 2024).
"""

from __future__ import annotations

import jax

from rosu_jax.core.types import PyTree
from rosu_jax.runs.train import training_optimizer
from rosu_jax.steps import make_recipe_step
from rosu_jax.tasks.base import Setting, Task
from rosu_jax.transforms.recipes import fine_tune


def relearn_curve(
    task: Task, params: PyTree, model_state: PyTree, setting: Setting, k: int, n: int, cache: dict | None = None
) -> tuple[list[int], list[float]]:
    """``(steps, forget scores)`` of the attack (see the module docstring); ``cache`` keeps the compiled step."""
    cache = {} if cache is None else cache
    batch = task.relearn_batch(setting, k)
    key = (k, n)
    if key not in cache:
        cache[key] = make_recipe_step(
            None, task.loss_terms()["retain"], fine_tune(training_optimizer(task.training_recipe(), n))
        )
    stepper = cache[key]
    state = stepper.init(params, model_state)
    checkpoints = sorted({0, n // 4, n // 2, (3 * n) // 4, n})
    steps, scores = [], []
    for step in range(n + 1):
        if step in checkpoints:
            steps.append(step)
            scores.append(float(task.forget_score(state.params, state.model_state, setting)))
        if step < n:
            state, _ = stepper.step(state, None, batch, jax.random.key(step))
    return steps, scores
