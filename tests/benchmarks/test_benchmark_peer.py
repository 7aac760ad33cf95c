"""The peer benchmark's JAX half (the torch environment is optional and absent in CI) and its load rule, with the
load average faked through the driver's ``loadavg`` argument."""

from __future__ import annotations

import itertools

from benchmarks import common
from benchmarks.peer import __main__ as peer

QUICK = ["--quick", "--no-torch", "--min-time", "0.01", "--settle", "0"]


def test_refuses_a_loaded_machine(tmp_path, capsys):
    out = tmp_path / "peer.jsonl"
    assert peer.main([*QUICK, "--out", str(out)], loadavg=lambda: 99.0) == peer.REFUSED
    assert "REFUSED" in capsys.readouterr().out and not out.exists()


def test_allow_loaded_runs_and_marks_the_records(tmp_path):
    out = tmp_path / "peer.jsonl"
    assert peer.main([*QUICK, "--allow-loaded", "--out", str(out)], loadavg=lambda: 99.0) == 0
    (rec,) = common.read_jsonl(out)
    assert rec["record"] == "case" and rec["framework"] == "jax" and rec["method"] == "UAM"
    assert rec["loaded"] is True and rec["loadavg_1m_at_start"] == 99.0 and rec["load_limit"] >= 1
    assert rec["steps_per_s_median"] > 0 and rec["compile_s"] > 0 and rec["gradient_evaluations"] == 2


def test_waits_for_the_load_to_settle():
    readings = itertools.chain([9.0, 9.0, 0.5], itertools.repeat(0.5))
    assert peer.settled_load(lambda: next(readings), cpus=2, settle_s=60, poll_s=0) == 0.5
    assert peer.settled_load(lambda: 9.0, cpus=2, settle_s=0) == 9.0
    assert not common.too_loaded(2.0, 2) and common.too_loaded(2.1, 2) and not common.too_loaded(None, 2)


def test_missing_torch_environment_is_explained(tmp_path):
    ok, why = peer.torch_available(str(tmp_path / "python"))
    assert not ok and "does not exist" in why
    assert peer.torch_available(None) == (
        False,
        "no torch environment given (--torch-python or $TORCH_PYTHON; see --help)",
    )
