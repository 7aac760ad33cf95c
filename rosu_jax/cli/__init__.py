"""``rosu-unlearn``: with no sub-command it runs the vision task's offline default (digits, small CNN, class-wise and
random forgetting, every method) and prints its tables. Tasks and tools are sub-commands: ``rosu-unlearn tofu``,
``rosu-unlearn wmdp``, ``rosu-unlearn diagnose``. Every task shares the common flags (--out, --work-dir, --seeds,
--mesh, --methods, --set, the grids) and adds its own; the method flags (``--lr-grid``, ``--rho``...) are derived
from the methods' declarations.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from pathlib import Path

from rosu_jax.tasks import task_names

DEFAULT_TASK = "vision"
TOOLS = {"diagnose": "rosu_jax.cli.diagnose"}  # tool sub-commands: name -> module with main(argv)


def task_commands() -> dict[str, str]:
    """sub-command -> module with add_arguments / build_config: every task package that has a ``cli`` module."""
    found = {}
    for name in task_names():
        module = f"rosu_jax.tasks.{name}.cli"
        if importlib.util.find_spec(module) is not None:
            found[name] = module
    return found


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = task_commands()
    if argv and argv[0] in TOOLS:
        return importlib.import_module(TOOLS[argv[0]]).main(argv[1:])
    name = argv.pop(0) if argv and argv[0] in commands else DEFAULT_TASK
    from rosu_jax.cli.run import run_task

    return run_task(name, importlib.import_module(commands[name]), argv, commands)


def _subcommand_help(commands: dict[str, str]) -> str:
    lines = ["sub-commands (rosu-unlearn COMMAND --help):"]
    for name, module in commands.items():
        summary = importlib.import_module(module).SUMMARY
        lines.append(f"  {name:<10} {summary}")
    for name, module in TOOLS.items():
        lines.append(f"  {name:<10} {(importlib.import_module(module).__doc__ or '').strip().splitlines()[0]}")
    return "\n".join(lines)


def enable_compilation_cache() -> None:
    """XLA's persistent compilation cache under the cache root (a second run skips most compilation)."""
    import jax

    from rosu_jax.core.paths import cache_root

    jax.config.update("jax_compilation_cache_dir", os.fspath(Path(cache_root()) / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.3)


def elapsed(started: float) -> str:
    return f"total wall time: {time.perf_counter() - started:.1f} s"
