"""The same run on 1 and on 8 (fake) devices gives the same rows; `--mesh` reaches the whole pipeline."""

import json

import numpy as np
import pytest

from rosu_jax import cli
from rosu_jax.runs import pipeline
from rosu_jax.runs.config import RunConfig
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig

CONFIG = RunConfig(
    task=VisionConfig(
        model_kwargs=(("widths", (8, 16)), ("hidden", 32)),
        scenarios=("classwise",),
        train=TrainingRecipe(epochs=4, batch_size=64),
        unlearn_epochs=1,
    ),
    methods=("NegGrad+", "UAM", "ROSU"),
    overrides={"ROSU": {"lr": 0.05}, "UAM": {"lr": 0.05}},
)
# Float reassociation in the cross-device sums (~1e-7) is amplified step after step (a 20-step run ends with
# |Δκ| up to ~1e-3): the early steps must agree closely, the rows to a fraction of a point.
EARLY_STEPS = 8


@pytest.mark.parametrize("mesh", ["data=8", "data=2,fsdp=4"])
def test_rows_on_a_mesh_match_one_device(tmp_path, mesh):
    single = pipeline.run_pipeline(CONFIG, work_dir=tmp_path / "one", progress=False)
    sharded = pipeline.run_pipeline(CONFIG.replace(mesh=mesh), work_dir=tmp_path / "mesh", progress=False)
    assert [r["method"] for r in single.rows] == [r["method"] for r in sharded.rows]
    for a, b in zip(single.rows, sharded.rows, strict=True):
        for key in ("UA", "RA", "TA"):
            assert abs(a[key] - b[key]) <= 0.2, (a["method"], key, a[key], b[key])
    key = "classwise/0/ROSU/lr=0.05 ρ=0.5 λ=0.05"
    kappa_one = np.asarray(single.histories[key]["coupling"])
    kappa_mesh = np.asarray(sharded.histories[key]["coupling"])
    assert len(kappa_one) == len(kappa_mesh) > EARLY_STEPS
    np.testing.assert_allclose(kappa_mesh[:EARLY_STEPS], kappa_one[:EARLY_STEPS], atol=1e-4)


def test_cli_mesh_option_and_bad_mesh(tmp_path, capsys, monkeypatch):
    code = cli.main(["--mesh", "data=3", "--epochs", "1", "--work-dir", str(tmp_path), "--no-progress"])
    assert code == 2
    assert "8" in capsys.readouterr().err
    from rosu_jax.runs import train, unlearn

    sharded = []
    for module in (train, unlearn):
        real = module.sharded_step
        monkeypatch.setattr(module, "sharded_step", lambda *a, _real=real, **k: sharded.append(1) or _real(*a, **k))
    out = tmp_path / "out"
    argv = [
        "--mesh",
        "data=8",
        "--methods",
        "ROSU",
        "--scenario",
        "random",
        "--epochs",
        "2",
        "--unlearn-epochs",
        "1",
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path),
        "--no-progress",
    ]
    assert cli.main(argv) == 0
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["method"] for r in rows} == {"Retrain", "Original", "ROSU"}
    assert len(sharded) == 3  # original, Retrain and the unlearning run all stepped on the mesh
