"""The WMDP task on the synthetic topics: RMU's loss on a hand-computed case, the trainable restriction, LoRA through
the task, the command line, and its clear errors."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rosu_jax import cli
from rosu_jax.methods import ExtrasContext, get_method
from rosu_jax.methods.representation import _masked_mse, _terms
from rosu_jax.models.lm import Tokenizer, load_hf_checkpoint
from rosu_jax.runs.train import train_model
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.wmdp import WmdpConfig, WmdpTask

SMALL = WmdpConfig(
    unlearn_batches=4,
    eval_limit=8,
    train=TrainingRecipe(epochs=2, batch_size=16, lr=3e-3, optimizer="adamw", weight_decay=0.01),
)


def test_rmu_loss_on_a_hand_computed_case():
    # h = w·x per token; the forget term is the mean over real tokens and dimensions of (h − u)², the retain term
    # α times that of (h − h_frozen)², h_frozen from the reference weights.
    x = jnp.array([[[1.0, 2.0], [3.0, 4.0]]])  # [B=1, T=2, d=2]
    mask = jnp.array([[1, 0]])  # the second token is padding

    def hidden(params, model_state, batch, key):
        return (params["w"] * batch["x"], batch["attention_mask"]), model_state

    settings = get_method("RMU").configure({"alpha": 10.0})
    forget, retain, negated, objective = _terms({"hidden": hidden}, settings)
    extras = {"control": jnp.array([[0.0, 1.0]]), "reference_params": {"w": jnp.float32(1.0)}}
    batch = {"x": x, "attention_mask": mask, "topic": jnp.array([0])}
    params = {"w": jnp.float32(2.0)}
    # token 0: h = (2, 4); u = (0, 1): ((2-0)² + (4-1)²)/2 = 6.5
    assert float(forget(params, {}, batch, None, extras)[0]) == pytest.approx(6.5)
    assert float(negated(params, {}, batch, None, extras)[0]) == pytest.approx(-6.5)
    # h_frozen = (1, 2): 10·((2-1)² + (4-2)²)/2 = 25
    assert float(retain(params, {}, batch, None, extras)[0]) == pytest.approx(25.0)
    total, _ = objective(params, {}, batch, batch, None, extras)
    assert float(total) == pytest.approx(31.5)
    assert float(_masked_mse(x, jnp.zeros(2), jnp.ones((1, 2)))) == pytest.approx((1 + 4 + 9 + 16) / 4)


@pytest.fixture(scope="module")
def trained():
    task = WmdpTask(SMALL)
    data = task.load()
    params, model_state = task.init_model(0)
    original = train_model(
        task.training_loss(),
        params,
        model_state,
        task.training_data(data, 0),
        task.training_recipe(),
        seed=0,
        progress=False,
    )
    return task, task.setting(data, "forget topics", 0), original


def step_once(task, setting, original, name):
    params, model_state = task.unlearning_start(original.params, original.model_state)
    data = task.unlearning_data(setting, 0)
    method = get_method(name)
    settings = method.configure({"optimizer": "adamw", "lr": 1e-2, "steering": 60.0, "alpha": 3000.0})
    extras = method.extras(
        ExtrasContext(task.loss_terms(), params, model_state, data.forget_batches, data.num_forget, 0, data.info),
        settings,
    )
    stepper = method.build(task.loss_terms(), settings, 4)
    state = stepper.init(params, model_state, extras)
    return state, stepper.step(state, *data.example, jax.random.key(0))[0]


@pytest.mark.parametrize("name", ["RMU", "ROSU-RMU"])
def test_only_the_trainable_leaves_move(trained, name):
    task, setting, original = trained
    before, after = step_once(task, setting, original, name)
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(before.params)[0]]
    assert names and all("mlp" in n and ("[1]" in n or "[2]" in n) for n in names), names  # layers ℓ−1..ℓ, ℓ = 2
    moved = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(before.params), jax.tree.leaves(after.params), strict=True)
    ]
    assert any(moved)
    frozen = zip(
        jax.tree.leaves(before.model_state["frozen"]), jax.tree.leaves(after.model_state["frozen"]), strict=True
    )
    assert all(np.array_equal(a, b) for a, b in frozen)  # bit-identical


def test_lora_through_the_task_trains_adapters_evaluates_and_saves_merged(trained, tmp_path):
    task, setting, original = trained
    lora = WmdpTask(dataclasses.replace(SMALL, trainable="lora"))
    lora.tokenizer, lora._model = task.tokenizer, task._model
    params, model_state = lora.unlearning_start(original.params, original.model_state)
    names = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    assert names and all("_lora_" in n for n in names)
    data = lora.unlearning_data(setting, 0)
    method = get_method("GradDiff")
    stepper = method.build(lora.loss_terms(), method.configure({"optimizer": "adamw", "lr": 1e-2}), 4)
    state, _ = stepper.step(stepper.init(params, model_state), *data.example, jax.random.key(0))
    evaluation = lora.evaluate(state.params, state.model_state, setting)
    assert evaluation.details["status"] == "ok" and 0 <= evaluation.metrics["forget_accuracy"] <= 100

    # --save-models: a Hugging Face checkpoint of the merged model, with its tokenizer, that loads back exactly
    lora.export(state.params, state.model_state, tmp_path / "model")
    config, apply_fn, loaded = load_hf_checkpoint(tmp_path / "model", dtype=SMALL.dtype, scan_layers=False)
    tokenizer = Tokenizer.from_folder(tmp_path / "model")
    assert tokenizer.encode("the virus") == lora.tokenizer.encode("the virus")
    ids = jnp.asarray([tokenizer.encode("the virus spreads")], jnp.int32)
    mask = jnp.ones_like(ids)
    merged = lora.model_params(state.params, state.model_state)
    assert not any("_lora_" in jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(loaded)[0])
    np.testing.assert_array_equal(apply_fn(loaded, ids, mask), lora.apply_fn(merged, ids, mask))


def test_the_command_line_runs_offline_and_writes_rows(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "wmdp",
        "--epochs",
        "2",
        "--unlearn-batches",
        "4",
        "--eval-limit",
        "8",
        "--methods",
        "RMU,ROSU-RMU",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    assert "| forget acc | control acc |" in capsys.readouterr().out
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["method"] for r in rows] == ["Original", "RMU", "ROSU-RMU"]
    for row in rows:
        assert {"method", "seed", "forget_accuracy", "control_accuracy", "seconds"} <= set(row)
        assert 0 <= row["forget_accuracy"] <= 100 and 0 <= row["control_accuracy"] <= 100
    assert rows[1]["forget_accuracy_delta"] == pytest.approx(rows[1]["forget_accuracy"] - rows[0]["forget_accuracy"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--layer", "9"], "beyond the model's 4 layers"),
        (["--trainable", "layers.9.attention"], "matches no parameter; the names are"),
        (["--questions", "wmdp_bio=bio.jsonl"], "--forget-corpus and --retain-corpus"),
        (["--methods", "SCRUB"], "does not provide"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, argv, message):
    code = cli.main(
        ["wmdp", *argv, "--epochs", "1", "--unlearn-batches", "2", "--work-dir", str(tmp_path), "--no-progress"]
    )
    assert code == 2
    assert message in capsys.readouterr().err
