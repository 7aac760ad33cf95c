"""The language-model step benchmark: a ``--quick`` run (tiny decoder, CPU) records every method with every
parameter and with LoRA adapters trainable, the report renders them, and the full size refuses a CPU backend.

Only the records' fields are checked, never a speed (about 25 s on 2 shared cores).
"""

from __future__ import annotations

import math

import jax
import pytest

from benchmarks import common, lm_steps, report

GRADIENTS = {"FT": 1, "UAM": 2, "ROSU": 3, "ROSU-lagged": 2, "GradDiff": 2, "NPO": 2, "RMU": 2, "ROSU-RMU": 4}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    assert lm_steps.main(["--quick", "--out", str(out / "lm_steps.jsonl")]) == 0
    return out


def finite(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def test_every_method_is_recorded_with_finite_times_and_ratios(results):
    recs = {r["case"]: r for r in common.read_jsonl(results / "lm_steps.jsonl")}
    assert set(recs) == {f"{g}/{m}" for g in ("full", "lora") for m in [*GRADIENTS, "ratios"]}
    for group in ("full", "lora"):
        for method, gradients in GRADIENTS.items():
            rec = recs[f"{group}/{method}"]
            assert rec["gradient_evaluations"] == gradients and rec["backend"] == "cpu" and rec["mfu"] is None
            assert rec["model_flops_per_step"] == 6 * rec["n_params"] * rec["batch_size"] * rec["seq_len"] * gradients
            for key in (
                "median_s",
                "p10_s",
                "p90_s",
                "compile_s",
                "step_ms",
                "tokens_per_s",
                "mfu_over_ft",
                "ratio_to_uam",
                "peak_gib",
            ):
                assert finite(rec[key]) and rec[key] > 0, (rec["case"], key)
        ratios = recs[f"{group}/ratios"]
        assert finite(ratios["rosu_over_uam"]) and finite(ratios["rosu_lagged_over_uam"])
        assert set(ratios["met"].values()) <= {True, False} and ratios["not_run"] == {}
        assert recs[f"{group}/UAM"]["ratio_to_uam"] == 1.0 and recs[f"{group}/FT"]["mfu_over_ft"] == 1.0
    full, lora = recs["full/ROSU"], recs["lora/ROSU"]
    assert full["n_trainable"] == full["n_params"] and full["frozen_bytes"] == 0
    assert 0 < lora["n_trainable"] < lora["n_params"] and lora["frozen_bytes"] > 0 and lora["trainable"] == "LoRA r=16"


def test_the_report_renders_the_records_and_says_no_gpu_record_exists(results, tmp_path):
    report.build_reports(results)
    text = (results / "REPORT.md").read_text()
    assert "### full (cpu)" in text and "### lora (cpu)" in text and "No GPU record exists yet" in text
    assert "| ROSU-lagged | 16,384 (LoRA r=16) | 2 |" in text and "rosu_over_uam <= 1.5" in text
    assert "| RMU | 16,384 (LoRA r=16) | 2 |" in text and "| ROSU-RMU | 16,384 (LoRA r=16) | 4 |" in text
    report.build_reports(tmp_path)  # no record at all: the section says so
    assert "No GPU record exists yet**: `benchmarks/lm_steps.py`" in (tmp_path / "REPORT.md").read_text()


def test_a_spent_budget_starts_nothing_and_says_so(tmp_path):
    out = tmp_path / "lm_steps.jsonl"
    assert lm_steps.main(["--quick", "--budget-s", "0", "--out", str(out)]) == 0
    recs = common.read_jsonl(out)
    assert [r["case"] for r in recs] == ["full/ratios", "lora/ratios"]
    assert all(r["not_run"] == dict.fromkeys(GRADIENTS, "budget") for r in recs)


def test_a_method_out_of_device_memory_is_recorded_as_not_run(tmp_path, monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: Out of memory allocating 1 bytes.")

    monkeypatch.setattr(common, "compile_fn", out_of_memory)
    out = tmp_path / "lm_steps.jsonl"
    assert lm_steps.main(["--quick", "--no-lora", "--methods", "UAM,ROSU", "--out", str(out)]) == 0
    (ratios,) = common.read_jsonl(out)
    assert ratios["case"] == "full/ratios" and ratios["met"] == {"rosu_over_uam": None, "rosu_lagged_over_uam": None}
    assert [why[:13] for why in ratios["not_run"].values()] == ["out of memory"] * 2


def test_the_full_size_refuses_a_cpu_backend(tmp_path, capsys):
    out = tmp_path / "lm_steps.jsonl"
    assert lm_steps.main(["--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("device: ") and "--allow-cpu" in captured.err and not out.exists()
