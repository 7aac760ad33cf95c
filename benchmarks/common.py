"""What every benchmark shares: environment, load average, compiling, round-robin timing, JSONL records."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

REPO = Path(__file__).resolve().parents[1]
ENV_KEYS = ("python", "platform", "jax", "jaxlib", "flax", "optax", "numpy", "backend", "device_kind",
            "device_count", "cpu_count", "xla_flags", "loadavg_1m")


def cifar10_dir(given: str | None = None) -> Path | None:
    """A CIFAR-10 image folder (train/<class>, test/<class>): ``given`` (then the only candidate), else ``$CIFAR_DIR``,
    else ``shared/data/cifar10-jpeg`` beside the checkout; None when there is none (the caller skips, saying so)."""
    candidates = [given] if given else [os.environ.get("CIFAR_DIR"), REPO.parent / "shared" / "data" / "cifar10-jpeg"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train").is_dir() and (Path(candidate) / "test").is_dir():
            return Path(candidate)
    return None


def loadavg_1m() -> float | None:
    """The 1-minute load average (None where the platform has none): other processes distort CPU timings."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def too_loaded(load: float | None, cpus: int | None) -> bool:
    """The load rule: a 1-minute load average above the core count means other work competes for the cores."""
    return load is not None and bool(cpus) and load > cpus


def environment() -> dict[str, Any]:
    """The machine, the device kind and the library versions, stored with every record (keys: ``ENV_KEYS``)."""
    devices = jax.devices()
    return {"python": platform.python_version(), "platform": platform.platform(),
            **{name: metadata.version(name) for name in ("jax", "jaxlib", "flax", "optax", "numpy")},
            "backend": jax.default_backend(), "device_kind": devices[0].device_kind, "device_count": len(devices),
            "cpu_count": os.cpu_count(), "xla_flags": os.environ.get("XLA_FLAGS", ""), "loadavg_1m": loadavg_1m()}


def record(benchmark: str, case: str, env: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """One JSONL record: kind, case, environment, the load average now, then ``fields``."""
    return {"benchmark": benchmark, "case": case, **env, "loadavg_1m": loadavg_1m(), **fields}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100])."""
    s, pos = sorted(values), (len(values) - 1) * q / 100.0
    lo, hi = int(pos), min(int(pos) + 1, len(values) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> dict[str, float]:
    """p10, median and p90 of the ratios of paired measurements (the same round of ``time_fn``, or the same repeat)."""
    ratios = [a / b for a, b in zip(numerator, denominator, strict=True)]
    return {f"p{q}": percentile(ratios, q) for q in (10, 50, 90)}


def paired_ratios(times: dict[Any, Sequence[float]], pairs: dict[str, tuple]) -> dict[str, dict[str, float]]:
    """``paired_ratio`` of every ``pairs`` entry (name -> (numerator, denominator), keys of ``times``) measured."""
    return {name: paired_ratio(times[a], times[b]) for name, (a, b) in pairs.items() if a in times and b in times}


@dataclasses.dataclass
class Timed:
    """One thing to time: ``call()`` runs it once; ``compiled`` is the XLA executable where there is one."""

    name: str
    call: Callable[[], Any]
    compiled: Any = None
    lower_s: float | None = None
    compile_s: float | None = None
    times: list[float] = dataclasses.field(default_factory=list)

    def timing(self) -> dict[str, Any]:
        t = self.times
        return {"median_s": statistics.median(t), "p10_s": percentile(t, 10), "p90_s": percentile(t, 90),
                "iqr_s": percentile(t, 75) - percentile(t, 25), "min_s": min(t), "mean_s": statistics.fmean(t),
                "repeats": len(t), "lower_s": self.lower_s, "compile_s": self.compile_s, "times_s": t}


QUICK_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}  # --quick: the fastest compile (timings are moot)


def compile_fn(name: str, fn: Callable, *args, quick: bool = False) -> Timed:
    """Lower and compile ``jax.jit(fn)`` (or an already jitted ``fn``) at ``args``, each timed apart."""
    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    t0 = time.perf_counter()
    lowered = jitted.lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile(QUICK_COMPILER_OPTIONS if quick else None)
    t2 = time.perf_counter()
    return Timed(name, lambda: compiled(*args), compiled, t1 - t0, t2 - t1)


def time_fn(targets: Sequence[Timed], *, warmup: int, repeats: int, min_time: float = 0.0,
            max_repeats: int = 200) -> None:
    """Warm each target up, then time them round-robin (load drifts hit all alike) until each has ``repeats`` calls
    and, with ``min_time``, the slowest has run that long (at most ``max_repeats`` rounds); appends to ``times``."""
    for target in targets:
        for _ in range(warmup):
            jax.block_until_ready(target.call())
    rounds = 0
    while rounds < repeats or (min_time and rounds < max_repeats and max(sum(t.times) for t in targets) < min_time):
        for target in targets:
            t0 = time.perf_counter()
            jax.block_until_ready(target.call())
            target.times.append(time.perf_counter() - t0)
        rounds += 1


def memory_of(compiled) -> dict[str, int | None]:
    """XLA's memory analysis of an executable (bytes): peak = temporaries + arguments + outputs − aliased."""
    try:
        analysis = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        analysis = None
    out = {f"{k}_bytes": getattr(analysis, f"{k}_size_in_bytes", None) for k in ("temp", "argument", "output", "alias")}
    temp, argument, output, alias = out.values()
    out["peak_bytes"] = None if None in out.values() else temp + argument + output - alias
    return out


def write_jsonl(path: str | os.PathLike, rec: dict[str, Any]) -> None:
    """Append ``rec`` as one JSON line (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(rec, default=lambda obj: obj.tolist() if hasattr(obj, "tolist") else str(obj)) + "\n")


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def without_local_paths(text: str, *extra: tuple[str, str]) -> str:
    """``text`` without this machine's folders (``extra`` (old, new) pairs first, then the checkout and home)."""
    for old, new in (*extra, (str(REPO), "."), (str(Path.home()), "~")):
        text = text.replace(old, new)
    return text


def base_parser(description: str, default_out: str) -> argparse.ArgumentParser:
    """The flags every benchmark shares: ``--out``, ``--quick``, ``--repeats``, ``--warmup``, ``--min-time``."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=default_out, help="JSONL file to append one record per case to")
    parser.add_argument("--quick", action="store_true", help="toy sizes and few repeats (smoke test)")
    parser.add_argument("--repeats", type=int, help="timed rounds per measurement (minimum)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls after compilation")
    parser.add_argument("--min-time", type=float, help="keep timing until the slowest target has run this long")
    return parser


def progress(message: str) -> None:
    print(message, flush=True)


def fmt_seconds(seconds: float | None) -> str:
    return "-" if seconds is None else (f"{seconds * 1e6:.1f} µs" if seconds < 1e-3 else
                                        f"{seconds * 1e3:.2f} ms" if seconds < 1 else f"{seconds:.2f} s")
