"""Every registered method changes a digits classifier in its intended direction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax.data import dataset_stats, load_digits, make_split, normalize_images
from rosu_jax.evaluation import accuracy, predict_logits
from rosu_jax.models import build_model
from rosu_jax.runs.config import DIGITS_METHOD_CONFIGS, TrainRecipe
from rosu_jax.runs.train import train_classifier
from rosu_jax.runs.unlearn import StepperCache, run_unlearning
from rosu_jax.steps import METHODS, MethodConfig, get_method
from rosu_jax.steps.classifier import cross_entropy, kl_teacher_student

CONFIGS = dict(DIGITS_METHOD_CONFIGS) | {"GA": MethodConfig(lr=1e-4)}  # 2 epochs here, not 5


@pytest.fixture(scope="module")
def setup():
    data = load_digits(seed=0)
    mean, std = dataset_stats(data.x_train)
    apply_fn, params, state = build_model("small_cnn", 10, 1, seed=0)
    trained = train_classifier(
        apply_fn,
        params,
        state,
        data.x_train,
        data.y_train,
        TrainRecipe(epochs=12, batch_size=64),
        seed=0,
        mean=mean,
        std=std,
        progress=False,
    )
    subsets = make_split(data, "classwise", forget_class=3).subsets(data)
    return apply_fn, trained, subsets, mean, std, StepperCache()


def logits_of(apply_fn, params, model_state, x, mean, std):
    return predict_logits(apply_fn, params, model_state, x, normalize=lambda b: normalize_images(b, mean, std))


def run(setup, method, config=None, epochs=2):
    apply_fn, trained, subsets, mean, std, cache = setup
    return run_unlearning(
        method,
        config or CONFIGS[method],
        apply_fn,
        10,
        trained.params,
        trained.model_state,
        subsets["forget"],
        subsets["retain"],
        epochs=epochs,
        batch_size=64,
        seed=0,
        mean=mean,
        std=std,
        steppers=cache,
        progress=False,
    )


def scores(setup, params, model_state):
    apply_fn, _, subsets, mean, std, _ = setup
    out = {}
    for name in ("forget", "retain"):
        logits = logits_of(apply_fn, params, model_state, subsets[name][0], mean, std)
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
    assert result.all_finite
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
    base = MethodConfig(lr=0.05, weight_decay=0.0)
    ft = run(setup, "FT", base)
    sparse = run(setup, "l1-sparse", base.replace(l1_weight=5e-3))
    assert l1(sparse.params) < l1(ft.params) - 1.0


def test_salun_moves_only_the_salient_half(setup):
    apply_fn, trained, subsets, mean, std, _ = setup
    result = run(setup, "SalUn")
    moved = [
        np.asarray(a != b) for a, b in zip(jax.tree.leaves(result.params), jax.tree.leaves(trained.params), strict=True)
    ]
    fraction_moved = sum(m.sum() for m in moved) / sum(m.size for m in moved)
    assert 0.3 < fraction_moved <= 0.5 + 1e-3


def test_scrub_pushes_the_student_away_from_the_teacher_on_forget_data(setup):
    apply_fn, trained, subsets, mean, std, _ = setup
    result = run(setup, "SCRUB", CONFIGS["SCRUB"].replace(lr=0.006))
    x = subsets["forget"][0]
    teacher = logits_of(apply_fn, trained.params, trained.model_state, x, mean, std)
    student = logits_of(apply_fn, result.params, result.model_state, x, mean, std)
    x_r = subsets["retain"][0][:300]
    teacher_r = logits_of(apply_fn, trained.params, trained.model_state, x_r, mean, std)
    student_r = logits_of(apply_fn, result.params, result.model_state, x_r, mean, std)
    kl_forget = float(kl_teacher_student(jnp.asarray(teacher), jnp.asarray(student)))
    kl_retain = float(kl_teacher_student(jnp.asarray(teacher_r), jnp.asarray(student_r)))
    assert kl_forget > 2 * kl_retain and kl_forget > 0.01


def test_minmax_methods_report_geometry(setup):
    rosu = run(setup, "ROSU", epochs=1)
    uam = run(setup, "UAM", epochs=1)
    assert np.all(np.abs(rosu.history["coupling"]) <= 1)
    assert np.all(rosu.history["predicted_retain_change"] == 0)
    np.testing.assert_allclose(uam.history["predicted_retain_change"], uam.history["predicted_retain_change_minmax"])
    assert rosu.gradient_evaluations == 3


def test_every_method_is_registered_with_a_factory():
    assert set(METHODS) == {"FT", "GA", "NegGrad+", "RL", "l1-sparse", "SalUn", "SCRUB", "UAM", "UAM+λ", "ROSU"}
    with pytest.raises(ValueError, match="known methods"):
        get_method("Magic")
    with pytest.raises(ValueError, match="lr"):
        MethodConfig(lr=0.0)


def test_empty_forget_set_is_a_clear_error(setup):
    apply_fn, trained, subsets, mean, std, cache = setup
    empty = (subsets["forget"][0][:0], subsets["forget"][1][:0])
    with pytest.raises(ValueError, match="forget set is empty"):
        run_unlearning(
            "ROSU",
            MethodConfig(),
            apply_fn,
            10,
            trained.params,
            trained.model_state,
            empty,
            subsets["retain"],
            epochs=1,
            batch_size=64,
            seed=0,
            mean=mean,
            std=std,
            progress=False,
        )
