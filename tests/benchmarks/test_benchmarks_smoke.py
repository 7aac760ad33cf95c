"""Smoke test of the benchmark scripts: ``projection.py --quick`` and ``report.py`` into a temp dir.

Runs them as subprocesses (the benchmarks must not inherit the test suite's JAX settings: 8 fake devices,
strict dtype promotion). Checks only that records are written with the required keys; never speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"

REQUIRED_PROJECTION_KEYS = {
    "benchmark",
    "case",
    "layout",
    "dtype",
    "n_params",
    "n_leaves",
    "projection_median_s",
    "copy_median_s",
    "ratio",
    "spread",
    "compile_s",
    "minmax_median_s",
    "target_met",
    "copy_verified",
    "jax",
    "device_kind",
}


def _run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{args} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_projection_quick_and_report(tmp_path: Path) -> None:
    results = tmp_path / "results"
    out = results / "projection.jsonl"
    proc = _run([str(BENCH / "projection.py"), "--quick", "--out", str(out)], tmp_path)
    assert "ratio" in proc.stdout

    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(records) >= 3
    for rec in records:
        missing = REQUIRED_PROJECTION_KEYS - rec.keys()
        assert not missing, f"record {rec.get('case')} lacks {sorted(missing)}"
        assert rec["benchmark"] == "projection"
        assert rec["projection_median_s"] > 0 and rec["copy_median_s"] > 0
        assert rec["ratio"] == pytest.approx(rec["projection_median_s"] / rec["copy_median_s"])
        assert rec["copy_verified"] is True
    assert {r["layout"] for r in records} >= {"tree", "flat"}
    assert {r["dtype"] for r in records} >= {"float32", "bfloat16"}

    # a record of another benchmark kind gets a generic table without any registration
    (results / "other.jsonl").write_text(json.dumps({"benchmark": "memory", "case": "x", "peak_bytes": 12}) + "\n")
    report = results / "REPORT.md"
    _run([str(BENCH / "report.py"), "--results-dir", str(results), "--out", str(report)], tmp_path)
    text = report.read_text()
    assert "## projection" in text and "## memory" in text and "peak_bytes" in text
    assert "ratio <= 3" in text
    assert (results / "projection_cases.png").stat().st_size > 0
