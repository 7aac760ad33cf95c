"""``REPORT.md`` (every kind of record) and ``STEPS.md`` (the step benchmarks), with plots, from the ``*.jsonl`` of
``--results``: the last record of a file, kind, mode and case wins; a kind without hooks in ``KINDS`` gets a table
of all its fields."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from benchmarks import common

METHOD_ORDER = ("FT", "UAM", "ROSU", "ROSU-lagged", "ROSU-noproj", "projection")
SCALING_COLORS = {"FT": "tab:gray", "UAM": "tab:blue", "ROSU": "tab:red", "ROSU-lagged": "tab:orange",
                  "projection": "tab:green"}  # the methods of STEPS.md's scaling table and plot
RATIO_COLUMNS = ("rosu_over_uam", "rosu_lagged_over_uam", "rosu_over_ft")  # with their spread in STEPS.md
HIDDEN = {"benchmark", "times_s", "_source", "steps_per_s", "loadavg_1m_blocks", "runs", "rows", "stdout_tail",
          "stderr_tail", "single", "sharded", "memory", "paired_ratios", "torch_parallel_info", "machine"}


@dataclasses.dataclass(frozen=True)
class Kind:
    """The hooks of one kind of record (all optional)."""

    columns: tuple[str, ...] = ()
    targets: tuple[tuple[str, float, str], ...] = ()  # (key, threshold, what it means): met when value <= threshold
    split_by: str | None = None
    plots: Callable[[list[dict], Path], Iterable[Path]] | None = None
    steps: Callable[[list[dict], Path], list[str]] | None = None
    table: Callable[[list[dict]], list[str]] | None = None  # REPORT.md lines in place of the table of all fields
    absent: tuple[str, str] | None = None  # a GPU benchmark not run yet: (what it measures, its records' file)


# -- reading and formatting -----------------------------------------------------------------------------------------

def load_records(results: Path) -> list[dict[str, Any]]:
    latest: dict[tuple, dict] = {}
    for path in sorted(results.glob("*.jsonl")):
        for rec in common.read_jsonl(path):
            rec.setdefault("benchmark", path.stem)
            rec["_source"] = path.name
            identity = (path.name, rec["benchmark"], rec.get("mode"), rec.get("case", len(latest)))
            latest.pop(identity, None)  # the latest line of a case, in the order of the latest lines
            latest[identity] = rec
    return list(latest.values())


def get(rec: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        rec = rec.get(part) if isinstance(rec, dict) else None
    return rec


def loaded(rec: dict) -> bool:
    """Measured above the load limit: marked by the benchmark, or (older records) load average > cores."""
    return bool(rec.get("loaded")) or common.too_loaded(rec.get("loadavg_1m"), rec.get("cpu_count"))


def fmt(value: Any, key: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if key.endswith("_s") and not key.endswith("per_s"):
            return common.fmt_seconds(value)
        return f"{value:.3g}" if abs(value) < 10 or abs(value) >= 1e5 else f"{value:.1f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, dict | list):
        text = json.dumps(value, separators=(",", ":"))
        return text if len(text) <= 80 else text[:77] + "..."
    return str(value)


def num(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def sig(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def with_spread(value: float | None, spread: dict | None) -> str:
    """A ratio and, where measured, its p10–p90 in brackets."""
    return f"{num(value)} [{spread['p10']:.2f}–{spread['p90']:.2f}]" if spread else num(value)


def mib(x: int | None) -> str:
    return "-" if x is None else f"{x / 2**20:.2f}"


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
                    for row in rows]


def machine(recs: list[dict]) -> str:
    r = next((x for x in recs if "device_kind" in x), recs[0])
    loads = [x["loadavg_1m"] for x in recs if isinstance(x.get("loadavg_1m"), int | float)]
    load = f"; 1-min load average during the runs {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    return (f"{r.get('device_kind')} ×{r.get('device_count')} ({r.get('backend')}), {r.get('cpu_count')} CPU cores, "
            f"{r.get('platform')}; jax {r.get('jax')}, flax {r.get('flax')}, optax {r.get('optax')}{load}")


def save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


# -- REPORT.md: every kind ------------------------------------------------------------------------------------------

def target_results(recs: list[dict], target) -> tuple[int, int]:
    values = [get(r, target[0]) for r in recs]
    checked = [v <= target[1] for v in values if isinstance(v, int | float) and math.isfinite(v)]
    return sum(checked), len(checked)


def heading(title: str, recs: list[dict]) -> list[str]:
    n = sum(map(loaded, recs))
    return [f"## {title}", "", f"Machine: {machine(recs)}.", "", *([f"**LOADED: {n} of {len(recs)} records were "
            "measured while the 1-minute load average exceeded the core count.**", ""] if n else [])]


def kind_section(kind: str, recs: list[dict], out_dir: Path) -> list[str]:
    hooks = KINDS.get(kind, Kind())
    lines = [*heading(kind, recs), f"{len(recs)} records from {', '.join(sorted({r['_source'] for r in recs}))}."]
    if hooks.table:
        return [*lines, "", *hooks.table(recs), ""]
    values = dict.fromkeys(rec.get(hooks.split_by or "") for rec in recs)  # one group without split_by
    groups = {value: [r for r in recs if r.get(hooks.split_by or "") == value] for value in values}
    for value, group in groups.items():
        if len(groups) > 1:
            lines += ["", f"### {hooks.split_by} = {value}"]
        columns = hooks.columns or list(dict.fromkeys(
            k for r in group for k, v in r.items() if k not in HIDDEN and k not in common.ENV_KEYS))
        header = [*columns, *(f"target: {t[0]} <= {t[1]:g}" for t in hooks.targets), "loaded"]
        rows = [[*(fmt(get(rec, c), c) for c in columns),
                 *("n/a" if not n else "met" if met else "**MISSED**" for met, n in
                   (target_results([rec], t) for t in hooks.targets)), "**LOADED**" if loaded(rec) else "-"]
                for rec in group]
        lines += ["", *md_table(header, rows)]
    for png in hooks.plots(recs, out_dir) if hooks.plots else []:
        lines += ["", f"![{png.stem}]({png.name})"]
    return lines + [""]


def plot_projection(recs: list[dict], out_dir: Path) -> Iterator[Path]:
    scaling = sorted((r for r in recs if r.get("mode") == "scaling"), key=lambda r: r["n_params"])
    if scaling:
        n = [r["n_params"] for r in scaling]
        fig = Figure(figsize=(11, 4.2))
        ax1, ax2 = fig.subplots(1, 2)
        for key, label in (("projection_median_s", "retain_orthogonal_perturbation"),
                           ("minmax_median_s", "minmax_perturbation"), ("copy_median_s", "copy (x * s)")):
            ax1.loglog(n, [r[key] for r in scaling], "o-", label=label)
        ax1.set(xlabel="parameters (flat float32)", ylabel="median time per call [s]",
                title="Projection step vs parameter count")
        ax2.semilogx(n, [r["ratio"] for r in scaling], "o-", label="projection / copy")
        ax2.semilogx(n, [r["minmax_ratio"] for r in scaling], "s--", label="minmax / copy")
        ax2.axhline(3.0, color="red", lw=1, ls=":", label="target 3")
        ax2.set(xlabel="parameters (flat float32)", ylabel="time ratio", ylim=(0, None))
        for ax in (ax1, ax2):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.suptitle(machine(scaling), fontsize=8)
        yield save(fig, out_dir / "projection_scaling.png")
    cases = [r for r in recs if r.get("mode", "case") == "case"]
    if cases:
        fig = Figure(figsize=(max(6, 0.55 * len(cases) + 2), 4.2))
        ax = fig.subplots()
        x = range(len(cases))
        ax.bar([i - 0.2 for i in x], [r["ratio"] for r in cases], width=0.4, label="projection / copy")
        ax.bar([i + 0.2 for i in x], [r["minmax_ratio"] for r in cases], width=0.4, label="minmax / copy")
        ax.axhline(3.0, color="red", lw=1, ls=":", label="target 3")
        ax.set_xticks(list(x), [r["case"] for r in cases], rotation=60, ha="right", fontsize=7)
        ax.set_ylabel("time ratio to copy")
        ax.legend()
        yield save(fig, out_dir / "projection_cases.png")


# -- STEPS.md: the step benchmarks ----------------------------------------------------------------------------------

def steps_step_cost(recs: list[dict], out_dir: Path) -> list[str]:
    lines = []
    for device in sorted({r.get("device_kind") for r in recs}):
        dev = [r for r in recs if r.get("device_kind") == device]
        cases = {r["case"]: r for r in dev}
        models = list(dict.fromkeys(r["case"].rsplit("/", 1)[0] for r in dev))
        lines += heading(f"Step cost ({device})", dev)
        s = common.fmt_seconds
        rows = [[model, r.get("batch_size"), f"{r['n_params']:,}", m, r.get("gradient_evaluations") or "-",
                 s(r["median_s"]), f"{s(r['p10_s'])}–{s(r['p90_s'])}",
                 num(r.get("steps_per_s"), 2), s(r.get("compile_s")), r["repeats"]]
                for model in models for m in METHOD_ORDER if (r := cases.get(f"{model}/{m}"))]
        lines += md_table(["model", "batch", "params", "method", "gradients", "median", "p10–p90", "steps/s",
                           "compile", "repeats"], rows)
        rows = [[model, *(with_spread(r.get(k), get(r, f"paired_ratios.{k}")) for k in RATIO_COLUMNS),
                 num(r.get("uam_over_ft")), num(r.get("rosu_over_rosu_noproj")), num(r.get("projection_share"), 4),
                 num(r.get("projection_share_by_difference"), 4),
                 ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in (r.get("met") or {}).items()
                           if v is not None and (k != "projection_share" or model.startswith("resnet18")))]
                for model in models if (r := cases.get(f"{model}/ratios"))]
        lines += ["", "Ratios within one run: median of the per-round ratios [p10–p90]:", "",
                  *md_table(["model", "ROSU/UAM", "ROSU-lagged/UAM", "ROSU/FT", "UAM/FT", "ROSU/ROSU-noproj",
                             "projection share (timed alone)", "projection share (ROSU − noproj)", "targets met"],
                            rows),
                  "", "Targets: ROSU-lagged ≤ 1.03 × UAM; ROSU ≤ 1.5 × UAM; projection ≤ 2% of a ResNet-18 ROSU step. "
                  "g_f (eval mode) and g_r (train mode) share no forward pass: ROSU takes 3 gradients, UAM 2.", ""]
        fig = Figure(figsize=(4.2 * len(models), 3.4))
        axes = fig.subplots(1, len(models), squeeze=False)
        for ax, model in zip(axes[0], models, strict=True):
            timed = [(m, r) for m in METHOD_ORDER[:-1] if (r := cases.get(f"{model}/{m}"))]
            ax.bar([m for m, _ in timed], [r["median_s"] * 1e3 for _, r in timed], capsize=3, color="tab:blue",
                   yerr=[[(r["median_s"] - r["p10_s"]) * 1e3 for _, r in timed],
                         [(r["p90_s"] - r["median_s"]) * 1e3 for _, r in timed]])
            ax.set(title=model, ylabel="ms / step (median, p10–p90)")
            ax.tick_params(axis="x", rotation=40)
        png = save(fig, out_dir / f"steps_per_s-{''.join(c if c.isalnum() else '_' for c in str(device)).lower()}.png")
        lines += [f"![steps per second]({png.name})", ""]
    return lines


def steps_memory(recs: list[dict], out_dir: Path) -> list[str]:
    order = {m: i for i, m in enumerate(METHOD_ORDER)}
    recs = sorted(recs, key=lambda r: (r.get("device_kind") or "", r["case"].rsplit("/", 1)[0],
                                       order.get(r.get("method"), 9)))
    rows = [[f"{r['case'].rsplit('/', 1)[0]} (batch {r.get('batch_size')})", r.get("device_kind"), r["method"],
             mib(r.get("param_bytes")), mib(r.get("argument_bytes")), mib(r.get("output_bytes")),
             mib(r.get("temp_bytes")), mib(r.get("peak_bytes")), f"{r.get('extra_peak_bytes_over_uam', 0):,}",
             num(r.get("extra_peak_over_uam_param_trees"), 2)] for r in recs]
    return ["## Memory of the compiled step (XLA memory analysis)", "",
            "MiB; peak = temp + arguments + outputs − aliased; P = the parameters' bytes.", "",
            *md_table(["model", "device", "method", "params MiB (P)", "args", "outputs", "temp", "peak",
                       "extra peak over UAM (bytes)", "extra (P)"], rows), ""]


def steps_scaling(recs: list[dict], out_dir: Path) -> list[str]:
    cases = {r["case"]: r for r in recs}
    ratios = sorted((r for r in recs if r["case"].endswith("/ratios")),
                    key=lambda r: (r.get("family", ""), r.get("n_params", 0)))

    def median(r, m):
        return (cases.get(f"{r['case'].rsplit('/', 1)[0]}/{m}") or {}).get("median_s")

    rows = [[r["case"].rsplit("/", 1)[0], f"{r['n_params']:,}", r.get("batch_size"),
             *(common.fmt_seconds(median(r, m)) for m in SCALING_COLORS),
             num(r.get("rosu_over_uam")), num(r.get("projection_share"), 4), num(r.get("projection_ns_per_param"), 2)]
            for r in ratios]
    fig = Figure(figsize=(6.5, 4.2))
    ax = fig.subplots()
    for family, marker, style in (("mlp", "o", "-"), ("small_cnn", "s", "--")):
        fam = [r for r in ratios if r.get("family") == family]
        for m, color in SCALING_COLORS.items():
            points = [(r["n_params"], median(r, m)) for r in fam if median(r, m) is not None]
            if points:
                ax.plot(*zip(*points, strict=True), marker=marker, ls=style, color=color, label=f"{family} {m}")
    ax.set(xscale="log", yscale="log", xlabel="parameters", ylabel="seconds per call (median)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    png = save(fig, out_dir / "step_scaling.png")
    header = ["case", "params", "batch", *SCALING_COLORS, "ROSU/UAM", "projection share", "projection ns/param"]
    return [*heading("Step time vs parameter count", recs), *md_table(header, rows), "", f"![step scaling]({png.name})",
            ""]


def steps_sharded(recs: list[dict], out_dir: Path) -> list[str]:
    rows = [[r["case"], f"{r['n_params']:,}", r.get("batch_size"), r.get("sharded_param_leaves"),
             f"{r['max_abs_param_diff']:.2e}", f"{r['max_abs_coupling_diff']:.2e}", "**yes**" if r["correct"] else "no",
             common.fmt_seconds(r["single_median_s"]), common.fmt_seconds(r["sharded_median_s"]),
             num(r["sharded_over_single"], 2)] for r in sorted(recs, key=lambda x: x["case"])]
    return ["## Sharded step on fake CPU devices", "", recs[0].get("device_note", ""), "",
            *md_table(["case", "params", "batch", "sharded param leaves", "max abs Δθ", "max abs Δκ", "correct",
                       "single device", "sharded", "sharded/single"], rows), ""]


def steps_end_to_end(recs: list[dict], out_dir: Path) -> list[str]:
    lines = heading("End to end (subprocess; cold = fresh empty cache)", recs)
    if repeated := [r for r in recs if "runs" in r]:
        lines += md_table(["case", "command", "runs", "median wall", "min–max", "job's own total (median)",
                           "max 1-min load", "exit"],
                          [[r["case"], f"`{r['command']}`", len(r["runs"]), f"{r['wall_s_median']:.1f} s",
                            f"{r['wall_s_min']:.1f}–{r['wall_s_max']:.1f} s", num(r.get("job_total_s_median"), 1),
                            num(r.get("loadavg_1m"), 1), r["returncode"]] for r in repeated]) + [""]
    for r in repeated:  # the language-model defaults' rows, from the last cold run
        if r["case"].endswith("-cold") and (task_rows := r["runs"][-1].get("rows")):
            lines += [f"Rows of `{r['command']}` (its last cold run):", "",
                      *md_table(["method", "FQ", "MU", "forget acc", "control acc", "seconds"],
                                [[t["method"], sig(t.get("forget_quality")), num(t.get("model_utility"), 3),
                                  num(t.get("forget_accuracy"), 1), num(t.get("control_accuracy"), 1),
                                  num(t.get("seconds"), 1)] for t in task_rows]), ""]
    if single := [r for r in recs if "wall_s" in r]:
        lines += md_table(["case", "command", "wall", "job's own total", "exit"],
                          [[r["case"], f"`{r['command']}`", f"{r['wall_s']:.1f} s", f"{num(r.get('job_total_s'), 1)} s",
                            r["returncode"]] for r in single]) + [""]
    if rows := [r for r in recs if "rte_ratio" in r]:
        lines += ["Per method (the pipeline's rows; RTE / Retrain = seconds / Retrain's seconds):", "",
                  *md_table(["run", "scenario", "method", "seconds", "RTE / Retrain", "UA", "RA", "TA", "MIA"],
                            [[r["parent_case"], r.get("scenario"), r["method"], num(r["seconds"], 1),
                              num(r["rte_ratio"]), *(num(r.get(k), 1) for k in ("UA", "RA", "TA", "MIA"))]
                             for r in rows]), ""]
    if parent := next((r for r in recs if r.get("rows") is not None), None):
        lines += [f"Settings: epochs {parent.get('epochs')}, unlearn epochs {parent.get('unlearn_epochs')}, subset "
                  f"{parent.get('subset') or 'none (all images)'}.", ""]
    return lines


def table_lm_steps(recs: list[dict]) -> list[str]:
    """Per device and group (every parameter / LoRA trainable): one row per method, then the ratios' targets."""
    lines = []
    if not any(r.get("backend") == "gpu" for r in recs):
        backends, models = ({str(r.get(k)) for r in recs} for k in ("backend", "model"))
        lines += [f"**No GPU record exists yet**: every record here is from a {'/'.join(sorted(backends))} backend "
                  f"({', '.join(sorted(models))}); MFU is undefined there.", ""]
    for device, group in sorted({(str(r.get("device_kind")), str(r.get("group"))) for r in recs}):
        cases = {r.get("method") or "ratios": r for r in recs
                 if (str(r.get("device_kind")), str(r.get("group"))) == (device, group)}
        first = next(iter(cases.values()))
        lines += [f"### {group} ({device})", "", f"Model {first.get('model')} ({fmt(first.get('n_params'))} "
                  f"parameters), {first.get('batch_size')} x {first.get('seq_len')} tokens per batch (forget + "
                  f"retain: {fmt(first.get('tokens_per_step'))} per step).", ""]
        rows = [[m, f"{fmt(r.get('n_trainable'))} ({r.get('trainable')})", r.get("gradient_evaluations"),
                 f"{r['step_ms']:.4g} ({r['p10_s'] * 1e3:.4g}–{r['p90_s'] * 1e3:.4g})", f"{r['tokens_per_s']:,.0f}",
                 f"{sig(r.get('peak_gib'))} / {sig(r.get('device_peak_gib'))}",
                 "-" if r.get("mfu") is None else f"{r['mfu']:.1%}", num(r.get("mfu_over_ft"), 2),
                 with_spread(r.get("ratio_to_uam"), r.get("ratio_to_uam_spread")),
                 common.fmt_seconds(r.get("compile_s"))]
                for m, r in cases.items() if m != "ratios"]  # in the order they were measured (lm_steps.METHODS)
        lines += md_table(["method", "trainable", "gradients", "step ms (p10–p90)", "tokens/s",
                           "peak GiB (XLA step / device)", "MFU", "MFU / FT's", "ratio to UAM [p10–p90]",
                           "compile"], rows)
        if ratios := cases.get("ratios"):
            met = ratios.get("met") or {}
            lines += ["", "Targets: " + "; ".join(
                f"{name} {num(ratios.get(name))} ≤ {limit:g}: "
                + ("not measured" if met.get(name) is None else "met" if met[name] else "**MISSED**")
                for name, limit in (ratios.get("targets") or {}).items()) + "."]
            if ratios.get("not_run"):
                lines.append("Not run: " + "; ".join(f"{m} ({why})" for m, why in ratios["not_run"].items()) + ".")
        lines.append("")
    return lines + ["Peak: XLA's memory analysis of the step / the device's high-water mark so far. MFU: 6 · "
                    "parameters · tokens per gradient evaluation per second over the dense bf16 peak."]


KINDS: dict[str, Kind] = {
    "projection": Kind(
        columns=("case", "n_params", "n_leaves", "projection_median_s", "copy_median_s", "minmax_median_s", "ratio",
                 "minmax_ratio", "spread.projection.p10_s", "spread.projection.p90_s", "compile_s", "minmax_compile_s",
                 "projection_gbps", "copy_gbps", "copy_verified", "hlo_projection.fusions_by_kind", "loadavg_1m"),
        targets=(("ratio", 3.0, "projection time / copy time on CPU"),), split_by="mode", plots=plot_projection),
    "step_cost": Kind(
        columns=("case", "method", "gradient_evaluations", "steps_per_s", "median_s", "p10_s", "p90_s", "compile_s",
                 "rosu_over_uam", "rosu_lagged_over_uam", "rosu_over_ft", "projection_share", "loadavg_1m"),
        targets=(("rosu_lagged_over_uam", 1.03, "ROSU lagged within 3% of UAM"),
                 ("rosu_over_uam", 1.5, "ROSU fresh at most 1.5x UAM"),
                 ("projection_share", 0.02, "projection under 2% of a step (target: ResNet-18)")),
        steps=steps_step_cost),
    "step_memory": Kind(steps=steps_memory),
    "step_scaling": Kind(steps=steps_scaling),
    "sharded_step": Kind(targets=(("max_abs_param_diff", 1e-4, "sharded step == single-device step"),),
                         steps=steps_sharded),
    "end_to_end": Kind(steps=steps_end_to_end),
    "peer": Kind(split_by="record"),
    "lm_steps": Kind(
        targets=(("rosu_over_uam", 1.5, "ROSU fresh at most 1.5x UAM on a language model"),
                 ("rosu_lagged_over_uam", 1.03, "ROSU lagged within 3% of UAM on a language model")),
        table=table_lm_steps,
        absent=("FT, GradDiff, NPO, UAM, ROSU and ROSU-lagged on a Llama-3.2-1B-shape model, every parameter and LoRA "
                "trainable", "gpu-lm_steps.jsonl")),
    "gpu_vision": Kind(
        columns=("case", "UA", "RA", "TA", "MIA", "avg_gap", "published_rosu_ra", "step_s", "mfu", "status"),
        absent=("CIFAR-10 ResNet-18, both scenarios, UAM, UAM+λ and ROSU end to end, with per-step time and MFU",
                "gpu-vision.jsonl")),
}


def build_reports(results: Path) -> tuple[Path, Path]:
    records = load_records(results)
    kinds = {k: [r for r in records if r["benchmark"] == k] for k in dict.fromkeys(r["benchmark"] for r in records)}
    devices = sorted({str(r.get("device_kind")) for r in records})
    report = ["# Benchmark report", "", f"From `{results.name}/*.jsonl` ({len(records)} records, {len(kinds)} kinds; "
              f"device kinds: {', '.join(devices)}); **LOADED**: load average above the core count.", "", "## Targets",
              ""]
    for kind, recs in kinds.items():
        for key, threshold, meaning in KINDS.get(kind, Kind()).targets:
            met, checked = target_results(recs, (key, threshold))
            report.append(f"- **{kind}**: `{key} <= {threshold:g}` met in {met}/{checked} records ({meaning}).")
    report.append("")
    for kind, recs in kinds.items():
        report += kind_section(kind, recs, results)
    for kind, hooks in KINDS.items():
        if hooks.absent and kind not in kinds:
            what, out = hooks.absent
            report += [f"## {kind}", "", f"**No GPU record exists yet**: `benchmarks/{kind}.py` ({what}); run `python "
                       f"-m benchmarks.{kind} --out benchmarks/results/{out}` on a GPU.", ""]
    steps = ["# Step benchmarks", "", f"From `{results.name}/*.jsonl`; absolute times belong to the machine named.", ""]
    for kind, hooks in KINDS.items():
        if hooks.steps and kinds.get(kind):
            steps += hooks.steps(kinds[kind], results)
    paths = results / "REPORT.md", results / "STEPS.md"
    for path, lines in zip(paths, (report, steps), strict=True):
        path.write_text(common.without_local_paths("\n".join(lines).rstrip() + "\n"), encoding="utf-8")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(common.REPO / "benchmarks" / "results"), help="folder of *.jsonl")
    args = parser.parse_args(argv)
    print("wrote " + ", ".join(map(str, build_reports(Path(args.results)))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
