"""Smoke test of the PyTorch-peer benchmark: the JAX half only (the torch environment is optional, absent in CI)."""

import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH_DIR))

import common  # noqa: E402
import peer_torchunlearn  # noqa: E402


def test_peer_quick_jax_half_runs_and_skips_missing_torch(tmp_path, capsys):
    out = tmp_path / "peer.jsonl"
    missing = tmp_path / "no-such-env" / "bin" / "python"
    code = peer_torchunlearn.main(
        ["--quick", "--in-process", "--torch-python", str(missing), "--out", str(out), "--min-time", "0.01"]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "SKIP torch half" in printed and str(missing) in printed
    records = common.read_jsonl(out)
    cases = [r for r in records if r["record"] == "case"]
    assert cases and all(r["benchmark"] == "peer" and r["framework"] == "jax" for r in cases)
    for r in cases:
        assert r["steps_per_s_median"] > 0 and r["compile_s"] > 0
        assert r["gradient_evaluations"] == 2 and r["n_params"] > 0
        assert "loadavg_1m" in r and r["jax"] and "spread" in r
    assert not [r for r in records if r["record"] == "ratio"]  # no torch half, no ratio


def test_torch_side_unavailable_is_reported(tmp_path):
    ok, why = peer_torchunlearn.torch_available(str(tmp_path / "python"))
    assert not ok and "does not exist" in why
    assert peer_torchunlearn.torch_available(None)[0] is False
