"""Smoke runs of every benchmark with ``--quick`` into a temporary folder, and the report built from their records.

In this process (the test suite's 8 fake CPU devices serve the sharded part of ``scaling``). Only the records'
fields are checked, never a speed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks import ablation_lambda, common, end_to_end, projection, report, scaling, step_cost

TIMING = {"median_s", "p10_s", "p90_s", "iqr_s", "min_s", "repeats", "compile_s", "times_s"}
ENVIRONMENT = set(common.ENV_KEYS) | {"benchmark", "case"}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert projection.main(["--quick", "--out", str(out / "projection.jsonl")]) == 0
    assert projection.main(["--quick", "--scaling", "--out", str(out / "projection_scaling.jsonl")]) == 0
    assert step_cost.main(["--quick", "--methods", "UAM,ROSU,ROSU-lagged", "--out", str(out / "step_cost.jsonl")]) == 0
    assert (
        scaling.main(
            [
                "--quick",
                "--mlp-hidden",
                "8",
                "--methods",
                "UAM,ROSU",
                "--no-sharded",
                "--out",
                str(out / "scaling.jsonl"),
            ]
        )
        == 0
    )
    assert scaling.main(["--quick", "--sharded-child", "--out", str(out / "scaling.jsonl")]) == 0
    fake_job = f"{sys.executable} -c \"print('total wall time: 1.5 s')\""
    assert end_to_end.main(["--quick", "--cli", fake_job, "--out", str(out / "end_to_end.jsonl")]) == 0
    assert ablation_lambda.main(["--quick", "--seeds", "0,1", "--out", str(out / "ablation.jsonl")]) == 0
    return out


def records(path, kind=None):
    return {r["case"]: r for r in common.read_jsonl(path) if kind in (None, r["benchmark"])}


def test_projection_records(results):
    for name in ("projection", "projection_scaling"):
        recs = records(results / f"{name}.jsonl")
        assert recs and all(r["copy_verified"] is True and r["projection_median_s"] > 0 for r in recs.values())
        assert all(r["ratio"] == pytest.approx(r["projection_median_s"] / r["copy_median_s"]) for r in recs.values())
    assert {r["dtype"] for r in records(results / "projection.jsonl").values()} == {"float32", "bfloat16"}


def test_step_cost_records(results, tmp_path):
    recs = records(results / "step_cost.jsonl", "step_cost")
    for method, gradients in (("UAM", 2), ("ROSU", 3), ("ROSU-lagged", 2)):
        rec = recs[f"small_cnn/digits/{method}"]
        assert not (ENVIRONMENT | TIMING) - rec.keys() and rec["gradient_evaluations"] == gradients
    ratios = recs["small_cnn/digits/ratios"]
    assert ratios["met"]["rosu_over_uam"] in (True, False) and ratios["met"]["rosu_lagged_over_uam"] in (True, False)
    assert ratios["shared_forward"] is False and ratios["paired_ratios"]["rosu_over_uam"]["p90"] > 0
    memory = records(results / "step_cost.jsonl", "step_memory")["small_cnn/digits/ROSU"]
    assert memory["peak_bytes"] > 0 and "extra_peak_over_uam_param_trees" in memory

    out = tmp_path / "memory.jsonl"
    assert step_cost.main(["--quick", "--memory-only", "--methods", "ROSU", "--out", str(out)]) == 0
    assert {r["benchmark"] for r in records(out).values()} == {"step_memory"}


def test_scaling_records(results):
    recs = records(results / "scaling.jsonl")
    assert not TIMING - recs["mlp/h=8/ROSU"].keys()
    assert recs["mlp/h=8/ratios"]["projection_ns_per_param"] > 0
    (sharded,) = [r for r in recs.values() if r["benchmark"] == "sharded_step"]
    assert sharded["device_count"] == 8 and sharded["correct"] is True and sharded["sharded_param_leaves"] > 0


def test_end_to_end_records(results):
    recs = records(results / "end_to_end.jsonl")
    assert set(recs) == {"quick-cold", "quick-warm"}
    for rec in recs.values():
        assert rec["returncode"] == 0 and rec["job_total_s_median"] == 1.5 and len(rec["runs"]) == 1
        assert rec["runs"][0]["wall_s"] > 0 and "loadavg_1m" in rec["runs"][0]


def test_end_to_end_without_cifar_data_skips(tmp_path, capsys):
    out = tmp_path / "e2e.jsonl"
    argv = ["--no-default", "--no-lm", "--data-dir", str(tmp_path / "absent"), "--out", str(out)]
    assert end_to_end.main(argv) == 0
    assert "skipped: no CIFAR-10 image folder" in capsys.readouterr().out and not out.exists()


FAKE_LM_JOB = """
import json, pathlib, sys
out = pathlib.Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True)
rows = [{"method": "Retrain", "forget_quality": 1.0, "model_utility": 0.75, "seconds": 3.0, "task": sys.argv[1]}]
(out / "results.json").write_text(json.dumps({"rows": rows}))
print("total wall time: 2.0 s")
"""


def test_end_to_end_language_model_defaults_record_their_rows(tmp_path):
    (tmp_path / "job.py").write_text(FAKE_LM_JOB)
    out = tmp_path / "results" / "end_to_end.jsonl"
    argv = ["--no-default", "--no-cifar", "--cli", f"{sys.executable} {tmp_path / 'job.py'}", "--out", str(out)]
    assert end_to_end.main(argv) == 0
    recs = records(out)
    assert set(recs) == {"tofu-cold", "tofu-warm", "wmdp-cold", "wmdp-warm"}
    assert recs["tofu-cold"]["command"] == "rosu-unlearn tofu" and recs["wmdp-warm"]["job_total_s_median"] == 2.0
    assert recs["tofu-cold"]["runs"][0]["rows"] == [
        {"method": "Retrain", "forget_quality": 1.0, "model_utility": 0.75, "seconds": 3.0}
    ]
    report.build_reports(out.parent)
    text = (out.parent / "STEPS.md").read_text()
    assert "Rows of `rosu-unlearn wmdp` (its last cold run):" in text
    assert "| Retrain | 1 | 0.750 | - | - | 3.0 |" in text


def test_subset_folder(tmp_path):
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (tmp_path / "src" / split / cls).mkdir(parents=True)
            for i in range(3):
                (tmp_path / "src" / split / cls / f"{i}.jpg").write_bytes(b"x")
    dst = end_to_end.subset_folder(tmp_path / "src", tmp_path / "dst", 2, 1)
    assert sorted(p.name for p in (dst / "train" / "a").iterdir()) == ["0.jpg", "1.jpg"]
    assert [p.name for p in (dst / "test" / "b").iterdir()] == ["0.jpg"]


def test_ablation_records(results):
    recs = records(results / "ablation.jsonl")
    assert {r["method"] for r in recs.values()} == {"ROSU", "UAM+λ"}
    assert all(r["amplification"] == 0.05 and r["UA"] is not None for r in recs.values())


def test_report(results):
    loaded = {"benchmark": "peer", "case": "x/jax/UAM", "record": "case", "loaded": True, "steps_per_s_median": 1.0}
    (results / "peer.jsonl").write_text(json.dumps(loaded) + "\n")
    assert report.main(["--results", str(results)]) == 0
    text = (results / "REPORT.md").read_text()
    for section in (
        "## projection",
        "## step_cost",
        "## step_memory",
        "## step_scaling",
        "## sharded_step",
        "## end_to_end",
        "## ablation",
        "## peer",
        "ratio <= 3",
    ):
        assert section in text
    assert "**LOADED" in text
    steps = (results / "STEPS.md").read_text()
    for section in (
        "ROSU/UAM",
        "Memory of the compiled step",
        "Step time vs parameter count",
        "Sharded step",
        "quick-warm",
    ):
        assert section in steps
    for png in ("projection_scaling", "projection_cases", "steps_per_s-cpu", "step_scaling"):
        assert (results / f"{png}.png").stat().st_size > 0


def test_scripts_run_as_modules():
    """``python -m benchmarks.<script>``: importable from the repository root, no sys.path edits."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.report", "--help"],
        cwd=common.REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "REPORT.md" in proc.stdout
