"""``rosu-unlearn``: the main job. With no arguments it runs the embedded digits demo and prints two tables.

Examples:
  rosu-unlearn                                             # digits, small CNN, class-wise + random, all methods
  rosu-unlearn --out results/digits                        # ... and write results.json, results.md, PNG plots
  rosu-unlearn --dataset folder --data-dir ../shared/data/cifar10-jpeg --model small_cnn --epochs 15
  rosu-unlearn --config experiments/cifar10_classwise.py   # a paper setting (ResNet-18)
  rosu-unlearn --methods ROSU,UAM --lr-grid 0.005,0.01,0.02 --seeds 0,1,2
  rosu-unlearn --mesh data=2,fsdp=4                        # on a device mesh
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import os
import sys
import time
from pathlib import Path

from rosu_jax.runs.config import SCENARIOS, RunConfig, default_config


def _csv(kind):
    return lambda text: tuple(kind(x) for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rosu-unlearn", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--config", help="a Python file defining CONFIG = RunConfig(...) (see experiments/)")
    p.add_argument("--dataset", help="digits (default), folder, cifar10, cifar100 or tiny_imagenet")
    p.add_argument("--data-dir", help="dataset root (image folders: <root>/{train,test}/<class>/*.jpg)")
    p.add_argument("--model", help="small_cnn or resnet18")
    p.add_argument("--train-per-class", type=int, help="keep at most N training images per class (CPU budgets)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], help="compute dtype of the model (params stay float32)")
    p.add_argument("--scenario", choices=[*SCENARIOS, "both"], help="forgetting scenario (default both)")
    p.add_argument("--forget-class", type=int, help="class forgotten in class-wise forgetting (default 0)")
    p.add_argument("--forget-fraction", type=float, help="fraction forgotten in random forgetting (default 0.1)")
    p.add_argument("--methods", type=_csv(str), help="comma-separated subset of the methods (default all)")
    p.add_argument("--seeds", type=_csv(int), help="comma-separated seeds (default 0)")
    p.add_argument("--epochs", type=int, help="training epochs of the original model and Retrain")
    p.add_argument("--train-lr", type=float, help="training learning rate")
    p.add_argument("--batch-size", type=int, help="batch size for training and unlearning")
    p.add_argument("--augment", action="store_true", help="random crop + flip while training")
    p.add_argument("--unlearn-epochs", type=int, help="passes over the retain set per unlearning run")
    p.add_argument("--lr-grid", type=_csv(float), help="learning rates tried for every method")
    p.add_argument("--rho-grid", type=_csv(float), help="ρ values tried for UAM, UAM+λ and ROSU")
    p.add_argument("--amplification-grid", type=_csv(float), help="λ values tried for UAM+λ and ROSU")
    p.add_argument("--rho", type=float, help="ρ for UAM, UAM+λ and ROSU")
    p.add_argument("--amplification", type=float, help="λ for UAM+λ and ROSU")
    p.add_argument("--mesh", help="device mesh, e.g. data=8 or data=2,fsdp=4 (default: one device)")
    p.add_argument("--coordinator-address", help="multi-host: host:port of process 0 (jax.distributed)")
    p.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    p.add_argument("--process-id", type=int, help="multi-host: index of this process")
    p.add_argument(
        "--distributed-auto", action="store_true", help="multi-host: let JAX detect the cluster (TPU, SLURM)"
    )
    p.add_argument("--out", help="write results.json, results.md and PNG plots here")
    p.add_argument("--work-dir", help="checkpoints and finished rows (default ~/.cache/rosu_jax/runs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def load_config_file(path: str) -> RunConfig:
    spec = importlib.util.spec_from_file_location("rosu_experiment", path)
    if spec is None or not Path(path).exists():
        raise SystemExit(f"rosu-unlearn: config file {path!r} not found.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not isinstance(getattr(module, "CONFIG", None), RunConfig):
        raise SystemExit(f"rosu-unlearn: {path} must define CONFIG = RunConfig(...).")
    return module.CONFIG


def config_from_args(args: argparse.Namespace) -> RunConfig:
    config = load_config_file(args.config) if args.config else default_config()
    changes: dict = {}
    if args.dataset:
        changes["dataset"] = args.dataset
        if args.dataset != "digits" and not args.model and not args.config:
            changes["model"] = "resnet18"
        if args.dataset != "digits" and not args.config:
            changes["method_configs"] = ()  # digits-tuned learning rates do not transfer
    for name in (
        "data_dir",
        "model",
        "train_per_class",
        "forget_class",
        "forget_fraction",
        "methods",
        "seeds",
        "unlearn_epochs",
        "lr_grid",
        "rho_grid",
        "amplification_grid",
        "mesh",
    ):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.dtype:
        changes["model_kwargs"] = tuple(kv for kv in config.model_kwargs if kv[0] != "dtype") + (("dtype", args.dtype),)
    if args.scenario:
        changes["scenarios"] = SCENARIOS if args.scenario == "both" else (args.scenario,)
    if args.batch_size:
        changes["unlearn_batch_size"] = args.batch_size
    train = config.train
    train_changes = {
        k: v
        for k, v in {"epochs": args.epochs, "lr": args.train_lr, "batch_size": args.batch_size}.items()
        if v is not None
    }
    if args.augment:
        train_changes["augment"] = True
    if train_changes:
        changes["train"] = dataclasses.replace(train, **train_changes)
    config = config.replace(**changes)
    if args.rho is not None or args.amplification is not None:
        updated = []
        for name in config.methods:
            method_config = config.method_config(name)
            if name in ("UAM", "UAM+λ", "ROSU") and args.rho is not None:
                method_config = method_config.replace(rho=args.rho)
            if name in ("UAM+λ", "ROSU") and args.amplification is not None:
                method_config = method_config.replace(amplification=args.amplification)
            updated.append((name, method_config))
        config = config.replace(method_configs=tuple(updated))
    return config


def _enable_compilation_cache() -> None:
    import jax

    base = os.environ.get("ROSU_JAX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rosu_jax")
    jax.config.update("jax_compilation_cache_dir", os.path.join(base, "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ValueError, TypeError) as err:
        print(f"rosu-unlearn: {err}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    _enable_compilation_cache()
    if args.num_processes or args.distributed_auto:
        from rosu_jax.parallel import initialize

        initialize(args.coordinator_address, args.num_processes, args.process_id, auto_detect=args.distributed_auto)
    from rosu_jax.runs.pipeline import run_pipeline
    from rosu_jax.runs.report import markdown_tables, write_report

    log = (lambda s: None) if args.no_progress else (lambda s: print(s, file=sys.stderr))
    try:
        output = run_pipeline(config, work_dir=args.work_dir, progress=not args.no_progress, log=log)
    except (FileNotFoundError, ValueError, ImportError) as err:
        print(f"rosu-unlearn: {err}", file=sys.stderr)
        return 2
    import jax

    if jax.process_index() != 0:  # multi-host: one process reports
        return 0
    print(markdown_tables(output.rows))
    if args.out:
        written = write_report(args.out, output.rows, output.histories, config.to_dict())
        print("wrote " + ", ".join(str(p) for p in written))
    print(f"total wall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
