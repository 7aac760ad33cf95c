"""Smoke tests of the step benchmarks (step_cost, memory, scaling with the 8-fake-device part, end_to_end,
step_report): ``--quick`` runs into ``tmp_path``, checking only that records carry the required keys.

Subprocesses, as in ``test_benchmarks_smoke.py``: the benchmarks must not inherit the test suite's JAX settings
(8 fake devices, strict dtype promotion). Speed is never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
ENV_KEYS = {"benchmark", "case", "loadavg_1m", "jax", "jaxlib", "device_kind", "backend", "device_count"}
TIMING_KEYS = {"median_s", "p10_s", "p90_s", "iqr_s", "min_s", "repeats", "compile_s", "times_s"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_step_cost_quick(tmp_path: Path) -> None:
    out = tmp_path / "results" / "step_cost.jsonl"
    _run([str(BENCH / "step_cost.py"), "--quick", "--methods", "UAM,ROSU", "--out", str(out)])
    recs = {r["case"]: r for r in _records(out) if r["benchmark"] == "step_cost"}
    for case in ("small_cnn/digits/UAM", "small_cnn/digits/ROSU", "small_cnn/digits/projection"):
        assert not (ENV_KEYS | TIMING_KEYS) - recs[case].keys(), case
        assert recs[case]["median_s"] > 0
    assert recs["small_cnn/digits/ROSU"]["gradient_evaluations"] == 3
    ratios = recs["small_cnn/digits/ratios"]
    assert {
        "rosu_over_uam",
        "rosu_lagged_over_uam",
        "rosu_over_ft",
        "projection_share",
        "met",
        "targets",
        "shared_forward",
    } <= ratios.keys()
    assert ratios["shared_forward"] is False
    assert isinstance(ratios["met"]["rosu_over_uam"], bool) and ratios["met"]["rosu_lagged_over_uam"] is None
    mem = [r for r in _records(out) if r["benchmark"] == "step_memory" and r["method"] == "ROSU"][0]
    assert {
        "temp_bytes",
        "argument_bytes",
        "output_bytes",
        "alias_bytes",
        "peak_bytes",
        "extra_peak_bytes_over_uam",
        "param_bytes",
    } <= mem.keys()

    _run([str(BENCH / "step_report.py"), "--results", str(out.parent)])
    text = (out.parent / "STEPS.md").read_text()
    assert "ROSU/UAM" in text and "Memory of the compiled step" in text


def test_scaling_quick_with_fake_devices(tmp_path: Path) -> None:
    out = tmp_path / "scaling.jsonl"
    _run([str(BENCH / "scaling.py"), "--quick", "--mlp-hidden", "8", "--methods", "UAM,ROSU", "--out", str(out)])
    recs = {r["case"]: r for r in _records(out)}
    assert not (ENV_KEYS | TIMING_KEYS) - recs["mlp/h=8/ROSU"].keys()
    assert {"projection_share", "rosu_over_uam", "n_params"} <= recs["mlp/h=8/ratios"].keys()
    sharded = [r for r in recs.values() if r["benchmark"] == "sharded_step"]
    assert sharded, "the 8-fake-device part wrote nothing"
    for r in sharded:
        assert r["device_count"] == 8 and r["fake_devices"] is True
        assert r["correct"] is True and r["sharded_param_leaves"] > 0
        assert "fake CPU devices sharing" in r["device_note"]


def test_end_to_end_records(tmp_path: Path) -> None:
    out = tmp_path / "e2e.jsonl"
    fake_cli = f"{sys.executable} -c \"print('total wall time: 1.5 s')\""
    _run([str(BENCH / "end_to_end.py"), "--quick", "--cli", fake_cli, "--out", str(out)])
    (rec,) = _records(out)
    assert rec["benchmark"] == "end_to_end" and rec["returncode"] == 0
    assert rec["job_total_s"] == 1.5 and rec["wall_s"] > 0 and rec["fresh_cache"] is True
    assert not ENV_KEYS - rec.keys()


def test_end_to_end_subset_folder(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from end_to_end import subset_folder
    finally:
        sys.path.remove(str(BENCH))
    src = tmp_path / "src"
    for split in ("train", "test"):
        for cls in ("a", "b"):
            (src / split / cls).mkdir(parents=True)
            for i in range(4):
                (src / split / cls / f"{i}.jpg").write_bytes(b"x")
    dst = subset_folder(src, tmp_path / "dst", 2, 1)
    assert sorted(p.name for p in (dst / "train" / "a").iterdir()) == ["0.jpg", "1.jpg"]
    assert [p.name for p in (dst / "test" / "b").iterdir()] == ["0.jpg"]
