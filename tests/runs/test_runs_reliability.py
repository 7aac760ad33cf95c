"""Results a user can trust: every case of the reliability probe has a test here.

Stale cached results (data, mesh, code), diverged models shown as results, two runs on one work dir, errors found
after the work, errors that do not say which file or flag, outputs written one by one, and SIGKILL at random points.
"""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from rosu_jax import cli
from rosu_jax.runs import cache, pipeline
from rosu_jax.runs.config import RunConfig
from rosu_jax.runs.lock import WorkDirLock
from rosu_jax.runs.report import TableSpec, write_report
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig, VisionTask

SMALL = (("widths", (8, 16)), ("hidden", 32))
TINY = VisionConfig(
    model="small_cnn", model_kwargs=SMALL, train=TrainingRecipe(epochs=2, batch_size=64), unlearn_epochs=1
)


def tiny_config(**changes) -> RunConfig:
    return RunConfig(task=dataclasses.replace(TINY, **changes.pop("task", {})), methods=("FT",), **changes)


def restored(messages) -> list[str]:
    return [m for m in messages if "restored" in m]


def write_folder(root, *, seed=0, classes=("a", "b", "c"), per_class=12, test_per_class=6, size=8):
    """A tiny image folder train/<class>/*.png, test/<class>/*.png with class-dependent colours."""
    rng = np.random.default_rng(seed)
    for split, n in (("train", per_class), ("test", test_per_class)):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                pixels = rng.integers(0, 60, (size, size, 3)) + 90 * c
                Image.fromarray(pixels.astype(np.uint8)).save(folder / f"{i:03d}.png")


def cli_run(tmp_path, *argv, work="work"):
    return cli.main([*argv, "--work-dir", str(tmp_path / work), "--no-progress"])


# -- 1. stale results are never reused --------------------------------------------------------------------------


def test_replaced_images_under_the_same_folder_invalidate_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("ROSU_JAX_CACHE", str(tmp_path / "cache"))
    write_folder(tmp_path / "data", seed=0)
    config = tiny_config(task={"dataset": "folder", "data_dir": str(tmp_path / "data"), "scenarios": ("classwise",)})
    first = []
    pipeline.run_pipeline(config, work_dir=tmp_path / "work", progress=False, log=first.append)
    assert restored(first) == []
    time.sleep(0.01)
    for f in sorted((tmp_path / "data" / "train" / "b").iterdir()):  # same names, same count, new pixels
        Image.fromarray(np.full((8, 8, 3), 250, np.uint8)).save(f)
    second = []
    pipeline.run_pipeline(config, work_dir=tmp_path / "work", progress=False, log=second.append)
    assert restored(second) == [], restored(second)
    third = []
    pipeline.run_pipeline(config, work_dir=tmp_path / "work", progress=False, log=third.append)
    assert len(restored(third)) == 3  # original, Retrain, FT: now keyed by the new contents


def test_a_mesh_change_invalidates_rows_and_checkpoints(tmp_path):
    config = tiny_config(task={"scenarios": ("classwise",)})
    pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    messages = []
    pipeline.run_pipeline(config.replace(mesh="data=8"), work_dir=tmp_path, progress=False, log=messages.append)
    assert restored(messages) == []


def test_a_code_change_invalidates_rows_and_checkpoints(tmp_path, monkeypatch):
    config = tiny_config(task={"scenarios": ("classwise",)})
    pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    monkeypatch.setattr(pipeline, "code_fingerprint", lambda: "0.2.0-changed")
    messages = []
    pipeline.run_pipeline(config, work_dir=tmp_path, progress=False, log=messages.append)
    assert restored(messages) == []


def test_the_code_fingerprint_follows_the_source_files(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    before = cache.source_hash(tmp_path / "pkg")
    (tmp_path / "pkg" / "a.py").write_text("x = 2\n")
    assert cache.source_hash(tmp_path / "pkg") != before
    assert cache.code_fingerprint().startswith("0.")


def test_settings_that_do_not_apply_do_not_invalidate(tmp_path):
    config = tiny_config(task={"scenarios": ("classwise",)})
    pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    messages = []
    other_fraction = tiny_config(task={"scenarios": ("classwise",), "forget_fraction": 0.3})
    pipeline.run_pipeline(other_fraction, work_dir=tmp_path, progress=False, log=messages.append)
    assert len(restored(messages)) == 3  # the class-wise split does not depend on the random fraction


def test_fresh_ignores_the_cache(tmp_path):
    config = tiny_config(task={"scenarios": ("classwise",)})
    pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    messages = []
    pipeline.run_pipeline(config, work_dir=tmp_path, progress=False, log=messages.append, fresh=True)
    assert restored(messages) == []


# -- 2. divergence is a status, not a number ----------------------------------------------------------------------


def test_a_diverging_training_stops_with_a_clear_error(tmp_path, capsys):
    started = time.perf_counter()
    assert cli_run(tmp_path, "--train-lr", "1e6", "--epochs", "2", "--methods", "FT") == 2
    err = capsys.readouterr().err
    assert "diverged" in err and "--train-lr" in err
    assert time.perf_counter() - started < 60


def test_diverged_unlearning_rows_are_marked_and_never_ranked(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "--scenario",
        "classwise",
        "--forget-class",
        "1",
        "--methods",
        "FT,ROSU",
        "--lr-grid",
        "1e6,0.01",
        "--epochs",
        "2",
        "--unlearn-epochs",
        "1",
        "--seeds",
        "0,1",
        "--out",
        str(out),
    ]
    assert cli_run(tmp_path, *argv) == 0
    text = (out / "results.json").read_text()
    document = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    diverged = [r for r in document["rows"] if r.get("lr") == 1e6]
    assert diverged and all(r["status"] == "diverged" and r["UA"] is None for r in diverged)
    table = (out / "results.md").read_text()
    assert "| diverged | diverged |" in table
    assert "diverged 2/2" in table
    comparison = next(iter(document["comparisons"].values()))
    assert comparison["best"] is None or "1e+06" not in comparison["best"]


def test_a_model_predicting_one_class_is_marked_collapsed_and_left_out_of_the_statistics():
    from rosu_jax.runs.report import markdown_tables

    task = VisionTask(TINY)
    data = task.load()
    setting = task.setting(data, "classwise", 0)
    params, model_state = task.init_model(0)
    bias = np.zeros_like(params["fc2"]["bias"])
    bias[3] = 1e3  # class 3 everywhere, finite logits: not diverged, but not a result either
    collapsed = {**params, "fc2": {"kernel": np.zeros_like(params["fc2"]["kernel"]), "bias": bias}}
    evaluation = task.evaluate(collapsed, model_state, setting)
    assert evaluation.details["status"] == "collapsed" and evaluation.details["max_class_share"] == 1.0
    rows = [
        {"scenario": "classwise", "method": "GA", "seed": s, "variant": None, "seconds": 1.0, "avg_gap": 40.0 + s,
         "status": "collapsed" if s == 0 else "ok"}
        for s in range(3)
    ]
    table = markdown_tables(rows, TableSpec.of(task))
    assert "| 41.50 ± 0.71 |" in table and "collapsed 1/3" in table  # seeds 1 and 2 only


@pytest.mark.parametrize(
    ("argv", "flag"),
    [
        (["--lr-grid", "inf"], "--lr-grid"),
        (["--rho", "1e300"], "rho"),
        (["--seeds=-1"], "--seeds"),
        (["--lr-grid", "abc"], "--lr-grid"),
    ],
)
def test_bad_numbers_name_their_flag(tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) if "abc" in argv else _noop():
        assert cli_run(tmp_path, *argv) == 2
    assert flag in capsys.readouterr().err


class _noop:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- 3. two runs on one work dir -----------------------------------------------------------------------------------


def test_a_second_run_on_a_busy_work_dir_fails_fast_naming_the_holder(tmp_path):
    with WorkDirLock(tmp_path / "work"):
        started = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from rosu_jax.cli import main; sys.exit(main())",
                "--work-dir",
                str(tmp_path / "work"),
                "--no-progress",
                "--epochs",
                "1",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 2
        assert f"process {os.getpid()}" in proc.stderr and "--work-dir" in proc.stderr
        assert time.perf_counter() - started < 30


def test_the_lock_is_released_when_a_run_ends_and_waiting_works(tmp_path):
    lock = WorkDirLock(tmp_path)
    with lock:
        pass
    with WorkDirLock(tmp_path, wait=True, poll_s=0.01):
        pass


# -- 4. errors before the work -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scenario", "both", "--forget-class", "12"], "--forget-class 12"),
        (["--forget-fraction", "1.0"], "forget_fraction"),
    ],
)
def test_bad_splits_fail_before_any_training(tmp_path, capsys, argv, message):
    started = time.perf_counter()
    assert cli_run(tmp_path, *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "work" / "checkpoints").exists()
    assert time.perf_counter() - started < 30


def test_bad_out_paths_fail_before_any_training(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    full = tmp_path / "full"
    full.mkdir()
    (full / "mine.txt").write_text("keep me")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    cases = [(a_file, "is a file"), (a_file / "sub", "is a file"), (full, "holds other files")]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((locked / "out", "cannot write"))
    for out, message in cases:
        assert cli_run(tmp_path, "--out", str(out)) == 2
        assert message in capsys.readouterr().err
    assert (full / "mine.txt").read_text() == "keep me"
    assert not (tmp_path / "work").exists()


# -- 5. errors that say which file and what to do --------------------------------------------------------------


def test_a_truncated_image_is_named_and_can_be_skipped(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROSU_JAX_CACHE", str(tmp_path / "cache"))
    write_folder(tmp_path / "data")
    bad = tmp_path / "data" / "train" / "a" / "000.png"
    bad.write_bytes(bad.read_bytes()[:30])
    args = (
        "--dataset",
        "folder",
        "--data-dir",
        str(tmp_path / "data"),
        "--model",
        "small_cnn",
        "--epochs",
        "1",
        "--methods",
        "FT",
        "--scenario",
        "classwise",
    )
    assert cli_run(tmp_path, *args) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "1 of 36" in err and "--skip-bad-images" in err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert cli_run(tmp_path, *args, "--skip-bad-images", "--unlearn-epochs", "1") == 0
    assert any(str(bad) in str(w.message) for w in caught)


@pytest.mark.parametrize("layout", ["empty test class folder", "class missing from test"])
def test_a_class_without_test_images_is_a_clear_error(tmp_path, capsys, monkeypatch, layout):
    monkeypatch.setenv("ROSU_JAX_CACHE", str(tmp_path / "cache"))
    write_folder(tmp_path / "data")
    folder = tmp_path / "data" / "test" / "c"
    for f in folder.iterdir():
        f.unlink()
    if layout == "class missing from test":
        folder.rmdir()
    assert cli_run(tmp_path, "--dataset", "folder", "--data-dir", str(tmp_path / "data"), "--epochs", "1") == 2
    assert "class(es) c have no test images" in capsys.readouterr().err


def test_a_damaged_cached_row_is_reported_and_recomputed(tmp_path):
    config = tiny_config(task={"scenarios": ("classwise",)})
    first = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    (row_file,) = (tmp_path / "rows").glob("*.json")
    row_file.write_text("")
    with pytest.warns(UserWarning, match=str(row_file)):
        again = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    assert [r["UA"] for r in again.rows] == [r["UA"] for r in first.rows]
    assert json.loads(row_file.read_text())["row"]["method"] == "FT"


def test_a_damaged_latest_checkpoint_falls_back_to_the_intact_previous_one(tmp_path):
    config = tiny_config(task={"scenarios": ("classwise",)})
    first = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    (original,) = (tmp_path / "checkpoints").glob("original-*")
    latest = max(int(p.name) for p in original.iterdir() if p.name.isdigit())
    for f in (original / str(latest)).rglob("*"):
        if f.is_file():
            f.write_bytes(b"")
    (tmp_path / "rows").rename(tmp_path / "rows-old")  # recompute the rows from the restored models
    with pytest.warns(UserWarning, match="damaged"):
        again = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    assert [r["UA"] for r in again.rows] == [r["UA"] for r in first.rows]


# -- 6. outputs written together ------------------------------------------------------------------------------------


def test_a_report_interrupted_while_writing_leaves_the_previous_one_whole(tmp_path):
    spec = TableSpec.of(VisionTask(TINY))
    rows = [
        {
            "dataset": "digits",
            "scenario": "classwise",
            "method": "FT",
            "seed": 0,
            "UA": 1.0,
            "RA": 2.0,
            "TA": 3.0,
            "MIA": 4.0,
            "avg_gap": 1.0,
            "seconds": 0.1,
            "status": "ok",
        }
    ]
    out = tmp_path / "out"
    write_report(out, rows, {}, spec)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def dies(*args):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_report(out, [dict(rows[0], UA=99.0)], {}, spec, plots=[dies])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


# -- 7. SIGKILL at random points, then a restart, gives the uninterrupted results ----------------------------------

KILL_POINTS = 10
SCRIPT = textwrap.dedent(
    """
    import sys
    from rosu_jax.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def _command(work, out, config_file):
    return [
        sys.executable,
        "-c",
        SCRIPT,
        "--config",
        str(config_file),
        "--work-dir",
        str(work),
        "--out",
        str(out),
        "--no-progress",
    ]


def test_sigkill_at_random_points_then_restart_gives_identical_results(tmp_path):
    config_file = tmp_path / "tiny.py"
    config_file.write_text(
        textwrap.dedent(
            """
        from rosu_jax.runs import RunConfig
        from rosu_jax.tasks.base import TrainingRecipe
        from rosu_jax.tasks.vision import VisionConfig
        CONFIG = RunConfig(
            task=VisionConfig(model_kwargs=(("widths", (8, 16)), ("hidden", 32)), unlearn_epochs=1,
                              scenarios=("classwise",), train=TrainingRecipe(epochs=3, batch_size=64)),
            methods=("FT", "ROSU"),
        )
        """
        )
    )
    env = dict(os.environ, ROSU_JAX_CACHE=str(tmp_path / "cache"))
    run = lambda name: subprocess.run(
        _command(tmp_path / name, tmp_path / f"{name}-out", config_file),
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    run("warm-up")  # fills XLA's compilation cache: every later run takes the same, shorter time
    started = time.perf_counter()
    run("clean")
    duration = time.perf_counter() - started
    keys = ("scenario", "method", "UA", "RA", "TA", "MIA", "avg_gap", "status")
    rows = lambda out: [{k: r[k] for k in keys} for r in json.loads((out / "results.json").read_text())["rows"]]
    clean = rows(tmp_path / "clean-out")

    # Chains of runs on one work dir, each run SIGKILLed at a random moment of the uninterrupted run's duration
    # (start-up, training, checkpoint writes, unlearning, row and report writes); a run that finishes first ends
    # its chain, whose results must equal the uninterrupted ones; the last chain is run to the end.
    rng = np.random.default_rng(20261130)
    kills, chain, finished_chains = 0, 0, 0
    while kills < KILL_POINTS:
        work, out = tmp_path / f"chain{chain}", tmp_path / f"chain{chain}-out"
        proc = subprocess.Popen(
            _command(work, out, config_file), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            proc.wait(timeout=rng.uniform(0.05, 1.0) * duration)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            kills += 1
            continue
        assert proc.returncode == 0 and rows(out) == clean
        chain, finished_chains = chain + 1, finished_chains + 1
    run(f"chain{chain}")
    assert rows(tmp_path / f"chain{chain}-out") == clean
