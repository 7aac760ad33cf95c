"""Run one task from the command line: parse the common, method and task flags, check everything, run, report."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
import time
from pathlib import Path

from rosu_jax.methods import methods
from rosu_jax.runs.config import ALL_METHODS, RunConfig, parse_assignment

COMMON_HELP = "common flags"
DEFAULT_VALIDATION_FRACTION = 0.2  # what --tune holds out for choosing, when the task config holds out nothing


def _csv(kind, what: str):
    def parse(text: str):
        try:
            values = tuple(kind(x) for x in text.split(",") if x.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got an empty list")
        return values

    return parse


def grid_fields() -> dict[str, tuple[str, list[str]]]:
    """Every grid-able hyperparameter of the registry: name -> (meaning, methods that declare it)."""
    fields: dict[str, tuple[str, list[str]]] = {}
    for method in methods().values():
        for field in method.fields():
            if field.metadata.get("grid"):
                meaning, owners = fields.setdefault(field.name, (field.metadata["meaning"], []))
                owners.append(method.name)
    return fields


def build_parser(name: str, module, commands: dict) -> argparse.ArgumentParser:
    from rosu_jax.cli import _subcommand_help

    prog = "rosu-unlearn" if name == "vision" else f"rosu-unlearn {name}"
    epilog = module.EXAMPLES + ("\n" + _subcommand_help(commands) if name == "vision" else "")
    p = argparse.ArgumentParser(
        prog=prog, description=module.SUMMARY, epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    c = p.add_argument_group(COMMON_HELP)
    c.add_argument("--config", help="a Python file defining CONFIG = RunConfig(...) (see experiments/)")
    c.add_argument("--methods", type=_csv(str, "method names"), help="comma-separated methods (default: the task's)")
    c.add_argument("--seeds", type=_csv(int, "integers"), help="comma-separated seeds (default 0)")
    c.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="TARGET.NAME=VALUE",
        help="set a hyperparameter or setting, e.g. ROSU.rho=0.2, '*.lr=0.01', train.epochs=3",
    )
    c.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="[METHOD.]NAME=V1,V2",
        help="values tried for a grid-able hyperparameter (one row each; grids multiply)",
    )
    c.add_argument(
        "--tune",
        action="store_true",
        help="fair tuning: the same number of grid points per method, "
        "each method's variant chosen on held-out validation data (never on the reported numbers)",
    )
    c.add_argument(
        "--relearn",
        type=_csv(int, "integers"),
        metavar="K,N",
        help="relearning attack: fine-tune on K "
        "forget examples for N steps after unlearning and record how fast the forget score comes back",
    )
    c.add_argument("--mesh", help="device mesh, e.g. data=8 or data=2,fsdp=4 (default: one device)")
    c.add_argument("--out", help="write results.json, results.md and PNG plots into this (new or report) folder")
    c.add_argument("--work-dir", help="checkpoints and finished rows (default ~/.cache/rosu_jax/runs)")
    c.add_argument(
        "--save-models",
        metavar="DIR",
        help="also save every model trained here into DIR/<scenario>/seed<s>/<method>-<variant> (and "
        "DIR/Original/seed<s>): language models as Hugging Face checkpoints with their tokenizer (LoRA merged), "
        "image models as orbax checkpoints",
    )
    c.add_argument("--fresh", action="store_true", help="ignore cached checkpoints and rows (recompute them)")
    c.add_argument("--wait-for-lock", action="store_true", help="wait while another run uses the work dir")
    c.add_argument("--no-progress", action="store_true", help="no progress bars")
    c.add_argument("--coordinator-address", help="multi-host: host:port of process 0 (jax.distributed)")
    c.add_argument("--num-processes", type=int, help="multi-host: number of processes")
    c.add_argument("--process-id", type=int, help="multi-host: index of this process")
    c.add_argument("--distributed-auto", action="store_true", help="multi-host: let JAX detect the cluster")
    m = p.add_argument_group("method hyperparameters (from the methods' declarations)")
    for field, (meaning, owners) in grid_fields().items():
        flag = field.replace("_", "-")
        m.add_argument(
            f"--{flag}-grid",
            dest=f"grid__{field}",
            type=_csv(float, "numbers"),
            help=f"{meaning}: values tried ({', '.join(owners)})",
        )
        m.add_argument(
            f"--{flag}",
            dest=f"set__{field}",
            type=float,
            help=f"{meaning}, for every method that has it ({', '.join(owners)})",
        )
    module.add_arguments(p)
    return p


def load_config_file(path: str) -> RunConfig:
    spec = importlib.util.spec_from_file_location("rosu_experiment", path)
    if spec is None or not Path(path).exists():
        raise ValueError(f"--config {path}: file not found.")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not isinstance(getattr(module, "CONFIG", None), RunConfig):
        raise ValueError(f"--config {path}: the file must define CONFIG = RunConfig(...).")
    return module.CONFIG


def build_run_config(args: argparse.Namespace, module, task_name: str) -> RunConfig:
    """The run's config: a --config file (or the defaults), then the flags, then --set and the grids."""
    from rosu_jax.tasks import task_package

    base = load_config_file(args.config) if args.config else None
    config_class = task_package(task_name).CONFIG
    if base is not None and not isinstance(base.task, config_class):
        raise ValueError(f"--config {args.config}: its task is {type(base.task).__name__}, not {task_name}'s.")
    overrides = {k: dict(v) for k, v in (base.overrides if base else {}).items()}
    task_sets: dict[str, dict] = {}
    for item in args.set:
        owner, field, value = parse_assignment(item)
        target = overrides if owner == ALL_METHODS or owner in methods() else task_sets
        target.setdefault(owner, {})[field] = value
    grids = dict(base.grids) if base else {}
    for item in args.grid:
        target, sep, values = item.partition("=")
        if not sep:
            raise ValueError(f"--grid {item!r}: expected [METHOD.]NAME=V1,V2, e.g. rho=0.2,0.5.")
        grids[target] = _csv(float, "numbers")(values)
    for key, value in vars(args).items():
        if key.startswith("grid__") and value is not None:
            grids[key.removeprefix("grid__")] = value
        if key.startswith("set__") and value is not None:
            overrides.setdefault(ALL_METHODS, {})[key.removeprefix("set__")] = value
    task_config = module.build_config(args, base.task if base else None, task_sets)
    if args.tune and getattr(task_config, "validation_fraction", None) == 0.0:
        task_config = dataclasses.replace(task_config, validation_fraction=DEFAULT_VALIDATION_FRACTION)
    changes = {"task": task_config, "overrides": overrides, "grids": grids}
    if args.tune:
        changes["tune"] = True
    if args.relearn is not None:
        changes["relearn"] = tuple(args.relearn)
    for flag in ("methods", "seeds", "mesh"):
        if getattr(args, flag) is not None:
            changes[flag] = getattr(args, flag)
    return base.replace(**changes) if base else RunConfig(**changes)


def run_task(name: str, module, argv: list[str], commands: dict) -> int:
    from rosu_jax.cli import elapsed, enable_compilation_cache

    args = build_parser(name, module, commands).parse_args(argv)
    special = getattr(module, "special_mode", None)
    code = None if special is None else special(args)
    if code is not None:  # a mode of the task that is not a run (e.g. scoring a log)
        return code
    started = time.perf_counter()
    try:
        config = build_run_config(args, module, name)
        if args.out:
            from rosu_jax.runs.report import check_out_dir

            check_out_dir(args.out)
    except (ValueError, TypeError) as err:
        print(f"rosu-unlearn: {err}", file=sys.stderr)
        return 2
    enable_compilation_cache()
    if args.num_processes or args.distributed_auto:
        from rosu_jax.parallel import initialize

        initialize(args.coordinator_address, args.num_processes, args.process_id, auto_detect=args.distributed_auto)
    import jax

    from rosu_jax.runs.lock import WorkDirBusy
    from rosu_jax.runs.pipeline import run_pipeline
    from rosu_jax.runs.report import TableSpec, markdown_tables, write_report
    from rosu_jax.runs.train import TrainingDiverged
    from rosu_jax.tasks import make_task

    log = (lambda s: None) if args.no_progress else (lambda s: print(s, file=sys.stderr))
    try:
        output = run_pipeline(
            config,
            work_dir=args.work_dir,
            progress=not args.no_progress,
            log=log,
            fresh=args.fresh,
            wait_for_lock=args.wait_for_lock,
            save_models=args.save_models,
        )
    except (FileNotFoundError, ValueError, ImportError, OSError, TrainingDiverged, WorkDirBusy) as err:
        print(f"rosu-unlearn: {err}", file=sys.stderr)
        return 2
    if jax.process_index() != 0:  # multi-host: one process reports
        return 0
    task = make_task(config.task)
    spec = TableSpec.of(task)
    print(markdown_tables(output.rows, spec))
    if args.out:
        written = write_report(
            args.out,
            output.rows,
            output.histories,
            spec,
            config.to_dict(),
            plots=getattr(task, "plots", ()),
            artifacts=output.artifacts,
        )
        print("wrote " + ", ".join(str(p) for p in written))
    print(elapsed(started))
    return 0
