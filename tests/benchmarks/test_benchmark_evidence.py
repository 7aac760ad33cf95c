"""Smoke runs of the evidence benchmarks: the coupling study and the GPU vision rows (``--quick``, on this CPU)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from benchmarks import common, coupling_study, gpu_vision


@pytest.fixture
def image_folder(tmp_path):
    """A tiny folder of 32x32 images in 10 class sub-folders (train/ and test/), classes told apart by brightness."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 6)):
        for c in range(10):
            folder = tmp_path / "cifar" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray((rng.integers(0, 40, (32, 32, 3)) + 20 * c).astype(np.uint8)).save(folder / f"{i}.png")
    return tmp_path / "cifar"


def test_the_coupling_study_writes_records_a_table_and_plots(tmp_path):
    out = tmp_path / "study"
    assert coupling_study.main(["--quick", "--seeds", "0,1", "--out", str(out)]) == 0
    records = common.read_jsonl(out / "records.jsonl")
    methods = coupling_study.METHODS + coupling_study.REFERENCES
    assert {(r["scenario"], r["method"], r["seed"]) for r in records} == {
        (s, m, seed) for s in ("classwise", "random") for m in methods for seed in (0, 1)
    }
    for r in records:
        if r["method"] in coupling_study.REFERENCES:
            continue
        assert r["step_surrogate_increase"] and -1 <= r["coupling_at_original_running"] <= 1
        assert -1 <= r["coupling_at_original_batch"] <= 1
    study = (out / "STUDY.md").read_text()
    assert "## digits — classwise" in study and "ROSU − method [95% CI]" in study
    for png in ("surrogate_vs_coupling.png", "gap_vs_coupling.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_the_kappa_sweep_covers_fit_batch_size_and_batchnorm_mode(tmp_path):
    out = tmp_path / "sweep"
    assert coupling_study.main(["--quick", "--kappa-sweep", "--seeds", "0", "--out", str(out)]) == 0
    records = common.read_jsonl(out / "sweep.jsonl")
    keys = {(r["epochs"], r["batch_size"], r["forget_batchnorm"], r["scenario"]) for r in records}
    assert keys == {
        (e, b, m, s) for e in (1, 2) for b in (16, 64) for m in ("running", "batch") for s in ("classwise", "random")
    }
    assert all(-1 <= r["coupling"] <= 1 for r in records)
    # the BatchNorm mode changes the forget gradient, so κ differs between the modes at the same model and batches
    by_key = {(r["epochs"], r["batch_size"], r["forget_batchnorm"], r["scenario"]): r["coupling"] for r in records}
    assert by_key[(1, 64, "running", "classwise")] != by_key[(1, 64, "batch", "classwise")]
    sweep = (out / "SWEEP.md").read_text()
    assert sweep.count("\n| 1 | 16 |") == 2 and "κ classwise" in sweep
    assert (out / "kappa_sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_the_cifar_setting_shares_one_original_model_across_seeds(tmp_path, image_folder):
    out = tmp_path / "study"
    argv = ["--quick", "--settings", "cifar10", "--data-dir", str(image_folder), "--seeds", "0,1", "--out", str(out)]
    assert coupling_study.main(argv) == 0
    records = common.read_jsonl(out / "records.jsonl")
    original = {r["seed"]: r for r in records if r["method"] == "Original" and r["scenario"] == "random"}
    assert original[0]["RA"] == original[1]["RA"] and original[0]["TA"] == original[1]["TA"]
    assert "one original model and one Retrain per scenario (model seed 0" in (out / "STUDY.md").read_text()


def test_the_gpu_vision_rows_refuse_a_cpu_and_run_quick(tmp_path, capsys, image_folder):
    assert gpu_vision.main(["--out", str(tmp_path / "refused.jsonl")]) == 2
    assert "--allow-cpu" in capsys.readouterr().err
    out = tmp_path / "gpu-vision.jsonl"
    assert gpu_vision.main(["--quick", "--data-dir", str(image_folder), "--out", str(out)]) == 0
    rows = common.read_jsonl(out)
    assert {r["method"] for r in rows} >= {"UAM", "UAM+λ", "ROSU", "Retrain", "Original"}
    assert all(r["published_rosu_ra"] in (99.96, 99.84) for r in rows)
