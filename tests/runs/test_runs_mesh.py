"""The same run on 1 and on 8 (fake) devices gives the same rows; `--mesh` reaches the whole pipeline."""

import json

import numpy as np
import pytest

from rosu_jax.runs import cli, pipeline
from rosu_jax.runs.config import RunConfig, TrainRecipe
from rosu_jax.steps import MethodConfig

CONFIG = RunConfig(
    model_kwargs=(("widths", (8, 16)), ("hidden", 32)),
    scenarios=("classwise",),
    methods=("NegGrad+", "UAM", "ROSU"),
    train=TrainRecipe(epochs=4, batch_size=64),
    unlearn_epochs=1,
    method_configs=(("ROSU", MethodConfig(lr=0.05)), ("UAM", MethodConfig(lr=0.05))),
)


@pytest.mark.parametrize("mesh", ["data=8", "data=2,fsdp=4"])
def test_rows_on_a_mesh_match_one_device(tmp_path, mesh):
    single = pipeline.run_pipeline(CONFIG, work_dir=tmp_path / "one", progress=False)
    sharded = pipeline.run_pipeline(CONFIG.replace(mesh=mesh), work_dir=tmp_path / "mesh", progress=False)
    assert [r["method"] for r in single.rows] == [r["method"] for r in sharded.rows]
    for a, b in zip(single.rows, sharded.rows, strict=True):
        for key in ("UA", "RA", "TA"):
            assert abs(a[key] - b[key]) <= 0.2, (a["method"], key, a[key], b[key])
    kappa_one = np.asarray(single.histories["classwise/0/ROSU/lr=0.05 ρ=0.5 λ=0.05"]["coupling"])
    kappa_mesh = np.asarray(sharded.histories["classwise/0/ROSU/lr=0.05 ρ=0.5 λ=0.05"]["coupling"])
    np.testing.assert_allclose(kappa_mesh, kappa_one, atol=1e-3)


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
    code = cli.main(
        [
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
    )
    assert code == 0
    rows = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in rows} == {"Retrain", "Original", "ROSU"}
    assert len(sharded) == 3  # original, Retrain and the unlearning run all stepped on the mesh
