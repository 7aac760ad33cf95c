"""Smoke runs of the evidence benchmarks: the coupling study and the GPU vision rows (``--quick``, on this CPU)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from benchmarks import common, coupling_study, gpu_vision


def test_the_coupling_study_writes_records_a_table_and_plots(tmp_path):
    out = tmp_path / "study"
    assert coupling_study.main(["--quick", "--seeds", "0,1", "--out", str(out)]) == 0
    records = common.read_jsonl(out / "records.jsonl")
    assert {(r["scenario"], r["method"], r["seed"]) for r in records} == {
        (s, m, seed) for s in ("classwise", "random") for m in coupling_study.METHODS for seed in (0, 1)
    }
    for r in records:
        assert r["step_surrogate_increase"] and -1 <= r["coupling_at_original_running"] <= 1
        assert -1 <= r["coupling_at_original_batch"] <= 1
    study = (out / "STUDY.md").read_text()
    assert "## digits — classwise" in study and "ROSU − method [95% CI]" in study
    for png in ("surrogate_vs_coupling.png", "gap_vs_coupling.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


def test_the_gpu_vision_rows_refuse_a_cpu_and_run_quick(tmp_path, capsys):
    assert gpu_vision.main(["--out", str(tmp_path / "refused.jsonl")]) == 2
    assert "--allow-cpu" in capsys.readouterr().err
    rng = np.random.default_rng(0)
    for split, n in (("train", 24), ("test", 6)):
        for c in range(10):
            folder = tmp_path / "cifar" / split / f"class{c}"
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray((rng.integers(0, 40, (32, 32, 3)) + 20 * c).astype(np.uint8)).save(folder / f"{i}.png")
    out = tmp_path / "gpu-vision.jsonl"
    assert gpu_vision.main(["--quick", "--data-dir", str(tmp_path / "cifar"), "--out", str(out)]) == 0
    rows = common.read_jsonl(out)
    assert {r["method"] for r in rows} >= {"UAM", "UAM+λ", "ROSU", "Retrain", "Original"}
    assert all(r["published_rosu_ra"] in (99.96, 99.84) for r in rows)
