"""Timing utilities shared by every benchmark script.

Conventions (every script in ``benchmarks/`` follows them):

- ``--out PATH.jsonl``: one JSON object appended per case (``write_jsonl``), each carrying
  ``benchmark`` (the kind, e.g. ``'projection'``), ``case`` and the ``environment()`` fields.
- ``--quick``: tiny sizes, a couple of repeats; for smoke tests only (numbers are meaningless).
- A human-readable progress line per case on stdout (``progress``), and a small table at the end.

``time_fn`` lowers and compiles a function once (timed separately as ``compile_s``), calls the compiled
executable ``warmup`` times, then times ``repeats`` calls (more if ``min_time`` is not reached), each
ending in ``jax.block_until_ready``. Speed is only measured and reported, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax

ENV_KEYS = (
    "python",
    "platform",
    "machine",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "numpy",
    "backend",
    "device_kind",
    "device_count",
    "cpu_count",
    "xla_flags",
    "loadavg_1m",
)


def _version(module_name: str) -> str | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    return getattr(module, "__version__", None)


def environment() -> dict[str, Any]:
    """The machine and library versions, stored with every record (keys: ``ENV_KEYS``)."""
    import jaxlib

    devices = jax.devices()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "flax": _version("flax"),
        "optax": _version("optax"),
        "numpy": _version("numpy"),
        "backend": jax.default_backend(),
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "cpu_count": os.cpu_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        # other processes on the machine distort CPU timings: record the load when the case was measured
        "loadavg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of an already sorted list."""
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(times: Sequence[float]) -> dict[str, float | int]:
    """Median, p10/p90, IQR, min, mean of a list of per-call times (seconds)."""
    s = sorted(times)
    p25, p75 = _percentile(s, 25), _percentile(s, 75)
    return {
        "median_s": statistics.median(s),
        "p10_s": _percentile(s, 10),
        "p90_s": _percentile(s, 90),
        "iqr_s": p75 - p25,
        "min_s": s[0],
        "mean_s": statistics.fmean(s),
        "repeats": len(s),
    }


def compile_fn(fn: Callable, *args, static_argnums: Sequence[int] = ()) -> tuple[Any, float, float]:
    """(compiled executable, lowering seconds, compile seconds) of ``jax.jit(fn)`` at ``args``."""
    jitted = jax.jit(fn, static_argnums=tuple(static_argnums))
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    return compiled, t1 - t0, t2 - t1


def time_fn(
    fn: Callable,
    *args,
    warmup: int = 3,
    repeats: int = 10,
    min_time: float = 0.0,
    max_repeats: int = 1000,
    compiled: Any = None,
) -> dict[str, Any]:
    """Compile ``jax.jit(fn)`` for ``args`` (timed apart), warm up, then time the compiled calls.

    Runs at least ``repeats`` timed calls and keeps going until their total reaches ``min_time`` seconds
    (capped at ``max_repeats``). Pass ``compiled`` (from ``compile_fn``) to reuse an executable; then
    ``lower_s``/``compile_s`` are None. Returns ``summarize``'s keys plus ``lower_s``, ``compile_s``,
    ``warmup`` and the raw ``times_s``.
    """
    lower_s = compile_s = None
    if compiled is None:
        compiled, lower_s, compile_s = compile_fn(fn, *args)
    for _ in range(warmup):
        jax.block_until_ready(compiled(*args))
    times: list[float] = []
    total = 0.0
    while len(times) < repeats or (total < min_time and len(times) < max_repeats):
        t0 = time.perf_counter()
        out = compiled(*args)
        jax.block_until_ready(out)
        dt = time.perf_counter() - t0
        times.append(dt)
        total += dt
        del out
    result: dict[str, Any] = summarize(times)
    result.update(lower_s=lower_s, compile_s=compile_s, warmup=warmup, times_s=times)
    return result


def write_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line to ``path`` (parent directories are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=False, default=_json_default) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """All records of a JSONL file (blank lines skipped)."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy / jax scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def base_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """The CLI every benchmark shares: ``--out``, ``--quick``, ``--repeats``, ``--warmup``, ``--min-time``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=default_out, help="JSONL file to append one record per case to.")
    parser.add_argument("--quick", action="store_true", help="Tiny sizes and few repeats (smoke test).")
    parser.add_argument("--repeats", type=int, default=None, help="Timed calls per measurement (minimum).")
    parser.add_argument("--warmup", type=int, default=3, help="Untimed calls after compilation.")
    parser.add_argument(
        "--min-time", type=float, default=None, help="Keep timing until this many seconds are spent."
    )
    return parser


def progress(message: str) -> None:
    """One progress line, flushed at once (so long runs show where they are)."""
    print(message, flush=True)


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f}us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f}ms"
    return f"{seconds:.2f}s"


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], file=sys.stdout) -> None:
    """A fixed-width text table of ``rows`` restricted to ``columns``."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)), file=file)
    print("  ".join("-" * w for w in widths), file=file)
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)), file=file)
    file.flush()


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
