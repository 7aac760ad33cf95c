"""Every registered method changes a digits classifier in its intended direction, through the vision task."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax.methods import get_method, methods
from rosu_jax.methods.base import OptimizerSettings
from rosu_jax.runs.train import train_model
from rosu_jax.runs.unlearn import StepperCache, run_unlearning
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig, VisionTask
from rosu_jax.tasks.vision.data import normalize_images
from rosu_jax.tasks.vision.evaluation import accuracy, predict_logits
from rosu_jax.tasks.vision.losses import cross_entropy, kl_teacher_student
from rosu_jax.tasks.vision.task import DIGITS_METHOD_LRS

LRS = DIGITS_METHOD_LRS | {"GA": 1e-4}  # 2 epochs here, not 5


@pytest.fixture(scope="module")
def setup():
    task = VisionTask(
        VisionConfig(
            scenarios=("classwise",), forget_class=3, unlearn_epochs=2, train=TrainingRecipe(epochs=12, batch_size=64)
        )
    )
    data = task.load()
    params, model_state = task.init_model(0)
    trained = train_model(
        task.loss_terms()["retain"],
        params,
        model_state,
        task.training_data(data, 0),
        task.training_recipe(),
        seed=0,
        progress=False,
    )
    setting = task.setting(data, "classwise", 0)
    return task, trained, setting, StepperCache()


def run(setup, name, settings=None, epochs=2):
    task, trained, setting, cache = setup
    method = get_method(name)
    data = dataclasses.replace(task.unlearning_data(setting, 0), epochs=epochs)
    settings = settings or method.configure({"lr": LRS[name]})
    return run_unlearning(
        method,
        settings,
        task.loss_terms(),
        trained.params,
        trained.model_state,
        data,
        seed=0,
        steppers=cache,
        progress=False,
    )


def logits_of(setup, params, model_state, x):
    task, _, setting, _ = setup
    split = setting.split
    return predict_logits(
        task.apply_fn, params, model_state, x, normalize=lambda b: normalize_images(b, split.mean, split.std)
    )


def scores(setup, params, model_state):
    subsets = setup[2].split.subsets
    out = {}
    for name in ("forget", "retain"):
        logits = logits_of(setup, params, model_state, subsets[name][0])
        out[name + "_acc"] = accuracy(logits, subsets[name][1])
        out[name + "_loss"] = float(cross_entropy(jnp.asarray(logits), jnp.asarray(subsets[name][1])))
    return out


@pytest.fixture(scope="module")
def before(setup):
    _, trained, *_ = setup
    s = scores(setup, trained.params, trained.model_state)
    assert s["forget_acc"] > 95 and s["retain_acc"] > 95
    return s


@pytest.mark.parametrize("method", ["GA", "NegGrad+", "RL", "SalUn", "UAM+λ", "ROSU"])
def test_forgetting_methods_raise_forget_loss_and_lower_forget_accuracy(setup, before, method):
    result = run(setup, method)
    assert result.diverged_at is None
    after = scores(setup, result.params, result.model_state)
    assert after["forget_loss"] > before["forget_loss"] + 0.5, after
    assert after["forget_acc"] < before["forget_acc"] - 20, after


@pytest.mark.parametrize("method", ["FT", "l1-sparse", "UAM", "SCRUB", "ROSU"])
def test_retain_accuracy_is_kept(setup, before, method):
    result = run(setup, method)
    after = scores(setup, result.params, result.model_state)
    assert after["retain_acc"] > before["retain_acc"] - 5, after


def test_l1_sparse_shrinks_the_l1_norm_more_than_fine_tuning(setup):
    l1 = lambda p: sum(float(jnp.sum(jnp.abs(x))) for x in jax.tree.leaves(p))
    ft = run(setup, "FT", get_method("FT").configure({"lr": 0.05, "weight_decay": 0.0}))
    sparse = run(
        setup, "l1-sparse", get_method("l1-sparse").configure({"lr": 0.05, "weight_decay": 0.0, "l1_weight": 5e-3})
    )
    assert l1(sparse.params) < l1(ft.params) - 1.0


def test_salun_moves_only_the_salient_half(setup):
    _, trained, *_ = setup
    result = run(setup, "SalUn")
    moved = [
        np.asarray(a != b) for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(trained.params), strict=True)
    ]
    fraction_moved = sum(m.sum() for m in moved) / sum(m.size for m in moved)
    assert 0.3 < fraction_moved <= 0.5 + 1e-3


def test_scrub_pushes_the_student_away_from_the_teacher_on_forget_data(setup):
    _, trained, setting, _ = setup
    result = run(setup, "SCRUB", get_method("SCRUB").configure({"lr": 0.006}))
    subsets = setting.split.subsets
    x, x_r = subsets["forget"][0], subsets["retain"][0][:300]
    teacher = logits_of(setup, trained.params, trained.model_state, x)
    student = logits_of(setup, result.params, result.model_state, x)
    teacher_r = logits_of(setup, trained.params, trained.model_state, x_r)
    student_r = logits_of(setup, result.params, result.model_state, x_r)
    kl_forget = float(kl_teacher_student(jnp.asarray(teacher), jnp.asarray(student)))
    kl_retain = float(kl_teacher_student(jnp.asarray(teacher_r), jnp.asarray(student_r)))
    assert kl_forget > 2 * kl_retain and kl_forget > 0.01


def test_minmax_methods_report_geometry(setup):
    rosu = run(setup, "ROSU", epochs=1)
    uam = run(setup, "UAM", epochs=1)
    assert np.all(np.abs(rosu.history["coupling"]) <= 1)
    assert np.all(np.asarray(rosu.history["predicted_retain_change"]) == 0)
    assert rosu.gradient_evaluations == 3 and rosu.coupling_source.startswith("exact")
    # the published UAM: two gradients; κ measured by a probe on a sample of steps, outside the timed step
    assert uam.gradient_evaluations == 2 and uam.coupling_source.startswith("probe")
    assert len(uam.history["coupling"]) == len(uam.history["probe_step"]) > 1
    assert np.all(np.abs(uam.history["coupling"]) <= 1)


def test_every_method_is_registered_once_with_its_hyperparameters():
    assert {"FT", "GA", "NegGrad+", "RL", "l1-sparse", "SalUn", "SCRUB", "UAM", "UAM+λ", "ROSU"} <= set(methods())
    with pytest.raises(ValueError, match="known methods"):
        get_method("Magic")
    with pytest.raises(ValueError, match="lr must be > 0"):
        OptimizerSettings(lr=0.0)
    with pytest.raises(ValueError, match="ROSU.rho must be a finite number"):
        get_method("ROSU").configure({"rho": float("inf")})
    with pytest.raises(ValueError, match="UAM has no hyperparameter 'amplification'"):
        get_method("UAM").configure({"amplification": 0.1})
    assert get_method("ROSU").grid_fields() == ("lr", "rho", "amplification")
    assert get_method("ROSU").label(get_method("ROSU").configure({"lr": 0.1})) == "lr=0.1 ρ=0.5 λ=0.05"


def test_empty_forget_set_is_a_clear_error(setup):
    task, trained, setting, cache = setup
    subsets = dict(setting.split.subsets)
    subsets["forget"] = (subsets["forget"][0][:0], subsets["forget"][1][:0])
    empty = dataclasses.replace(setting, split=dataclasses.replace(setting.split, subsets=subsets))
    with pytest.raises(ValueError, match="forget set is empty"):
        task.unlearning_data(empty, 0)
