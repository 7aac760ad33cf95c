"""Will ROSU help on my model? The forget/retain gradient coupling at the original model, in seconds.

rosu-unlearn diagnose                       # the vision default (digits): κ per scenario and per layer
rosu-unlearn diagnose tofu --batches 10     # any task, with its own flags
rosu-unlearn diagnose --dataset folder --data-dir DIR --model small_cnn --out diagnosis
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    from rosu_jax.cli import DEFAULT_TASK, task_commands
    from rosu_jax.cli.run import build_parser, build_run_config
    from rosu_jax.transforms.rosu import DEFAULT_RHO

    commands = task_commands()
    name = argv.pop(0) if argv and argv[0] in commands else DEFAULT_TASK
    module = importlib.import_module(commands[name])
    parser = build_parser(name, module, commands)
    parser.prog = f"rosu-unlearn diagnose{'' if name == DEFAULT_TASK else ' ' + name}"
    parser.description = (__doc__ or "").strip().splitlines()[0]
    d = parser.add_argument_group("diagnosis")
    d.add_argument("--batches", type=int, default=5, help="forget/retain batch pairs to average over (default 5)")
    args = parser.parse_args(argv)
    rho = args.set__rho if args.set__rho is not None else DEFAULT_RHO  # --rho: ρ of the predictions
    from rosu_jax.runs.cache import strict
    from rosu_jax.runs.diagnose import diagnose, markdown

    try:
        config = build_run_config(args, module, name)
        if args.batches < 1 or not rho > 0:
            raise ValueError("--batches must be >= 1 and --rho > 0.")
        log = (lambda s: None) if args.no_progress else (lambda s: print(s, file=sys.stderr))
        report = diagnose(
            config,
            batches=args.batches,
            rho=rho,
            work_dir=args.work_dir,
            progress=not args.no_progress,
            log=log,
        )
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"rosu-unlearn diagnose: {err}", file=sys.stderr)
        return 2
    text = markdown(report)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "diagnosis.json").write_text(json.dumps(strict(report), indent=1, allow_nan=False))
        (out / "diagnosis.md").write_text(text)
        print(f"wrote {out / 'diagnosis.json'}, {out / 'diagnosis.md'}")
    return 0
