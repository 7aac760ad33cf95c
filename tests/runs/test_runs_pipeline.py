"""The main job end to end on digits: schema, checkpoint reuse, resume after a kill, errors."""

import json

import jax
import numpy as np
import pytest

from rosu_jax import cli
from rosu_jax.runs import pipeline
from rosu_jax.runs.config import RunConfig
from rosu_jax.runs.train import train_model
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig, VisionTask

SMALL = (("widths", (8, 16)), ("hidden", 32))
REQUIRED_KEYS = {"dataset", "scenario", "method", "seed", "UA", "RA", "TA", "MIA", "avg_gap", "seconds", "status"}


def small_config(methods=("FT", "ROSU"), **task_changes):
    task = VisionConfig(
        model_kwargs=SMALL, train=TrainingRecipe(epochs=6, batch_size=64), unlearn_epochs=1, **task_changes
    )
    return RunConfig(task=task, methods=methods, overrides={"ROSU": {"lr": 0.01}, "FT": {"lr": 0.05}})


def test_cli_writes_json_markdown_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "--methods",
        "FT,UAM,ROSU",
        "--epochs",
        "6",
        "--unlearn-epochs",
        "1",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    printed = capsys.readouterr().out
    assert "digits — classwise" in printed and "digits — random" in printed
    assert "One seed: this table cannot rank methods" in printed
    document = json.loads((out / "results.json").read_text())
    rows = document["rows"]
    assert all(REQUIRED_KEYS <= set(row) for row in rows)
    methods = {(r["scenario"], r["method"]) for r in rows}
    for scenario in ("classwise", "random"):
        assert {(scenario, m) for m in ("Retrain", "Original", "FT", "UAM", "ROSU")} <= methods
    for row in rows:
        for key in ("UA", "RA", "TA", "MIA", "avg_gap", "seconds"):
            assert isinstance(row[key], float) and np.isfinite(row[key])
    retrain_classwise = next(r for r in rows if r["method"] == "Retrain" and r["scenario"] == "classwise")
    assert retrain_classwise["UA"] == 100.0 and retrain_classwise["MIA"] >= 95.0
    rosu = next(r for r in rows if r["method"] == "ROSU")
    assert rosu["variant"] == "lr=0.1 ρ=0.5 λ=0.05" and rosu["rho"] == 0.5 and rosu["amplification"] == 0.05
    uam = next(r for r in rows if r["method"] == "UAM")
    assert uam["gradient_evaluations"] == 2 and uam["coupling_source"].startswith("probe")
    assert (out / "results.md").read_text().count("| Method |") == 2
    for png in ("metrics.png", "coupling.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    histories = json.loads((out / "histories.json").read_text())
    assert any("/ROSU/" in k and len(v["coupling"]) > 0 for k, v in histories.items())


def test_retrain_checkpoint_is_reused_and_rows_are_cached(tmp_path, monkeypatch):
    config = small_config(scenarios=("classwise",))
    messages = []
    first = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False, log=messages.append)
    assert any("Retrain" in m and "trained" in m for m in messages)

    calls = []
    real_run = pipeline.run_unlearning
    monkeypatch.setattr(pipeline, "run_unlearning", lambda *a, **k: calls.append(1) or real_run(*a, **k))
    messages.clear()
    second = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False, log=messages.append)
    assert any("Retrain" in m and "restored" in m for m in messages)
    assert any("original" in m and "restored" in m for m in messages)
    assert any("ROSU" in m and "restored row" in m and "same data" in m for m in messages)
    assert calls == []  # finished method rows come from disk
    strip = lambda rows: [{k: v for k, v in r.items() if k != "rte_ratio"} for r in rows]
    assert strip(second.rows) == strip(first.rows)


def test_a_run_killed_midway_resumes_to_the_same_rows(tmp_path, monkeypatch):
    config = small_config(methods=("FT", "ROSU", "NegGrad+"), scenarios=("random",))
    reference = pipeline.run_pipeline(config, work_dir=tmp_path / "clean", progress=False)

    real_run = pipeline.run_unlearning

    def dies_on_rosu(method, *args, **kwargs):
        if method.name == "ROSU":
            raise KeyboardInterrupt("killed")
        return real_run(method, *args, **kwargs)

    monkeypatch.setattr(pipeline, "run_unlearning", dies_on_rosu)
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_pipeline(config, work_dir=tmp_path / "killed", progress=False)
    monkeypatch.setattr(pipeline, "run_unlearning", real_run)
    resumed = pipeline.run_pipeline(config, work_dir=tmp_path / "killed", progress=False)
    keys = ("method", "UA", "RA", "TA", "MIA", "avg_gap")
    assert [{k: r[k] for k in keys} for r in resumed.rows] == [{k: r[k] for k in keys} for r in reference.rows]


def test_training_interrupted_resumes_at_last_epoch_with_identical_weights(tmp_path):
    task = VisionTask(VisionConfig(model_kwargs=SMALL, train=TrainingRecipe(epochs=4, batch_size=64)))
    data = task.load()
    params, state = task.init_model(0)
    args = (task.loss_terms()["retain"], params, state, task.training_data(data, 0), task.training_recipe())
    uninterrupted = train_model(*args, seed=0, checkpoint_dir=tmp_path / "a", progress=False)

    def kill_after_two(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_model(*args, seed=0, checkpoint_dir=tmp_path / "b", on_epoch_end=kill_after_two, progress=False)
    resumed = train_model(*args, seed=0, checkpoint_dir=tmp_path / "b", progress=False)
    assert not resumed.restored
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(uninterrupted.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    again = train_model(*args, seed=0, checkpoint_dir=tmp_path / "b", progress=False)
    assert again.restored


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--forget-class", "12", "--scenario", "classwise"], "--forget-class 12"),
        (["--methods", "FT,Magic"], "unknown method"),
        (["--forget-fraction", "1.5", "--scenario", "random"], "forget_fraction"),
        (["--dataset", "folder"], "--data-dir"),
        (["--dataset", "tiny_imagenet", "--data-dir", "/nonexistent/tiny"], "nonexistent"),
        (["--model-seed", "-1"], "model_seed must be None or an integer >= 0"),
        (["--unlearn-steps", "0"], "unlearn_steps must be None or >= 1"),
    ],
)
def test_bad_input_is_a_clear_error(argv, message, tmp_path, capsys):
    code = cli.main([*argv, "--epochs", "1", "--work-dir", str(tmp_path), "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_fixed_model_seed_shares_the_original_split_and_retrain_across_seeds(tmp_path):
    """``model_seed``: the seeds vary only the unlearning runs; the original and the Retrain are trained once."""
    config = small_config(methods=("FT",), scenarios=("random",), model_seed=0)
    config = RunConfig(task=config.task, methods=config.methods, overrides=config.overrides, seeds=(0, 1))
    messages = []
    rows = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False, log=messages.append).rows
    assert sum("trained in" in m for m in messages) == 2  # one original, one Retrain
    assert sum("restored checkpoint" in m for m in messages) == 2  # seed 1 reuses both
    by = {(r["method"], r["seed"]): r for r in rows}
    for method in ("Retrain", "Original"):
        assert by[(method, 0)]["UA"] == by[(method, 1)]["UA"] and by[(method, 0)]["RA"] == by[(method, 1)]["RA"]
    assert by[("FT", 0)]["RA"] != by[("FT", 1)]["RA"] or by[("FT", 0)]["UA"] != by[("FT", 1)]["UA"]


def test_save_models_exports_every_trained_model_and_recomputes_unsaved_cached_rows(tmp_path):
    import orbax.checkpoint as ocp

    config = small_config(methods=("FT",), scenarios=("random",))
    first = pipeline.run_pipeline(config, work_dir=tmp_path / "work", progress=False).rows
    messages = []
    save = tmp_path / "models"
    rows = pipeline.run_pipeline(
        config, work_dir=tmp_path / "work", progress=False, log=messages.append, save_models=save
    ).rows
    assert any("FT lr=0.05" in m and "saved to" in m for m in messages)  # the cached row was recomputed
    assert [r["UA"] for r in rows] == [r["UA"] for r in first]  # to the same numbers
    folders = sorted(str(p.relative_to(save)) for p in save.glob("*/*") if p.is_dir())
    assert folders == ["Original/seed0", "random/seed0"]
    assert sorted(p.name for p in (save / "random" / "seed0").iterdir()) == ["FT-lr=0.05", "Retrain"]
    task = VisionTask(config.task)
    task.load()
    params, model_state = task.init_model(0)
    with ocp.StandardCheckpointer() as checkpointer:
        saved = checkpointer.restore(
            (save / "random" / "seed0" / "FT-lr=0.05" / "checkpoint").absolute(),
            {"params": params, "model_state": model_state},
        )
    data = task.load()
    evaluation = task.evaluate(saved["params"], saved["model_state"], task.setting(data, "random", 0))
    ft = next(r for r in rows if r["method"] == "FT")
    assert evaluation.metrics["UA"] == ft["UA"] and evaluation.metrics["TA"] == ft["TA"]
    messages.clear()
    pipeline.run_pipeline(config, work_dir=tmp_path / "work", progress=False, log=messages.append, save_models=save)
    assert not any("saved to" in m for m in messages)  # everything is there: nothing recomputed or rewritten


def test_unlearn_steps_caps_every_run_and_keys_the_rows(tmp_path):
    capped = small_config(methods=("FT", "ROSU"), scenarios=("random",), unlearn_steps=3)
    rows = pipeline.run_pipeline(capped, work_dir=tmp_path, progress=False).rows
    assert {r["method"]: r["steps"] for r in rows if r["method"] in ("FT", "ROSU")} == {"FT": 3, "ROSU": 3}
    full = small_config(methods=("FT",), scenarios=("random",))
    rows = pipeline.run_pipeline(full, work_dir=tmp_path, progress=False).rows  # not the capped row from the cache
    assert next(r for r in rows if r["method"] == "FT")["steps"] > 3
