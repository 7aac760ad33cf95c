"""Wall time of ``rosu-unlearn`` in a subprocess (``wall_s``) beside the job's own total: 'default-cold' / '-warm' (a
fresh empty ``ROSU_JAX_CACHE``, then the same again; 3 pairs), 'tofu-*' / 'wmdp-*' (one pair each, with their rows),
'cifar10/...' (a shortened CIFAR-10 run on the JPEGs if found, with per-method ``seconds`` and ``rte_ratio``).

  python -m benchmarks.end_to_end --out benchmarks/results/end_to_end.jsonl
  python -m benchmarks.end_to_end --no-default --no-lm --out cifar.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import common

CIFAR_CONFIG = "experiments/cifar10_folder_small_cnn.py"
CIFAR_METHODS = ("FT", "UAM", "ROSU")  # class-wise, with these settings (recorded) on a subset:
SETTINGS = {"epochs": 2, "unlearn_epochs": 1, "subset": {"train_per_class": 1000, "test_per_class": 300}}
ROW_FIELDS = ("scenario", "method", "seed", "lr", "UA", "RA", "TA", "MIA", "avg_gap", "seconds", "compile_s",
              "rte_ratio")
LM_ROW_FIELDS = ("method", "variant", "seed", "forget_quality", "model_utility", "forget_accuracy",
                 "control_accuracy", "seconds", "status")


def run_job(command: list[str], cli_args: list[str], cache: Path, shown: tuple[tuple[str, str], ...] = ()) -> dict:
    """Run the job with ``ROSU_JAX_CACHE=cache``; the wall time, the job's own total and the load around it."""
    load_before = common.loadavg_1m()
    t0 = time.perf_counter()
    proc = subprocess.run([*command, *cli_args], env={**os.environ, "ROSU_JAX_CACHE": str(cache)}, cwd=common.REPO,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    total = re.search(r"total wall time: ([0-9.]+) s", proc.stdout)
    result = {"command": common.without_local_paths(shlex.join(["rosu-unlearn", *cli_args]), *shown),
              "returncode": proc.returncode, "wall_s": wall, "job_total_s": float(total.group(1)) if total else None,
              "loadavg_1m_before": load_before, "loadavg_1m": common.loadavg_1m()}
    if proc.returncode:
        result["stderr_tail"] = common.without_local_paths(proc.stderr[-1500:], *shown)
    common.progress(f"  {result['command']}: exit {proc.returncode}, {wall:.1f} s (load {result['loadavg_1m']})")
    return result


def default_cases(args, command, env, tmp: Path, task: str | None = None) -> None:
    """Cold/warm pairs of the default job (``task`` None) or of ``rosu-unlearn <task>``."""
    if task is None:
        cli_args = ["--scenario", "classwise", "--methods", "FT,ROSU", "--epochs", "1", "--unlearn-epochs", "1"] \
            if args.quick else []
        prefix, count = "quick" if args.quick else "default", 1 if args.quick else 3
    else:
        cli_args, prefix, count = [task], task, 1
    runs: dict[str, list[dict]] = {"cold": [], "warm": []}
    for i in range(count):
        cache = tmp / f"cache-{prefix}-{i}"  # fresh and empty: the cold run fills it, the warm run finds it
        for kind in ("cold", "warm"):
            common.progress(f"[{prefix}-{kind}] run {i + 1}/{count}")
            out = tmp / f"out-{prefix}-{i}-{kind}"
            result = run_job(command, [*cli_args, "--out", str(out)] if task else cli_args, cache,
                             ((str(tmp), "<tmp>"),))
            if task and (out / "results.json").exists():
                rows = json.loads((out / "results.json").read_text())["rows"]
                result["rows"] = [{k: row[k] for k in LM_ROW_FIELDS if k in row} for row in rows]
            runs[kind].append({k: v for k, v in result.items() if k != "command"})
        shutil.rmtree(cache, ignore_errors=True)
    for kind, results in runs.items():
        walls, totals, loads = ([r[k] for r in results if r[k] is not None]
                                for k in ("wall_s", "job_total_s", "loadavg_1m"))
        common.write_jsonl(args.out, common.record(
            "end_to_end", f"{prefix}-{kind}", env, command=shlex.join(["rosu-unlearn", *cli_args]), cache=kind,
            runs=results,
            wall_s_median=statistics.median(walls), wall_s_min=min(walls), wall_s_max=max(walls),
            job_total_s_median=statistics.median(totals) if totals else None,
            loadavg_1m=max(loads) if loads else None, returncode=max(r["returncode"] for r in results),
            note="fresh empty ROSU_JAX_CACHE" if kind == "cold" else "second run with the cold run's cache"))


def subset_folder(src: Path, dst: Path, train_per_class: int | None, test_per_class: int | None) -> Path:
    """``src``'s train/ and test/ class folders with the first N images of each class, as symlinks in ``dst``."""
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for class_dir in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
            (dst / split / class_dir.name).mkdir(parents=True, exist_ok=True)
            for image in images[:n] if n else images:
                (dst / split / class_dir.name / image.name).symlink_to(image)
    return dst


def cifar_case(args, command, env, tmp: Path) -> None:
    data = common.cifar10_dir(args.data_dir)
    if data is None:
        common.progress("[cifar10] skipped: no CIFAR-10 image folder (train/, test/); set CIFAR_DIR or --data-dir")
        return
    data = subset_folder(data, tmp / "cifar-subset", *SETTINGS["subset"].values())
    out_dir = tmp / "cifar-out"
    cli_args = ["--config", CIFAR_CONFIG, "--data-dir", str(data), "--out", str(out_dir), "--no-progress",
                "--epochs", str(SETTINGS["epochs"]), "--unlearn-epochs", str(SETTINGS["unlearn_epochs"]),
                "--methods", ",".join(CIFAR_METHODS), "--scenario", "classwise", "--work-dir", str(tmp / "cifar-work")]
    case = "cifar10/small_cnn/classwise"
    common.progress(f"[{case}]")
    result = run_job(command, cli_args, tmp / "cache-cifar", ((str(data), "$CIFAR_DIR"), (str(tmp), "<tmp>")))
    results_json = out_dir / "results.json"
    rows = [{k: row.get(k) for k in ROW_FIELDS} for row in
            (json.loads(results_json.read_text())["rows"] if results_json.exists() else [])]
    common.write_jsonl(args.out, common.record("end_to_end", case, env, **result, **SETTINGS, fresh_cache=True,
                                               methods=list(CIFAR_METHODS), config_file=CIFAR_CONFIG, rows=rows))
    for row in rows:
        common.write_jsonl(args.out, common.record("end_to_end", f"{case}/{row['method']}", env, **row, **SETTINGS,
                                                   parent_case=case))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/end_to_end.jsonl")
    parser.add_argument("--quick", action="store_true", help="one short cold/warm pair, no CIFAR run (smoke test)")
    parser.add_argument("--no-default", action="store_true", help="skip the default job")
    parser.add_argument("--no-lm", action="store_true", help="skip the tofu and wmdp defaults")
    parser.add_argument("--no-cifar", action="store_true", help="skip the CIFAR-10 run")
    parser.add_argument("--data-dir", help="CIFAR-10 image folder with train/ and test/ (default: $CIFAR_DIR)")
    parser.add_argument("--cli", help="command run in place of rosu-unlearn (smoke tests)")
    args = parser.parse_args(argv)
    installed = shutil.which("rosu-unlearn", path=str(Path(sys.executable).parent))
    command = shlex.split(args.cli) if args.cli else [installed] if installed else [
        sys.executable, "-c", "import sys; from rosu_jax.cli import main; sys.exit(main())"]
    env = common.environment()
    with tempfile.TemporaryDirectory(prefix="rosu-e2e-") as tmp:
        if not args.no_default:
            default_cases(args, command, env, Path(tmp))
        if not (args.no_lm or args.quick):
            for task in ("tofu", "wmdp"):
                default_cases(args, command, env, Path(tmp), task)
        if not (args.no_cifar or args.quick):
            cifar_case(args, command, env, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
