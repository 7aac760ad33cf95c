"""Markdown + PNG report of the step benchmarks (step_cost, step_memory, step_scaling, sharded_step, end_to_end).

Reads every ``*.jsonl`` in the results folder, keeps the records of the kinds above (the latest record per
(benchmark, case, device_kind) wins), and writes ``STEPS.md`` plus ``steps_per_s.png`` and ``step_scaling.png``
next to them. ``report.py`` (the project-wide report) may include the same records; this one is the step
benchmarks' own view, with the targets of the issue and whether each is met.

    python benchmarks/step_report.py                       # benchmarks/results -> benchmarks/results/STEPS.md
    python benchmarks/step_report.py --results DIR --out DIR/STEPS.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

KINDS = ("step_cost", "step_memory", "step_scaling", "sharded_step", "end_to_end")
METHOD_ORDER = ("FT", "UAM", "ROSU", "ROSU-lagged", "ROSU-noproj", "projection")
TARGET_TEXT = {
    "rosu_lagged_over_uam": "ROSU-lagged step time ≤ 1.03 × UAM",
    "rosu_over_uam": "ROSU fresh step time ≤ 1.5 × UAM",
    "projection_share": "projection ≤ 2% of a ResNet-18 ROSU step",
}


def load(results: Path) -> list[dict]:
    latest: dict[tuple, dict] = {}
    for path in sorted(results.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if rec.get("benchmark") in KINDS:
                rec["_file"] = path.name
                latest[(rec["benchmark"], rec["case"], rec.get("device_kind"), rec.get("xla_flags", ""))] = rec
    return list(latest.values())


def fmt_s(x) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        return f"{x * 1e6:.1f} µs"
    if x < 1:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.2f} s"


def fmt(x, nd=3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "**yes**" if x else "no"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def mib(x) -> str:
    return "-" if x is None else f"{x / 2**20:.2f}"


def machine_line(recs: list[dict]) -> str:
    r = recs[0]
    loads = [x["loadavg_1m"] for x in recs if x.get("loadavg_1m") is not None]
    load = f", 1-min load average during the runs {min(loads):.1f}–{max(loads):.1f}" if loads else ""
    return (f"{r.get('device_kind')} ×{r.get('device_count')} ({r.get('backend')}), {r.get('cpu_count')} CPU "
            f"cores, {r.get('platform')}; jax {r.get('jax')}, flax {r.get('flax')}, optax {r.get('optax')}{load}")


def section_step_cost(recs, lines, files, out_dir):
    cost = [r for r in recs if r["benchmark"] == "step_cost"]
    if not cost:
        return
    for device in sorted({r.get("device_kind") for r in cost}):
        dev = [r for r in cost if r.get("device_kind") == device]
        lines += [f"## Step cost ({device})", "", f"Machine: {machine_line(dev)}.", ""]
        models = list(dict.fromkeys(r["case"].rsplit("/", 1)[0] for r in dev))
        lines += ["| model | batch | params | method | gradients | median | p10–p90 | steps/s | compile | repeats |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for model in models:
            for m in METHOD_ORDER:
                r = next((x for x in dev if x["case"] == f"{model}/{m}"), None)
                if r is None:
                    continue
                lines.append(
                    f"| {model} | {r.get('batch_size')} | {r.get('n_params'):,} | {m} | "
                    f"{r.get('gradient_evaluations') or '-'} | {fmt_s(r['median_s'])} | {fmt_s(r['p10_s'])}–"
                    f"{fmt_s(r['p90_s'])} | {fmt(r.get('steps_per_s'), 2)} | {fmt_s(r.get('compile_s'))} | "
                    f"{r['repeats']} |"
                )
        lines += ["", "Ratios of median step times, measured within one run (interleaved repeats); in brackets the "
                  "p10–p90 of the per-round ratios:", "",
                  "| model | ROSU/UAM | ROSU-lagged/UAM | ROSU/FT | UAM/FT | ROSU/ROSU-noproj | projection share "
                  "(timed alone) | projection share (ROSU − noproj) | targets met |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for model in models:
            r = next((x for x in dev if x["case"] == f"{model}/ratios"), None)
            if r is None:
                continue
            pr = r.get("paired_ratios") or {}

            def with_spread(key, r=r, pr=pr):
                p = pr.get(key)
                base = fmt(r.get(key))
                return base if not p else f"{base} [{p['p10']:.2f}–{p['p90']:.2f}]"

            met = r.get("met") or {}
            met_s = ", ".join(f"{k}: {'yes' if v else 'no'}" for k, v in met.items()
                              if k != "projection_share" or model.startswith("resnet18"))
            lines.append(
                f"| {model} | {with_spread('rosu_over_uam')} | {with_spread('rosu_lagged_over_uam')} | "
                f"{with_spread('rosu_over_ft')} | {fmt(r.get('uam_over_ft'))} | {fmt(r.get('rosu_over_rosu_noproj'))} "
                f"| {fmt(r.get('projection_share'), 4)} | {fmt(r.get('projection_share_by_difference'), 4)} | "
                f"{met_s} |"
            )
        lines += ["", "Targets: " + "; ".join(TARGET_TEXT.values()) + ". g_f and g_r do **not** share a forward "
                  "pass (separate `value_and_grad` calls on the forget batch in eval mode and the retain batch in "
                  "train mode; with train-mode BatchNorm a shared pass would change the maths), so ROSU fresh costs "
                  "3 gradients to UAM's 2.", ""]
        png = out_dir / (f"steps_per_s-{_slug(device)}.png")
        if _plot_steps(dev, models, png):
            files.append(png)
            lines += [f"![steps per second]({png.name})", ""]


def _slug(text) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(text)).strip("_").lower()


def _plot_steps(dev, models, png) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    methods = [m for m in METHOD_ORDER if m != "projection"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 3.4), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        vals, errs, names = [], [], []
        for m in methods:
            r = next((x for x in dev if x["case"] == f"{model}/{m}"), None)
            if r is None:
                continue
            names.append(m)
            vals.append(r["median_s"] * 1e3)
            errs.append([(r["median_s"] - r["p10_s"]) * 1e3, (r["p90_s"] - r["median_s"]) * 1e3])
        ax.bar(names, vals, yerr=list(zip(*errs, strict=True)) if errs else None, color="tab:blue", capsize=3)
        ax.set_title(model)
        ax.set_ylabel("ms / step (median, p10–p90)")
        ax.tick_params(axis="x", rotation=40)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def section_memory(recs, lines):
    mem = [r for r in recs if r["benchmark"] == "step_memory"]
    if not mem:
        return
    lines += ["## Memory of the compiled step (XLA memory analysis)", "",
              "MiB; peak = temp + arguments + outputs − aliased. Extra over UAM in bytes and in parameter trees "
              "(P = float32 bytes of the parameters).", "",
              "| model | device | method | params MiB (P) | args | outputs | temp | peak | extra peak over UAM (bytes) "
              "| extra (P) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(mem, key=lambda x: (x.get("device_kind") or "", x["case"].rsplit("/", 1)[0],
                                        METHOD_ORDER.index(x["method"]) if x.get("method") in METHOD_ORDER else 9)):
        lines.append(
            f"| {r['case'].rsplit('/', 1)[0]} (batch {r.get('batch_size')}) | {r.get('device_kind')} | {r['method']} "
            f"| {mib(r.get('param_bytes'))} | {mib(r.get('argument_bytes'))} | {mib(r.get('output_bytes'))} | "
            f"{mib(r.get('temp_bytes'))} | {mib(r.get('peak_bytes'))} | "
            f"{r.get('extra_peak_bytes_over_uam', '-'):,} | {fmt(r.get('extra_peak_over_uam_param_trees'), 2)} |"
            if isinstance(r.get("extra_peak_bytes_over_uam"), int) else
            f"| {r['case'].rsplit('/', 1)[0]} | {r.get('device_kind')} | {r['method']} | {mib(r.get('param_bytes'))} "
            f"| {mib(r.get('argument_bytes'))} | {mib(r.get('output_bytes'))} | {mib(r.get('temp_bytes'))} | "
            f"{mib(r.get('peak_bytes'))} | - | - |"
        )
    lines += ["", "What the maths needs: UAM (2 gradients, `make_uam_step`) keeps its last surrogate gradient in the "
              "state for its κ diagnostic (+1 P in arguments and outputs); ROSU fresh holds g_r at θ while δ is "
              "formed (+1 P of temporaries) and keeps no tree in the state; ROSU lagged keeps the previous g̃ in the "
              "state exactly as UAM does.", ""]


def section_scaling(recs, lines, files, out_dir):
    sc = [r for r in recs if r["benchmark"] == "step_scaling"]
    if not sc:
        return
    lines += ["## Step time vs parameter count", "", f"Machine: {machine_line(sc)}.", "",
              "| case | params | batch | FT | UAM | ROSU | ROSU-lagged | projection | ROSU/UAM | projection share "
              "| projection ns/param |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios = [r for r in sc if r["case"].endswith("/ratios")]
    ratios.sort(key=lambda r: (r.get("family", ""), r.get("n_params", 0)))
    for r in ratios:
        prefix = r["case"].rsplit("/", 1)[0]
        med = {m: next((x["median_s"] for x in sc if x["case"] == f"{prefix}/{m}"), None) for m in METHOD_ORDER}
        lines.append(
            f"| {prefix} | {r['n_params']:,} | {r.get('batch_size')} | {fmt_s(med['FT'])} | {fmt_s(med['UAM'])} | "
            f"{fmt_s(med['ROSU'])} | {fmt_s(med['ROSU-lagged'])} | {fmt_s(med['projection'])} | "
            f"{fmt(r.get('rosu_over_uam'))} | {fmt(r.get('projection_share'), 4)} | "
            f"{fmt(r.get('projection_ns_per_param'), 2)} |"
        )
    lines.append("")
    png = out_dir / "step_scaling.png"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for family, marker in (("mlp", "o"), ("small_cnn", "s")):
        fam = [r for r in ratios if r.get("family") == family]
        if not fam:
            continue
        for m, color in (("FT", "tab:gray"), ("UAM", "tab:blue"), ("ROSU", "tab:red"), ("ROSU-lagged", "tab:orange"),
                         ("projection", "tab:green")):
            xs, ys = [], []
            for r in fam:
                prefix = r["case"].rsplit("/", 1)[0]
                v = next((x["median_s"] for x in sc if x["case"] == f"{prefix}/{m}"), None)
                if v is not None:
                    xs.append(r["n_params"])
                    ys.append(v)
            if xs:
                ax.plot(xs, ys, marker=marker, color=color, label=f"{family} {m}",
                        linestyle="-" if family == "mlp" else "--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("seconds per call (median)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)
    files.append(png)
    lines += [f"![step scaling]({png.name})", ""]


def section_sharded(recs, lines):
    sh = [r for r in recs if r["benchmark"] == "sharded_step"]
    if not sh:
        return
    lines += ["## Sharded step on fake CPU devices", "", sh[0].get("device_note", ""), "",
              "| case | params | batch | sharded param leaves | max abs Δθ | max abs Δκ | correct | single device | "
              "sharded | sharded/single |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(sh, key=lambda x: x["case"]):
        lines.append(
            f"| {r['case']} | {r.get('n_params'):,} | {r.get('batch_size')} | {r.get('sharded_param_leaves')} | "
            f"{r['max_abs_param_diff']:.2e} | {r['max_abs_coupling_diff']:.2e} | {fmt(r['correct'])} | "
            f"{fmt_s(r['single_median_s'])} | {fmt_s(r['sharded_median_s'])} | {fmt(r['sharded_over_single'], 2)} |"
        )
    lines.append("")


def section_e2e(recs, lines):
    e2e = [r for r in recs if r["benchmark"] == "end_to_end"]
    if not e2e:
        return
    lines += ["## End to end (fresh cache, subprocess)", "", f"Machine: {machine_line(e2e)}.", "",
              "| case | command | wall | job's own total | exit |", "|---|---|---|---|---|"]
    for r in e2e:
        if "wall_s" in r:
            lines.append(f"| {r['case']} | `{r['command']}` | {r['wall_s']:.1f} s | "
                         f"{fmt(r.get('job_total_s'), 1)} s | {r['returncode']} |")
    rows = [r for r in e2e if "rte_ratio" in r]
    if rows:
        lines += ["", "Per method (the pipeline's rows: `seconds` is the run's wall time including compilation, "
                  "`rte_ratio` = seconds / Retrain's seconds):", "",
                  "| run | scenario | method | seconds | RTE / Retrain | UA | RA | TA | MIA |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in rows:
            lines.append(f"| {r['parent_case']} | {r.get('scenario')} | {r['method']} | {fmt(r['seconds'], 1)} | "
                         f"{fmt(r['rte_ratio'])} | {fmt(r.get('UA'), 1)} | {fmt(r.get('RA'), 1)} | "
                         f"{fmt(r.get('TA'), 1)} | {fmt(r.get('MIA'), 1)} |")
        sub = next((r for r in e2e if r.get("rows") is not None), None)
        if sub is not None:
            lines += ["", f"Settings: epochs {sub.get('epochs')}, unlearn epochs {sub.get('unlearn_epochs')}, "
                      f"subset {sub.get('subset') or 'none (all images)'}, data {sub.get('data_dir')}."]
    lines.append("")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(HERE / "results"))
    parser.add_argument("--out", default=None, help="Markdown file (default: <results>/STEPS.md)")
    args = parser.parse_args(argv)
    results = Path(args.results)
    out = Path(args.out) if args.out else results / "STEPS.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    recs = load(results)
    lines = ["# Step benchmarks", "", "Generated by `python benchmarks/step_report.py` from "
             f"`{results}/*.jsonl`. Ratios are within one run; absolute times belong to the machine named.", ""]
    files: list[Path] = []
    section_step_cost(recs, lines, files, out.parent)
    section_memory(recs, lines)
    section_scaling(recs, lines, files, out.parent)
    section_sharded(recs, lines)
    section_e2e(recs, lines)
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}" + "".join(f", {f}" for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
