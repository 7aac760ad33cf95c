"""The fast-training benchmark (on the offline digits with --quick; skipped cleanly without CIFAR-10 images), the
speed-settings sweep's list and summary, and the peer's setting options (JAX half only)."""

from __future__ import annotations

from benchmarks import common, speed_settings, train_fast
from benchmarks.peer import __main__ as peer


def test_quick_training_record(tmp_path):
    out = tmp_path / "train_fast.jsonl"
    assert train_fast.main(["--quick", "--out", str(out)]) == 0
    (rec,) = common.read_jsonl(out)
    assert rec["benchmark"] == "train_fast" and rec["case"] == "cifar10_fast_resnet/quick"
    assert rec["model"] == "resnet_fast" and rec["epochs"] == 1 and rec["steps"] > 0
    assert 0.0 <= rec["test_accuracy"] <= 1.0 and rec["train_wall_s"] > 0 and len(rec["epoch_s"]) == 1
    assert len(rec["loadavg_1m_epochs"]) == 1 and set(rec["met"]) == {"test_accuracy", "train_wall_s"}
    assert rec["recipe"]["schedule"] == "cosine" and rec["recipe"]["augment"] is True


def test_skips_without_images(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(common, "cifar10_dir", lambda given=None: None)
    out = tmp_path / "train_fast.jsonl"
    assert train_fast.main(["--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "skipped" in said and "no folder of CIFAR-10 images in class sub-folders" in said and not out.exists()


def test_settings_list_and_unknown(capsys):
    assert speed_settings.main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in speed_settings.SETTINGS)
    try:
        speed_settings.main(["--only", "warp-drive"])
    except SystemExit as exc:
        assert exc.code == 2
    else:
        raise AssertionError("an unknown setting must be an error")


def test_peer_setting_options_and_summary(tmp_path):
    out = tmp_path / "peer.jsonl"
    args = ["--quick", "--no-torch", "--min-time", "0.01", "--settle", "0", "--allow-loaded", "--out", str(out)]
    assert peer.main([*args, "--dtype", "bfloat16", "--setting", "bf16-test"]) == 0
    (rec,) = common.read_jsonl(out)
    assert rec["setting"] == "bf16-test" and rec["dtype"] == "bfloat16" and rec["steps_per_s_median"] > 0
    lines = speed_settings.summary(out, ["bf16-test", "absent"])
    assert lines[2].startswith("| bf16-test | digits | 16 |") and "| 1 |" in lines[2]
    assert lines[3].startswith("| absent | - | - | - |")
