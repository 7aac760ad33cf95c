"""Collect ``benchmarks/results/*.jsonl`` into ``benchmarks/results/REPORT.md`` plus PNG plots.

Generic by design: every benchmark kind (the records' ``benchmark`` field) gets its own section with the
machine it ran on and one Markdown table; columns are the records' keys minus the environment fields
(``common.ENV_KEYS``) and raw sample lists. To customise a kind without touching the rest:

- ``TARGETS[kind]``: ``(key, op, threshold, description)`` tuples; each record gets a "met / MISSED" column
  and the section states how many records met it.
- ``COLUMNS[kind]``: the preferred column order (other keys are dropped for that kind).
- ``SPLIT_BY[kind]``: a key whose values get separate tables (e.g. ``mode``: 'case' vs 'scaling').
- ``PLOTS[kind]``: a function ``(records, out_dir) -> list[Path]`` that writes PNGs (matplotlib, Agg).

Records are de-duplicated per (source file, benchmark, mode, case, formulation): a re-run replaces the
earlier line of the same case (the JSONL files are append-only).

Usage: python benchmarks/report.py [--results-dir benchmarks/results] [--out benchmarks/results/REPORT.md]
"""

from __future__ import annotations

import argparse
import json
import math
import operator
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

ROOT = Path(__file__).resolve().parent
DEFAULT_RESULTS = ROOT / "results"

Target = tuple[str, str, float, str]

TARGETS: dict[str, list[Target]] = {
    "projection": [("ratio", "<=", 3.0, "projection time / copy time on CPU (issue target)")],
    "step_cost": [
        ("rosu_lagged_over_uam", "<=", 1.03, "ROSU lagged within 3% of UAM"),
        ("rosu_over_uam", "<=", 1.5, "ROSU fresh at most 1.5x UAM"),
        ("projection_share", "<=", 0.02, "projection under 2% of a step (target: ResNet-18)"),
    ],
    "sharded_step": [("max_abs_param_diff", "<=", 1e-4, "sharded step == single-device step")],
}

COLUMNS: dict[str, list[str]] = {
    "step_cost": [
        "case", "method", "gradient_evaluations", "steps_per_s", "median_s", "p10_s", "p90_s", "compile_s",
        "rosu_over_uam", "rosu_lagged_over_uam", "rosu_over_ft", "projection_share", "loadavg_1m",
    ],
    "projection": [
        "case", "n_params", "n_leaves", "projection_median_s", "copy_median_s", "minmax_median_s", "ratio",
        "minmax_ratio", "spread.projection.p10_s", "spread.projection.p90_s", "compile_s", "minmax_compile_s",
        "projection_gbps", "copy_gbps", "copy_verified", "hlo_projection.fusions_by_kind", "loadavg_1m",
    ],
    "projection_experiment": [
        "case", "formulation", "n_leaves", "median_s", "copy_median_s", "ratio_to_copy", "ratio_to_library",
        "spread.p10_s", "spread.p90_s", "compile_s", "max_abs_diff_vs_library", "hlo.fusions_by_kind",
        "hlo.temp_bytes", "loadavg_1m",
    ],
}

SPLIT_BY: dict[str, str] = {"projection": "mode"}

# keys never shown in generic tables (raw samples, bulky nested data)
HIDDEN_KEYS = {"benchmark", "times_s", "_source"}
IDENTITY_KEYS = ("benchmark", "mode", "case", "formulation")

OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt, "==": operator.eq,
}


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """All records of ``results_dir/*.jsonl`` (sorted by file name), the last of each identity kept."""
    by_identity: dict[tuple, dict[str, Any]] = {}
    for path in sorted(results_dir.glob("*.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                print(f"warning: {path.name}:{i + 1}: bad JSON ({err}); skipped", file=sys.stderr)
                continue
            if not isinstance(rec, dict):
                continue
            rec.setdefault("benchmark", path.stem)
            rec["_source"] = path.name
            if "case" in rec:
                ident = (path.name,) + tuple(json.dumps(rec.get(k)) for k in IDENTITY_KEYS)
            else:
                ident = (path.name, i)
            by_identity.pop(ident, None)  # keep insertion order of the latest line
            by_identity[ident] = rec
    return list(by_identity.values())


def get(record: dict[str, Any], dotted: str) -> Any:
    """``record['a']['b']`` for ``'a.b'`` (None when missing)."""
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


# --------------------------------------------------------------------------------------------------------
# Targets and tables
# --------------------------------------------------------------------------------------------------------


def target_label(target: Target) -> str:
    key, op, threshold, _ = target
    return f"{key} {op} {threshold:g}"


def check_target(record: dict[str, Any], target: Target) -> bool | None:
    key, op, threshold, _ = target
    value = get(record, key)
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return bool(OPS[op](value, threshold))


def generic_columns(records: Sequence[dict[str, Any]]) -> list[str]:
    """Union of the records' keys (first-seen order) minus environment fields and bulky values."""
    env = set(common.ENV_KEYS)
    cols: list[str] = []
    for rec in records:
        for key, value in rec.items():
            if key in env or key in HIDDEN_KEYS or key in cols:
                continue
            if isinstance(value, list) and len(value) > 8:
                continue
            cols.append(key)
    return cols


def fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if key.endswith("_s") and not key.endswith("per_s") and not key.startswith("n_"):
            return common.fmt_seconds(value)
        if abs(value) >= 1e5 or (value != 0 and abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, dict | list | tuple):
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def markdown_table(records: Sequence[dict[str, Any]], columns: Sequence[str], targets: Sequence[Target]) -> str:
    header = list(columns) + [f"target: {target_label(t)}" for t in targets]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for rec in records:
        cells = [fmt(get(rec, c), c) for c in columns]
        for t in targets:
            ok = check_target(rec, t)
            cells.append("n/a" if ok is None else ("met" if ok else "**MISSED**"))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def environment_summary(records: Sequence[dict[str, Any]]) -> str:
    """One line per environment field: its value, or the set of values when records differ."""
    parts = []
    for key in common.ENV_KEYS:
        values = sorted({json.dumps(r.get(key)) for r in records if key in r})
        if not values:
            continue
        if key == "loadavg_1m":
            loads = [r[key] for r in records if isinstance(r.get(key), int | float)]
            if loads:
                parts.append(f"loadavg_1m {min(loads):.1f}..{max(loads):.1f}")
            continue
        shown = ", ".join(json.loads(v) if v.startswith('"') else v for v in values[:4])
        parts.append(f"{key} {shown}" + (" ..." if len(values) > 4 else ""))
    return "; ".join(parts)


def section(kind: str, records: list[dict[str, Any]], plots: Sequence[Path], out_dir: Path) -> str:
    targets = TARGETS.get(kind, [])
    columns = COLUMNS.get(kind) or generic_columns(records)
    sources = sorted({r["_source"] for r in records})
    out = [f"## {kind}", "", f"{len(records)} records from {', '.join(sources)}.", ""]
    out += [f"Machine: {environment_summary(records)}.", ""]
    for t in targets:
        results = [check_target(r, t) for r in records]
        n_eval = sum(x is not None for x in results)
        out.append(
            f"- Target `{target_label(t)}` ({t[3]}): met in {sum(x is True for x in results)}/{n_eval} records."
        )
    if targets:
        out.append("")
    split = SPLIT_BY.get(kind)
    groups: dict[Any, list[dict[str, Any]]] = {}
    for rec in records:
        groups.setdefault(rec.get(split) if split else None, []).append(rec)
    for value, group in groups.items():
        if split and len(groups) > 1:
            out += [f"### {split} = {value}", ""]
        out += [markdown_table(group, columns, targets), ""]
    for png in plots:
        out += [f"![{png.stem}]({png.relative_to(out_dir).as_posix()})", ""]
    return "\n".join(out)


# --------------------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_projection(records: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    plt = _pyplot()
    written = []
    scaling = sorted((r for r in records if r.get("mode") == "scaling"), key=lambda r: r["n_params"])
    if scaling:
        n = [r["n_params"] for r in scaling]
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for key, label in (("projection_median_s", "retain_orthogonal_perturbation"),
                           ("minmax_median_s", "minmax_perturbation"), ("copy_median_s", "copy (x * s)")):
            ax1.loglog(n, [r[key] for r in scaling], "o-", label=label)
        ax1.set_xlabel("parameters (flat float32)")
        ax1.set_ylabel("median time per call [s]")
        ax1.set_title("Projection step vs parameter count")
        ax1.grid(True, which="both", alpha=0.3)
        ax1.legend()
        ax2.semilogx(n, [r["ratio"] for r in scaling], "o-", label="projection / copy")
        ax2.semilogx(n, [r["minmax_ratio"] for r in scaling], "s--", label="minmax / copy")
        ax2.axhline(3.0, color="red", lw=1, ls=":", label="target 3")
        ax2.set_xlabel("parameters (flat float32)")
        ax2.set_ylabel("time ratio")
        ax2.set_ylim(bottom=0)
        ax2.grid(True, which="both", alpha=0.3)
        ax2.legend()
        env = scaling[0]
        fig.suptitle(f"{env.get('device_kind')} x{env.get('device_count')}, {env.get('cpu_count')} CPUs, "
                     f"jax {env.get('jax')}", fontsize=9)
        fig.tight_layout()
        path = out_dir / "projection_scaling.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    cases = [r for r in records if r.get("mode", "case") == "case"]
    if cases:
        fig, ax = plt.subplots(figsize=(max(6, 0.55 * len(cases) + 2), 4.2))
        x = range(len(cases))
        ax.bar([i - 0.2 for i in x], [r["ratio"] for r in cases], width=0.4, label="projection / copy")
        ax.bar([i + 0.2 for i in x], [r["minmax_ratio"] for r in cases], width=0.4, label="minmax / copy")
        ax.axhline(3.0, color="red", lw=1, ls=":", label="target 3")
        ax.set_xticks(list(x))
        ax.set_xticklabels([r["case"] for r in cases], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("time ratio to copy")
        ax.legend()
        fig.tight_layout()
        path = out_dir / "projection_cases.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


PLOTS: dict[str, Callable[[list[dict[str, Any]], Path], list[Path]]] = {"projection": plot_projection}


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------


def build_report(results_dir: Path, out_path: Path, *, plots: bool = True) -> str:
    records = load_records(results_dir)
    kinds: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        kinds.setdefault(str(rec["benchmark"]), []).append(rec)
    out_dir = out_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Benchmark report", "", f"Generated by `benchmarks/report.py` from `{results_dir.name}/*.jsonl` "
             f"({len(records)} records, {len(kinds)} benchmark kinds). Times are medians after warm-up; "
             "compile time is reported apart. CPU timings on a shared machine: see `loadavg_1m`.", ""]
    summary = []
    for kind, recs in kinds.items():
        for t in TARGETS.get(kind, []):
            res = [check_target(r, t) for r in recs]
            summary.append(f"- **{kind}**: `{target_label(t)}` met in {sum(x is True for x in res)}/"
                           f"{sum(x is not None for x in res)} records ({t[3]}).")
    if summary:
        lines += ["## Targets", ""] + summary + [""]
    for kind, recs in kinds.items():
        pngs: list[Path] = []
        if plots and kind in PLOTS:
            try:
                pngs = PLOTS[kind](recs, out_dir)
            except Exception as err:  # a broken plot must not lose the tables
                print(f"warning: plot for {kind} failed: {err!r}", file=sys.stderr)
        lines.append(section(kind, recs, pngs, out_dir))
    text = "\n".join(lines).rstrip() + "\n"
    out_path.write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=str(DEFAULT_RESULTS))
    parser.add_argument("--out", default=None, help="Markdown file (default: RESULTS_DIR/REPORT.md).")
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    results_dir = Path(args.results_dir)
    out = Path(args.out) if args.out else results_dir / "REPORT.md"
    build_report(results_dir, out, plots=not args.no_plots)
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
