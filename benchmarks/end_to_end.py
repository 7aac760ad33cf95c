"""End-to-end wall time: the main job, and one CIFAR-10 unlearning run on real images with the small CNN.

Each run is ``rosu-unlearn`` started as a subprocess with a fresh, empty ``ROSU_JAX_CACHE`` (and work dir), so
nothing is cached: no compiled executables, no decoded images, no checkpoints, no finished rows.

  case='digits/default'   ``rosu-unlearn`` with no arguments (the embedded digits demo: both scenarios, every
                          method); records the wall time seen from outside and the job's own total.
  case='cifar10/...'      ``rosu-unlearn --config experiments/cifar10_folder_small_cnn.py --data-dir DIR`` with
                          fewer epochs (--epochs, --unlearn-epochs), a subset of methods and scenarios, and
                          optionally a per-class subset of the images (symlinks in a temporary folder); records
                          the wall time and, per method, the pipeline's 'seconds' and 'rte_ratio' (run time over
                          Retrain's), plus UA/RA/TA/MIA so the cost can be read next to the outcome.

Usage:
  python benchmarks/end_to_end.py --out benchmarks/results/end_to_end.jsonl
  python benchmarks/end_to_end.py --no-digits --data-dir /work/shared/data/cifar10-jpeg --epochs 3 ...
  python benchmarks/end_to_end.py --quick --out /tmp/e.jsonl       # smoke test (a tiny digits run)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402
import stepbench as sb  # noqa: E402

BENCHMARK = "end_to_end"
DEFAULT_DATA = "/work/shared/data/cifar10-jpeg"
CIFAR_CONFIG = REPO / "experiments" / "cifar10_folder_small_cnn.py"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


CLI_OVERRIDE: list[str] | None = None  # --cli: another command in place of rosu-unlearn (smoke tests)


def cli_command() -> list[str]:
    if CLI_OVERRIDE:
        return list(CLI_OVERRIDE)
    exe = shutil.which("rosu-unlearn", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "rosu_jax.runs.cli"]


def run_job(args_list: list[str], cache: Path, log_path: Path | None = None) -> dict:
    env = dict(os.environ)
    env["ROSU_JAX_CACHE"] = str(cache)
    cmd = [*cli_command(), *args_list]
    common.progress("$ ROSU_JAX_CACHE=" + str(cache) + " " + " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, cwd=str(REPO))
    wall = time.perf_counter() - t0
    if log_path is not None:
        log_path.write_text(proc.stdout + "\n--- stderr ---\n" + proc.stderr)
    match = re.search(r"total wall time: ([0-9.]+) s", proc.stdout)
    return {
        "command": "rosu-unlearn " + " ".join(args_list),
        "returncode": proc.returncode,
        "wall_s": wall,
        "job_total_s": float(match.group(1)) if match else None,
        "stdout_tail": proc.stdout[-3000:],
        "stderr_tail": proc.stderr[-1500:] if proc.returncode else "",
    }


def subset_folder(src: Path, dst: Path, train_per_class: int | None, test_per_class: int | None) -> Path:
    """A copy of ``src``'s train/test/<class>/ tree with the first N images of each class, as symlinks."""
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for class_dir in sorted(p for p in (src / split).iterdir() if p.is_dir()):
            files = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            out = dst / split / class_dir.name
            out.mkdir(parents=True, exist_ok=True)
            for f in files[:n] if n else files:
                (out / f.name).symlink_to(f)
    return dst


def digits_case(args, env, tmp: Path) -> None:
    cli_args = ["--no-progress"]
    if args.quick:  # a smoke run: one scenario, two methods, 1 epoch
        cli_args += ["--scenario", "classwise", "--methods", "FT,ROSU", "--epochs", "1", "--unlearn-epochs", "1"]
    cache = tmp / "cache-digits"
    result = run_job(cli_args, cache)
    rec = sb.record_base(BENCHMARK, "digits/default" if not args.quick else "digits/quick", env)
    rec.update(result, fresh_cache=True, note="rosu-unlearn with no arguments: embedded digits demo, small CNN, "
               "class-wise + random forgetting, every method" if not args.quick else "smoke run")
    common.write_jsonl(args.out, rec)
    common.progress(f"[{rec['case']}] rc {result['returncode']} wall {result['wall_s']:.1f} s "
                    f"(job's own total {result['job_total_s']})")


def cifar_case(args, env, tmp: Path) -> None:
    data = Path(args.data_dir)
    if not (data / "train").is_dir():
        common.progress(f"[cifar10] skipped: no {data}/train")
        return
    subset = None
    if args.train_per_class or args.test_per_class:
        data = subset_folder(data, tmp / "cifar-subset", args.train_per_class, args.test_per_class)
        subset = {"train_per_class": args.train_per_class, "test_per_class": args.test_per_class}
    out_dir = tmp / "cifar-out"
    cli_args = ["--config", str(CIFAR_CONFIG), "--data-dir", str(data), "--out", str(out_dir), "--no-progress",
                "--epochs", str(args.epochs), "--unlearn-epochs", str(args.unlearn_epochs),
                "--methods", args.methods, "--scenario", args.scenario, "--work-dir", str(tmp / "cifar-work")]
    log_path = Path(args.out).with_suffix(".cifar10.log") if args.keep_log else None
    result = run_job(cli_args, tmp / "cache-cifar", log_path)
    rows = []
    results_json = out_dir / "results.json"
    if results_json.exists():
        rows = json.loads(results_json.read_text())
    case = f"cifar10/small_cnn/{args.scenario}"
    rec = sb.record_base(BENCHMARK, case, env)
    rec.update(result, fresh_cache=True, data_dir=str(args.data_dir), subset=subset, epochs=args.epochs,
               unlearn_epochs=args.unlearn_epochs, methods=args.methods.split(","), scenario=args.scenario,
               config_file=str(CIFAR_CONFIG.relative_to(REPO)))
    keep = ("scenario", "method", "seed", "lr", "UA", "RA", "TA", "MIA", "avg_gap", "seconds", "rte_ratio")
    rec["rows"] = [{k: r.get(k) for k in keep} for r in rows]
    common.write_jsonl(args.out, rec)
    common.progress(f"[{case}] rc {result['returncode']} wall {result['wall_s']:.1f} s")
    for r in rec["rows"]:
        sub = sb.record_base(BENCHMARK, f"{case}/{r['method']}", env)
        sub.update(r, parent_case=case, epochs=args.epochs, unlearn_epochs=args.unlearn_epochs, subset=subset)
        common.write_jsonl(args.out, sub)
        common.progress(f"  {r['method']:>10}: {r['seconds']:.1f} s  RTE/Retrain {r['rte_ratio']:.3f}  "
                        f"UA {r['UA']:.1f} RA {r['RA']:.1f} TA {r['TA']:.1f} MIA {r['MIA']:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/end_to_end.jsonl")
    parser.add_argument("--quick", action="store_true", help="a tiny digits run only (smoke test)")
    parser.add_argument("--no-digits", action="store_true", help="skip the main job (rosu-unlearn, no args)")
    parser.add_argument("--no-cifar", action="store_true", help="skip the CIFAR-10 run")
    parser.add_argument("--data-dir", default=DEFAULT_DATA, help="CIFAR-10 image folder (train/, test/)")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs (original model and Retrain)")
    parser.add_argument("--unlearn-epochs", type=int, default=1)
    parser.add_argument("--methods", default="FT,UAM,ROSU")
    parser.add_argument("--scenario", default="classwise", choices=["classwise", "random", "both"])
    parser.add_argument("--train-per-class", type=int, default=None, help="use only N train images per class")
    parser.add_argument("--test-per-class", type=int, default=None, help="use only N test images per class")
    parser.add_argument("--keep-log", action="store_true", help="write the CIFAR job's output next to --out")
    parser.add_argument("--cli", default=None, help="command to run instead of rosu-unlearn (for smoke tests)")
    args = parser.parse_args(argv)
    global CLI_OVERRIDE
    if args.cli:
        import shlex

        CLI_OVERRIDE = shlex.split(args.cli)
    env = common.environment()
    with tempfile.TemporaryDirectory(prefix="rosu-e2e-") as tmp:
        if not args.no_digits:
            digits_case(args, env, Path(tmp))
        if not args.no_cifar and not args.quick:
            cifar_case(args, env, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
