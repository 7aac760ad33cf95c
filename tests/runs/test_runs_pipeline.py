"""The main job end to end on digits: schema, checkpoint reuse, resume after a kill, errors."""

import json

import jax
import numpy as np
import pytest

from rosu_jax.data import dataset_stats, load_digits
from rosu_jax.models import build_model
from rosu_jax.runs import cli, pipeline
from rosu_jax.runs.config import RunConfig, TrainRecipe
from rosu_jax.runs.train import train_classifier
from rosu_jax.steps import MethodConfig

SMALL = (("widths", (8, 16)), ("hidden", 32))
REQUIRED_KEYS = {"dataset", "scenario", "method", "seed", "UA", "RA", "TA", "MIA", "avg_gap", "seconds"}


def small_config(**changes):
    config = RunConfig(
        model_kwargs=SMALL,
        methods=("FT", "ROSU"),
        train=TrainRecipe(epochs=6, batch_size=64),
        unlearn_epochs=1,
        method_configs=(("ROSU", MethodConfig(lr=0.01)), ("FT", MethodConfig(lr=0.05))),
    )
    return config.replace(**changes)


def test_cli_writes_json_markdown_and_plots(tmp_path, capsys):
    out = tmp_path / "out"
    code = cli.main(
        [
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
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "digits — classwise forgetting" in printed and "digits — random forgetting" in printed
    rows = json.loads((out / "results.json").read_text())
    assert all(REQUIRED_KEYS <= set(row) for row in rows)
    methods = {(r["scenario"], r["method"]) for r in rows}
    for scenario in ("classwise", "random"):
        assert {(scenario, m) for m in ("Retrain", "Original", "FT", "UAM", "ROSU")} <= methods
    for row in rows:
        for key in ("UA", "RA", "TA", "MIA", "avg_gap", "seconds"):
            assert isinstance(row[key], float) and np.isfinite(row[key])
    retrain_classwise = next(r for r in rows if r["method"] == "Retrain" and r["scenario"] == "classwise")
    assert retrain_classwise["UA"] == 100.0 and retrain_classwise["MIA"] >= 95.0
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
    assert calls == []  # finished method rows come from disk
    strip = lambda rows: [{k: v for k, v in r.items() if k != "rte_ratio"} for r in rows]
    assert strip(second.rows) == strip(first.rows)


def test_a_run_killed_midway_resumes_to_the_same_rows(tmp_path, monkeypatch):
    config = small_config(scenarios=("random",), methods=("FT", "ROSU", "NegGrad+"))
    reference = pipeline.run_pipeline(config, work_dir=tmp_path / "clean", progress=False)

    real_run = pipeline.run_unlearning

    def dies_on_rosu(method, *args, **kwargs):
        if method == "ROSU":
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
    data = load_digits(seed=0)
    mean, std = dataset_stats(data.x_train)
    apply_fn, params, state = build_model("small_cnn", 10, 1, seed=0, widths=(8, 16), hidden=32)
    recipe = TrainRecipe(epochs=4, batch_size=64)
    args = (apply_fn, params, state, data.x_train, data.y_train, recipe)
    kwargs = dict(seed=0, mean=mean, std=std, progress=False)
    uninterrupted = train_classifier(*args, checkpoint_dir=tmp_path / "a", **kwargs)

    def kill_after_two(epoch):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_classifier(*args, checkpoint_dir=tmp_path / "b", on_epoch_end=kill_after_two, **kwargs)
    resumed = train_classifier(*args, checkpoint_dir=tmp_path / "b", **kwargs)
    assert not resumed.restored
    for a, b in zip(jax.tree.leaves(resumed.params), jax.tree.leaves(uninterrupted.params), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    again = train_classifier(*args, checkpoint_dir=tmp_path / "b", **kwargs)
    assert again.restored


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--forget-class", "12", "--scenario", "classwise"], "class 12"),
        (["--methods", "FT,Magic"], "unknown method"),
        (["--forget-fraction", "1.5", "--scenario", "random"], "fraction"),
        (["--dataset", "folder"], "data"),
        (["--dataset", "tiny_imagenet", "--data-dir", "/nonexistent/tiny"], "nonexistent"),
    ],
)
def test_bad_input_is_a_clear_error(argv, message, tmp_path, capsys):
    code = cli.main([*argv, "--epochs", "1", "--work-dir", str(tmp_path), "--no-progress"])
    assert code == 2
    assert message in capsys.readouterr().err
