"""Turn result rows into what people read: Markdown tables with statistics, results.json, and PNG plots.

Reads rows only (never models or training internals). A table groups rows by the task's ``group_keys``; each
method variant shows mean ± std over the seeds whose model is ``ok``; a diverged or collapsed model is shown as
such, never as numbers, and is left out of every mean, comparison and ranking. With several seeds each method is
compared with ROSU by the paired difference of the task's summary metric (95% interval over seeds), and "best" is
marked only where the intervals say so.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np

from rosu_jax.runs.stats import excludes_zero, mean_std, paired_interval
from rosu_jax.tasks.base import Column

ANCHOR = "ROSU"  # the method every other one is compared with
REFERENCE_METHODS = ("Retrain", "Original")
REPORT_MARKER = ".rosu-report"  # marks a folder written by write_report (so it may be replaced)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """What a task's tables show: its metric columns, the column that ranks methods (lower is better), the row
    fields that make one table, and the name of its reference row."""

    columns: tuple[Column, ...]
    summary: str | None
    group_keys: tuple[str, ...]
    reference: str | None = "Retrain"
    paired: tuple[str, ...] = ()  # without a summary: the columns of the ROSU-against-its-partners differences

    @classmethod
    def of(cls, task) -> TableSpec:
        return cls(task.columns, task.summary, task.group_keys, task.reference_row, getattr(task, "paired", ()))


@dataclasses.dataclass
class Entry:
    """One (method, variant) of one table: its rows over seeds."""

    method: str
    variant: str | None
    rows: list[dict]

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.rows if r.get("status", "ok") == "ok"]

    @property
    def label(self) -> str:
        return self.method + (f" ({self.variant})" if self.variant else "")

    def values(self, key: str) -> dict[int, float]:
        return {r["seed"]: float(r[key]) for r in self.ok if r.get(key) is not None}


def tables(rows: list[dict], spec: TableSpec) -> dict[tuple, list[Entry]]:
    """{group values: entries in row order}."""
    groups: dict[tuple, dict[tuple, Entry]] = defaultdict(dict)
    for row in rows:
        group = tuple(row.get(k) for k in spec.group_keys)
        key = (row["method"], row.get("variant"))
        groups[group].setdefault(key, Entry(row["method"], row.get("variant"), [])).rows.append(row)
    return {g: list(entries.values()) for g, entries in groups.items()}


def comparisons(entries: list[Entry], spec: TableSpec) -> dict:
    """Paired differences of the summary metric against the best ROSU variant, and the ranking they support.

    Returns ``{"anchor": label or None, "versus": {label: (mean, low, high) or None}, "best": label or None,
    "tied": [labels], "seeds": n}`` (differences are method − ROSU: positive = ROSU better when lower is better).
    """
    result = {"anchor": None, "versus": {}, "best": None, "tied": [], "seeds": 0}
    if spec.summary is None:
        if spec.paired:
            result["seeds"] = max((len(e.values(k)) for e in entries for k in spec.paired), default=0)
            result["pairs"] = rosu_pairs(entries, spec)
        return result
    candidates = [e for e in entries if e.method not in REFERENCE_METHODS and e.values(spec.summary)]
    if not candidates:
        return result
    result["seeds"] = max(len(e.values(spec.summary)) for e in candidates)
    means = {e.label: float(np.mean(list(e.values(spec.summary).values()))) for e in candidates}
    anchors = [e for e in candidates if e.method == ANCHOR]
    if anchors:
        anchor = min(anchors, key=lambda e: means[e.label])
        result["anchor"] = anchor.label
        for e in candidates:
            if e is not anchor:
                result["versus"][e.label] = _paired(e, anchor, spec.summary)
    leader = min(candidates, key=lambda e: means[e.label])
    intervals = {e.label: _paired(e, leader, spec.summary) for e in candidates if e is not leader}
    if intervals and all(iv is not None and iv[1] > 0 for iv in intervals.values()):
        result["best"] = leader.label
    elif intervals and all(iv is not None for iv in intervals.values()):
        result["tied"] = [leader.label] + [label for label, iv in intervals.items() if not excludes_zero(iv)]
    return result


def rosu_pairs(entries: list[Entry], spec: TableSpec) -> list[dict]:
    """Each ROSU row against its partners: the same objective without ROSU (``ROSU-NPO`` against ``NPO``) and
    with UAM's perturbation (``UAM-NPO``; plain ``ROSU`` against ``UAM``). Per column of ``spec.paired``: the paired
    difference ROSU row − partner over seeds, ``(mean, low, high)`` of its 95% interval (None under two seeds)."""
    pairs = []
    for rosu in (e for e in entries if e.method == ANCHOR or e.method.startswith(ANCHOR + "-")):
        objective = rosu.method[len(ANCHOR) :]  # "" or "-NPO"
        partners = ([objective[1:]] if objective else []) + ["UAM" + objective]
        for other in (e for name in partners for e in entries if e.method == name):
            differences = {key: _paired(rosu, other, key) for key in spec.paired}
            pairs.append({"rosu": rosu.label, "versus": other.label, "differences": differences})
    return pairs


def _pairs_table(comp: dict, spec: TableSpec) -> list[str]:
    """The Markdown lines of ``rosu_pairs`` (bold where the interval excludes 0)."""
    if not spec.paired or not comp.get("pairs"):
        return []
    columns = [c for key in spec.paired for c in spec.columns if c.key == key]
    if comp["seeds"] < 2:
        return ["One seed: no paired differences between methods (run --seeds 0,1,2 for intervals).", ""]
    better = ", ".join(f"{c.header} {c.better} is better" for c in columns)
    lines = [
        f"Paired differences, ROSU row − partner (mean [95% CI] over seeds; bold where the interval excludes 0; "
        f"{better}):",
        "",
        "| ROSU row | partner | " + " | ".join(f"Δ{c.header}" for c in columns) + " |",
        "|" + "|".join(["---"] * (2 + len(columns))) + "|",
    ]
    for pair in comp["pairs"]:
        cells = []
        for c in columns:
            iv = pair["differences"][c.key]
            cells.append(f"**{_interval(iv)}**" if excludes_zero(iv) else _interval(iv))
        lines.append(f"| {pair['rosu']} | {pair['versus']} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _paired(entry: Entry, other: Entry, key: str):
    a, b = entry.values(key), other.values(key)
    return paired_interval([a[s] - b[s] for s in sorted(set(a) & set(b))])


def _cell(entry: Entry, key: str, fmt: str = ".2f") -> str:
    values = list(entry.values(key).values())
    if not values:
        bad = {r.get("status") for r in entry.rows} - {"ok"}
        return "/".join(sorted(s for s in bad if s)) or "–"
    mean, std = mean_std(values)
    return f"{mean:{fmt}}" if len(values) == 1 else f"{mean:{fmt}} ± {std:{fmt}}"


def _status(entry: Entry) -> str:
    counts = defaultdict(int)
    for r in entry.rows:
        counts[r.get("status", "ok")] += 1
    if set(counts) == {"ok"}:
        return "ok"
    return ", ".join(f"{s} {n}/{len(entry.rows)}" for s, n in sorted(counts.items()) if s != "ok")


def _interval(iv) -> str:
    if iv is None:
        return "–"
    mean, low, high = iv
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def selection(rows: list[dict], spec: TableSpec) -> dict:
    """Fair tuning's choice (rows that carry ``validation`` scores): per table and method, the variant with the
    lowest mean validation summary over its ok seeds. ``{table: {method: {"grid", "validation", "chosen"}}}``."""
    chosen: dict = {}
    if spec.summary is None or not any("validation" in r for r in rows):
        return chosen
    for group, entries in tables(rows, spec).items():
        per_method: dict = {}
        for e in entries:
            if e.method in REFERENCE_METHODS:
                continue
            scores = [r["validation"].get(spec.summary) for r in e.ok if r.get("validation")]
            scores = [v for v in scores if v is not None]
            per_method.setdefault(e.method, []).append((e.variant, float(np.mean(scores)) if scores else None))
        title = " — ".join(str(g) for g in group if g is not None)
        chosen[title] = {}
        for method, variants in per_method.items():
            scored = [(v, score) for v, score in variants if score is not None]
            best = min(scored, key=lambda item: item[1])[0] if scored else None
            chosen[title][method] = {
                "grid": [v for v, _ in variants],
                "validation": [s for _, s in variants],
                "chosen": best,
            }
    return chosen


def _selected(rows: list[dict], spec: TableSpec, chosen: dict) -> list[dict]:
    """The rows of the chosen variants (and the reference rows); all rows when nothing was tuned."""
    if not chosen:
        return rows
    keep = []
    for row in rows:
        title = " — ".join(str(row.get(k)) for k in spec.group_keys if row.get(k) is not None)
        pick = chosen.get(title, {}).get(row["method"])
        if pick is None or row.get("variant") == pick["chosen"]:
            keep.append(row)
    return keep


def markdown_tables(rows: list[dict], spec: TableSpec) -> str:
    """One table per group: methods as rows (mean ± std over ok seeds), the task's columns, seconds, status, and
    with several seeds the paired difference to ROSU; then what the marks mean. With fair tuning only each method's
    chosen variant is shown (the choice made on validation data; every variant is in results.json)."""
    out = []
    chosen = selection(rows, spec)
    rows = _selected(rows, spec, chosen)
    if chosen:
        grid = max(len(m["grid"]) for t in chosen.values() for m in t.values())
        out.append(
            f"Fair tuning: every method had {grid} grid point(s); each row is the variant with the best mean "
            f"{_header(spec)} on held-out validation data (the numbers below are on the other data).\n"
        )
    for group, entries in tables(rows, spec).items():
        comp = comparisons(entries, spec)
        seeds = sorted({r["seed"] for e in entries for r in e.rows})
        title = " — ".join(str(g) for g in group if g is not None)
        out.append(f"### {title} (seeds: {', '.join(map(str, seeds))})\n")
        with_variant = any(e.variant for e in entries)
        paired = comp["seeds"] >= 2 and comp["anchor"] is not None
        relearn = any("relearn_forget_score" in r for e in entries for r in e.rows)
        header = ["Method"] + (["setting"] if with_variant else []) + [c.header for c in spec.columns]
        header += ["relearned forget score"] if relearn else []
        header += ["seconds", "status"] + ([f"Δ{_header(spec)} vs {comp['anchor']} [95% CI]"] if paired else [])
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * len(header)) + "|")
        for e in entries:
            name = e.method
            if e.label == comp["best"]:
                name += " **(best)**"
            elif e.label in comp["tied"]:
                name += " (tied)"
            cells = [name] + ([e.variant or ""] if with_variant else [])
            cells += [_cell(e, c.key, c.fmt) for c in spec.columns]
            cells += [_cell(e, "relearn_forget_score") if e.method not in REFERENCE_METHODS else ""] if relearn else []
            cells += [_cell(e, "seconds"), _status(e)]
            if paired:
                cells.append(
                    ""
                    if e.method in REFERENCE_METHODS or e.label == comp["anchor"]
                    else _interval(comp["versus"].get(e.label))
                )
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        out.extend(_pairs_table(comp, spec))
        out.append(_verdict(comp, spec))
        out.append("")
    out.append(legend(spec))
    return "\n".join(out) + "\n"


def _header(spec: TableSpec) -> str:
    return next((c.header for c in spec.columns if c.key == spec.summary), spec.summary or "")


def _verdict(comp: dict, spec: TableSpec) -> str:
    if spec.summary is None:
        return ""
    name = _header(spec)
    if comp["seeds"] < 2:
        return f"One seed: this table cannot rank methods by {name} (run --seeds 0,1,2,3,4 for intervals)."
    if comp["best"]:
        return f"Best {name}: {comp['best']}, lower than every other method with a paired 95% interval excluding 0."
    if comp["tied"]:
        return f"No single best {name}: {', '.join(comp['tied'])} are tied (paired 95% intervals include 0)."
    return ""


def legend(spec: TableSpec) -> str:
    parts = [f"{c.header} = {c.meaning} ({_better(c, spec)})" for c in spec.columns]
    parts.append("seconds = wall time of the run with its compiled step (compilation reported apart as compile_s)")
    parts.append(
        "relearned forget score (with --relearn K,N) = the forget score after N fine-tuning steps on K forget "
        "examples (vision: forget accuracy %; TOFU: forget probability; WMDP: forget accuracy %); the lower, "
        "the more robust the forgetting"
    )
    parts.append(
        "status: a diverged (non-finite) or collapsed (one class predicted almost everywhere) model is not "
        "a result: it is left out of means, intervals and rankings"
    )
    return "; ".join(parts) + "."


def _better(column: Column, spec: TableSpec) -> str:
    if column.better == "reference":
        return f"closest to {spec.reference} is best"
    return f"{column.better} is better"


def check_out_dir(out_dir: str | Path) -> Path:
    """Make sure results can be written to ``out_dir`` (created now); raise ``ValueError`` saying why not.

    The folder must be new, empty, or an earlier report of this tool (it is replaced as a whole)."""
    out = Path(out_dir).expanduser().absolute()
    for parent in [out, *out.parents]:
        if parent.exists() and not parent.is_dir():
            raise ValueError(f"--out {out_dir}: {parent} is a file, not a folder; give a folder path.")
    if out.exists() and any(out.iterdir()) and not (out / REPORT_MARKER).exists():
        raise ValueError(
            f"--out {out_dir}: the folder holds other files; give a new or empty folder (a report "
            "folder is replaced as a whole)."
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ValueError(f"--out {out_dir}: cannot write there ({err.strerror}); choose a writable folder.") from None
    return out


def write_report(
    out_dir: str | Path,
    rows: list[dict],
    histories: dict,
    spec: TableSpec,
    config: dict | None = None,
    extra: dict | None = None,
    plots=(),
    artifacts: dict | None = None,
) -> list[Path]:
    """Write results.json (strict JSON), results.md, histories.json and PNG plots, all at once: everything is
    written into a temporary folder beside ``out_dir`` which then replaces it, so a kill never leaves a mix of
    old and new files. ``plots`` are callables ``(rows, histories, folder) -> [paths]`` (task-specific plots)."""
    out = check_out_dir(out_dir)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write_all(tmp, rows, histories, spec, config, extra, plots)
        _write_artifacts(tmp / "artifacts", artifacts or {})
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    return sorted(p for p in out.iterdir() if not p.name.startswith("."))


def _write_artifacts(folder: Path, artifacts: dict) -> None:
    """Each row's JSON document (e.g. TOFU's per-item evaluation log) as ``artifacts/<scenario>-<seed>-<method>...``."""
    for name, document in artifacts.items():
        folder.mkdir(exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", name.strip("/").replace("/", "-"))
        (folder / f"{safe}.json").write_text(json.dumps(document, allow_nan=False, ensure_ascii=False))


def _write_all(tmp: Path, rows, histories, spec, config, extra, plots) -> None:
    chosen = selection(rows, spec)
    shown = _selected(rows, spec, chosen)
    comps = {
        " — ".join(str(g) for g in group): comparisons(entries, spec) for group, entries in tables(shown, spec).items()
    }
    document = {"rows": rows, "comparisons": comps, "selection": chosen, "config": config, **(extra or {})}
    (tmp / "results.json").write_text(json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False))
    (tmp / "histories.json").write_text(json.dumps(histories, allow_nan=False))
    header = "# rosu-jax results\n\n"
    if config is not None:
        config_json = json.dumps(config, default=str, indent=1, ensure_ascii=False)
        header += f"<details><summary>config</summary>\n\n```json\n{config_json}\n```\n</details>\n\n"
    (tmp / "results.md").write_text(header + markdown_tables(rows, spec))
    (tmp / REPORT_MARKER).write_text("written by rosu-unlearn; this folder is replaced as a whole by the next report\n")
    plot_metrics(rows, spec, tmp / "metrics.png")
    plot_coupling(histories, tmp / "coupling.png")
    for plot in plots:
        plot(rows, histories, tmp)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_metrics(rows: list[dict], spec: TableSpec, path: Path) -> Path | None:
    """Grouped bars of the task's non-summary columns per method (mean over ok seeds), one panel per table."""
    plt = _pyplot()
    groups = tables(rows, spec)
    columns = [c for c in spec.columns if c.key != spec.summary]
    if not groups or not columns:
        return None
    fig, axes = plt.subplots(len(groups), 1, figsize=(12, 3.6 * len(groups)), squeeze=False)
    for ax, (group, entries) in zip(axes[:, 0], groups.items(), strict=True):
        labels = [e.method + (f"\n{e.variant}" if e.variant else "") for e in entries]
        width = 0.8 / len(columns)
        for j, column in enumerate(columns):
            values = [np.mean(list(e.values(column.key).values())) if e.values(column.key) else np.nan for e in entries]
            ax.bar(np.arange(len(entries)) + (j - (len(columns) - 1) / 2) * width, values, width, label=column.header)
        ax.set_xticks(np.arange(len(entries)), labels, fontsize=7)
        ax.set_title(" — ".join(str(g) for g in group if g is not None) + f" (target: {spec.reference}'s bars)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_coupling(histories: dict, path: Path) -> Path | None:
    """Coupling κ = cos(g_f, g_r) over steps for the min-max methods, per scenario (probed series as markers)."""
    series = {k: v for k, v in histories.items() if v.get("coupling")}
    if not series:
        return None
    plt = _pyplot()
    scenarios = sorted({k.split("/")[0] for k in series})
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 3.6), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for key, values in series.items():
            sc, seed, method, variant = key.split("/", 3)
            if sc != scenario:
                continue
            y = [np.nan if v is None else v for v in values["coupling"]]
            x = values.get("probe_step", range(len(y)))
            ax.plot(
                x, y, "o-" if "probe_step" in values else "-", ms=3, lw=1, label=f"{method} (seed {seed}, {variant})"
            )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("step")
        ax.set_ylabel("κ = cos(g_f, g_r)")
        ax.set_title(f"{scenario}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
