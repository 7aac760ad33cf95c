"""Turn result rows into what people read: Markdown tables, results.json, and PNG plots.

Reads rows only (never models or training internals).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

METRICS = ("UA", "RA", "TA", "MIA")
TABLE_COLUMNS = ("UA", "RA", "TA", "MIA", "avg_gap", "seconds")
HEADERS = {"avg_gap": "Avg.Gap", "seconds": "seconds"}

LEGEND = (
    "UA = 100 − forget accuracy; RA = retain accuracy; TA = test accuracy (class-wise: forgotten class excluded); "
    "MIA = MIA-efficacy (% of forget examples an SVC on true-label confidence calls non-members). For all four the "
    "target is Retrain's value, not 100 or 0; Avg.Gap = mean |method − Retrain| over the four (lower is better); "
    "seconds = wall time of the run (RTE), compilation included."
)


def _group(rows: list[dict]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["dataset"], row["scenario"], row["method"], row.get("variant"))].append(row)
    return groups


def _cell(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def markdown_tables(rows: list[dict]) -> str:
    """One table per (dataset, scenario): rows are methods (mean ± std over seeds), columns the metrics."""
    out = []
    by_scenario: dict[tuple, list] = defaultdict(list)
    for key, group in _group(rows).items():
        by_scenario[key[:2]].append((key, group))
    for (dataset, scenario), entries in by_scenario.items():
        with_setting = any(key[3] is not None for key, _ in entries)
        best = _best_gap(entries)
        seeds = sorted({r["seed"] for _, g in entries for r in g})
        out.append(f"### {dataset} — {scenario} forgetting (seeds: {', '.join(map(str, seeds))})\n")
        header = ["Method"] + (["setting"] if with_setting else []) + [HEADERS.get(c, c) for c in TABLE_COLUMNS]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---"] * len(header)) + "|")
        for key, group in entries:
            name = key[2] + (" **(best Avg.Gap)**" if key == best else "")
            cells = [name] + ([key[3] or ""] if with_setting else [])
            cells += [_cell([float(r[c]) for r in group]) for c in TABLE_COLUMNS]
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
    out.append(LEGEND)
    return "\n".join(out) + "\n"


def _best_gap(entries) -> tuple | None:
    candidates = [
        (np.mean([r["avg_gap"] for r in g]), key) for key, g in entries if key[2] not in ("Retrain", "Original")
    ]
    return min(candidates)[1] if candidates else None


def write_report(out_dir: str | Path, rows: list[dict], histories: dict, config: dict | None = None) -> list[Path]:
    """Write results.json, results.md, histories.json, metrics.png and coupling.png into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    (out_dir / "results.json").write_text(json.dumps(rows, indent=1))
    (out_dir / "histories.json").write_text(json.dumps(histories))
    header = "# rosu-jax results\n\n"
    if config is not None:
        config_json = json.dumps(config, default=str, indent=1, ensure_ascii=False)
        header += f"<details><summary>config</summary>\n\n```json\n{config_json}\n```\n</details>\n\n"
    (out_dir / "results.md").write_text(header + markdown_tables(rows))
    written += [out_dir / "results.json", out_dir / "results.md", out_dir / "histories.json"]
    written.append(plot_metrics(rows, out_dir / "metrics.png"))
    coupling = plot_coupling(histories, out_dir / "coupling.png")
    if coupling is not None:
        written.append(coupling)
    return written


def plot_metrics(rows: list[dict], path: Path) -> Path:
    """Grouped bars of UA/RA/TA/MIA per method, one panel per scenario, Retrain's values as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = list(dict.fromkeys((r["dataset"], r["scenario"]) for r in rows))
    fig, axes = plt.subplots(len(scenarios), 1, figsize=(12, 3.6 * len(scenarios)), squeeze=False)
    for ax, (dataset, scenario) in zip(axes[:, 0], scenarios, strict=True):
        subset = [r for r in rows if (r["dataset"], r["scenario"]) == (dataset, scenario)]
        labels = [r["method"] + (f"\n{r['variant']}" if r.get("variant") else "") for r in subset]
        methods = list(dict.fromkeys(labels))
        width = 0.2
        for j, metric in enumerate(METRICS):
            values = [
                np.mean([float(r[metric]) for r, lab in zip(subset, labels, strict=True) if lab == m]) for m in methods
            ]
            ax.bar(np.arange(len(methods)) + (j - 1.5) * width, values, width, label=metric)
        ax.set_xticks(np.arange(len(methods)), methods, fontsize=7)
        ax.set_ylabel("%")
        ax.set_ylim(0, 105)
        ax.set_title(f"{dataset} — {scenario} forgetting (target: Retrain's bars)")
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_coupling(histories: dict, path: Path) -> Path | None:
    """Coupling κ = cos(g_f, g_r) over steps for UAM vs ROSU (and the λ ablation), per scenario."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = {k: v["coupling"] for k, v in histories.items() if "coupling" in v and v["coupling"]}
    if not series:
        return None
    scenarios = sorted({k.split("/")[0] for k in series})
    fig, axes = plt.subplots(1, len(scenarios), figsize=(6 * len(scenarios), 3.6), squeeze=False)
    for ax, scenario in zip(axes[0], scenarios, strict=True):
        for key, values in series.items():
            sc, seed, method, variant = key.split("/")
            if sc == scenario:
                ax.plot(values, label=f"{method} (seed {seed}, {variant})", lw=1)
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xlabel("step")
        ax.set_ylabel("κ = cos(g_f, g_r)")
        ax.set_title(f"{scenario} forgetting")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
