"""Evidence that holds: paired intervals and honest "best" marks, fair tuning on held-out data, the coupling
diagnosis, the relearning attack and sequential deletion requests (on digits)."""

import dataclasses
import json

import numpy as np
import pytest
from scipy import stats

from rosu_jax import cli
from rosu_jax.runs import pipeline
from rosu_jax.runs.config import RunConfig
from rosu_jax.runs.diagnose import diagnose, verdict
from rosu_jax.runs.report import TableSpec, comparisons, markdown_tables, selection, tables
from rosu_jax.runs.stats import paired_interval
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig, VisionTask

TINY = VisionConfig(
    model_kwargs=(("widths", (8, 16)), ("hidden", 32)),
    train=TrainingRecipe(epochs=4, batch_size=64),
    unlearn_epochs=1,
    scenarios=("classwise",),
)
SPEC = TableSpec.of(VisionTask(TINY))


def row(method, seed, gap, variant=None, status="ok", validation=None):
    r = {
        "dataset": "digits",
        "scenario": "classwise",
        "method": method,
        "seed": seed,
        "avg_gap": gap,
        "variant": variant,
        "status": status,
        "seconds": 1.0,
    }
    return r | ({"validation": {"avg_gap": validation}} if validation is not None else {})


def test_the_paired_interval_is_the_t_interval_of_the_differences():
    d = np.array([0.5, 1.5, 0.9, 1.2, 0.7])
    mean, low, high = paired_interval(d)
    half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
    assert (mean, low, high) == pytest.approx((d.mean(), d.mean() - half, d.mean() + half))
    assert paired_interval([1.0]) is None


def test_language_model_tables_pair_each_rosu_row_with_its_partners():
    from rosu_jax.tasks.wmdp.task import WmdpTask

    spec = TableSpec.of(WmdpTask.__new__(WmdpTask))
    assert spec.summary is None and spec.paired == ("forget_accuracy", "control_accuracy")

    def lm_row(method, seed, forget, control):
        return {"dataset": "synthetic", "scenario": "topics", "method": method, "seed": seed, "variant": None,
                "status": "ok", "seconds": 1.0, "forget_accuracy": forget, "control_accuracy": control}

    rows = [lm_row("Original", s, 80.0, 90.0) for s in range(4)]
    rows += [lm_row("RMU", s, 50.0 + s, 85.0) for s in range(4)]
    rows += [lm_row("ROSU-RMU", s, 40.0 + s + (0.5 if s % 2 else -0.5), 85.0 + (1.0 if s % 2 else -1.0))
             for s in range(4)]
    rows += [lm_row("UAM-RMU", s, 60.0, 88.0) for s in range(4)] + [lm_row("NPO", s, 70.0, 88.0) for s in range(4)]
    comp = comparisons(tables(rows, spec)[("synthetic", "topics")], spec)
    pairs = {(p["rosu"], p["versus"]): p["differences"] for p in comp["pairs"]}
    assert set(pairs) == {("ROSU-RMU", "RMU"), ("ROSU-RMU", "UAM-RMU")} and comp["seeds"] == 4
    mean, low, high = pairs["ROSU-RMU", "RMU"]["forget_accuracy"]  # differences -10.5, -9.5, -10.5, -9.5
    assert mean == pytest.approx(-10.0) and low < -10.0 < high < 0
    assert pairs["ROSU-RMU", "RMU"]["control_accuracy"][1] < 0 < pairs["ROSU-RMU", "RMU"]["control_accuracy"][2]
    md = markdown_tables(rows, spec)
    assert "| ROSU-RMU | RMU | **-10.00 [" in md and "| ROSU-RMU | UAM-RMU |" in md and "best" not in md
    one = markdown_tables([r for r in rows if r["seed"] == 0], spec)
    assert "One seed: no paired differences" in one and "| ROSU-RMU | RMU |" not in one


def test_best_is_marked_only_where_the_paired_intervals_support_it():
    clear = [row("ROSU", s, 1.0 + 0.01 * s) for s in range(5)] + [row("UAM", s, 3.0 + 0.02 * s) for s in range(5)]
    comp = comparisons(tables(clear, SPEC)[("digits", "classwise")], SPEC)
    assert comp["best"] == "ROSU" and comp["tied"] == []
    noisy = [row("ROSU", s, g) for s, g in enumerate([1.0, 3.0, 0.5, 2.5, 1.5])]
    noisy += [row("UAM", s, g) for s, g in enumerate([1.4, 1.0, 2.9, 1.6, 2.0])]
    comp = comparisons(tables(noisy, SPEC)[("digits", "classwise")], SPEC)
    assert comp["best"] is None and set(comp["tied"]) == {"ROSU", "UAM"}
    one_seed = markdown_tables([row("ROSU", 0, 1.0), row("UAM", 0, 2.0)], SPEC)
    assert "best" not in one_seed.split("One seed")[0] and "cannot rank" in one_seed
    # a diverged seed is left out of the means and the comparison
    diverged = clear + [row("UAM", 5, None, status="diverged")]
    table = markdown_tables(diverged, SPEC)
    assert "diverged 1/6" in table and "**(best)**" in table


def test_tuning_chooses_by_validation_never_by_the_reported_numbers():
    rows = [row("FT", s, gap, "lr=0.1", validation=5.0) for s, gap in enumerate([0.1, 0.1])]
    rows += [row("FT", s, gap, "lr=0.01", validation=1.0) for s, gap in enumerate([9.0, 9.0])]
    chosen = selection(rows, SPEC)["digits — classwise"]["FT"]
    assert chosen["chosen"] == "lr=0.01" and chosen["grid"] == ["lr=0.1", "lr=0.01"]
    assert "| FT | lr=0.01 |" in markdown_tables(rows, SPEC) and "lr=0.1 |" not in markdown_tables(rows, SPEC)


def test_tuned_runs_hold_out_validation_data_and_record_the_choice(tmp_path, capsys):
    out = tmp_path / "out"
    argv = [
        "--methods",
        "FT,ROSU",
        "--lr-grid",
        "0.03,0.1",
        "--tune",
        "--scenario",
        "classwise",
        "--epochs",
        "4",
        "--unlearn-epochs",
        "1",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    assert "Fair tuning: every method had 2 grid point(s)" in capsys.readouterr().out
    document = json.loads((out / "results.json").read_text())
    assert document["config"]["task"]["validation_fraction"] == 0.2
    picks = document["selection"]["digits — classwise"]
    assert set(picks) == {"FT", "ROSU"} and all(
        len(p["grid"]) == 2 and p["chosen"] in p["grid"] for p in picks.values()
    )
    method_rows = [r for r in document["rows"] if r["method"] in ("FT", "ROSU")]
    assert all(r["validation"]["avg_gap"] is not None for r in method_rows)
    assert any(r["validation"]["UA"] != r["UA"] or r["validation"]["RA"] != r["RA"] for r in method_rows)
    assert (
        cli.main(
            [
                *argv[:2],
                "--lr-grid",
                "0.03,0.1",
                "--rho-grid",
                "0.2,0.5",
                "--tune",
                "--work-dir",
                str(tmp_path / "work"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "same tuning budget" in capsys.readouterr().err


def test_the_diagnosis_measures_the_coupling_per_layer(tmp_path):
    report = diagnose(RunConfig(task=TINY), batches=3, work_dir=tmp_path, progress=False)
    classwise = report["scenarios"]["classwise"]
    assert -1 <= classwise["coupling"] <= 1 and len(classwise["coupling_per_batch"]) == 3
    assert set(classwise["per_layer"]) == {"conv0", "bn0", "conv1", "bn1", "fc1", "fc2"}
    kappa = classwise["coupling"]
    assert classwise["rosu_uam_distance"] == pytest.approx(0.5 * np.sqrt(2 - 2 * np.sqrt(1 - kappa**2)))
    assert classwise["uam_first_order_retain_change"] == pytest.approx(0.5 * classwise["retain_norm"] * kappa)
    assert "near-orthogonal" in verdict(0.05, 0.5) and "positive" in verdict(0.6, 0.5)
    assert (
        cli.main(
            [
                "diagnose",
                "--scenario",
                "classwise",
                "--set",
                'task.model_kwargs=[["widths",[8,16]]]',
                "--epochs",
                "4",
                "--batches",
                "2",
                "--work-dir",
                str(tmp_path / "cli"),
                "--no-progress",
                "--out",
                str(tmp_path / "diag"),
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "diag" / "diagnosis.json").read_text())["scenarios"]["classwise"]["verdict"]


def test_the_relearning_attack_records_how_fast_the_forget_accuracy_returns(tmp_path):
    config = RunConfig(task=TINY, methods=("GA", "ROSU"), relearn=(16, 8), overrides={"GA": {"lr": 1e-3}})
    out = pipeline.run_pipeline(config, work_dir=tmp_path, progress=False)
    for r in out.rows[2:]:
        curve = out.histories[f"classwise/0/{r['method']}/{r['variant']}"]
        assert curve["relearn_step"] == [0, 2, 4, 6, 8]
        assert curve["relearn_forget_score"][0] == pytest.approx(100.0 - r["UA"])  # step 0: the unlearned model
        assert r["relearn_forget_score"] == curve["relearn_forget_score"][-1]
        assert curve["relearn_forget_score"][-1] >= curve["relearn_forget_score"][0]  # fine-tuning on forget data


def test_sequential_requests_chain_and_score_against_retrain_on_everything_deleted(tmp_path):
    task = dataclasses.replace(TINY, scenarios=("sequential",), sequential_requests=3, sequential_fraction=0.05)
    out = pipeline.run_pipeline(RunConfig(task=task, methods=("FT",)), work_dir=tmp_path, progress=False)
    scenarios = [r["scenario"] for r in out.rows]
    assert scenarios.count("sequential 1/3") == scenarios.count("sequential 3/3") == 3  # Retrain, Original, FT
    ft = [r for r in out.rows if r["method"] == "FT"]
    assert [r["request"] for r in ft] == [1, 2, 3] and all(r["seconds"] > 0 for r in ft)
    setting = VisionTask(task)
    data = setting.load()
    requests = setting.setting(data, "sequential", 0).requests
    deleted = [len(r.split.evaluation["forget"][1]) for r in requests]
    new = [len(r.split.subsets["forget"][1]) for r in requests]
    assert deleted == [new[0], 2 * new[0], 3 * new[0]] and len(set(new)) == 1
    again = pipeline.run_pipeline(RunConfig(task=task, methods=("FT",)), work_dir=tmp_path, progress=False)
    assert [r["UA"] for r in again.rows] == [r["UA"] for r in out.rows]  # the chain comes back from the cache
