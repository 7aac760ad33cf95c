"""Step cost of ROSU against fine-tuning and UAM, the projection's share of a step, and each step's memory.

For each model case (small CNN on digits 8x8x1 batch 64, small CNN on CIFAR 32x32x3 batch 128, ResNet-18 on
CIFAR 32x32x3 batch 64 on CPU / 128 with --resnet-batch 128) it compiles one step of every method in
``stepbench.ALL_METHODS`` plus the jitted ``retain_orthogonal_perturbation`` on the model's real g_f and g_r,
then times them interleaved (see ``stepbench``). Records:

  benchmark='step_cost',   case='<model>/<method>'     steps/s, median/spread, compile time, gradients per step
  benchmark='step_cost',   case='<model>/projection'   the projection alone on this model's gradient pytrees
  benchmark='step_cost',   case='<model>/ratios'       ROSU/UAM, ROSU-lagged/UAM, ROSU/FT, projection share,
                                                       and whether each target of the issue is met
  benchmark='step_memory', case='<model>/<method>'     XLA memory analysis of the compiled step (bytes) and
                                                       the extra over UAM

Targets (reported as met: true/false, never asserted): ROSU-lagged within 3% of UAM; ROSU fresh at most 1.5x
UAM (g_f and g_r do not share a forward pass here, so ~1.5x = 3/2 gradients is the expected cost); the
projection under 2% of a ResNet-18 step.

Usage:
  python benchmarks/step_cost.py --out benchmarks/results/step_cost.jsonl
  python benchmarks/step_cost.py --models resnet18/cifar --resnet-batch 128 --repeats 20   # e.g. on a GPU
  python benchmarks/step_cost.py --quick --out /tmp/s.jsonl                                 # smoke test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import stepbench as sb  # noqa: E402

BENCHMARK = "step_cost"
TARGETS = {
    "rosu_lagged_over_uam": 1.03,
    "rosu_over_uam": 1.5,
    "projection_share": 0.02,  # applies to ResNet-18; reported for every model
}


def model_cases(quick: bool, resnet_batch: int, cnn_batch: int | None) -> dict[str, sb.ModelCase]:
    if quick:
        tiny = (("widths", (4,)), ("hidden", 8))
        return {"small_cnn/digits": sb.ModelCase("small_cnn/digits", "small_cnn", (8, 8, 1), 8, model_kwargs=tiny)}
    cifar_cnn = (("widths", (32, 64, 128)), ("hidden", 128))  # experiments/cifar10_folder_small_cnn.py
    return {
        "small_cnn/digits": sb.ModelCase("small_cnn/digits", "small_cnn", (8, 8, 1), cnn_batch or 64),
        "small_cnn/cifar": sb.ModelCase("small_cnn/cifar", "small_cnn", (32, 32, 3), cnn_batch or 128,
                                        model_kwargs=cifar_cnn),
        "resnet18/cifar": sb.ModelCase("resnet18/cifar", "resnet18", (32, 32, 3), resnet_batch),
    }


def run_case(case: sb.ModelCase, methods, args, env) -> list[dict]:
    if case.model == "resnet18" and not args.quick:
        args = argparse.Namespace(**{**vars(args), "warmup": args.resnet_warmup or args.warmup,
                                     "repeats": args.resnet_repeats or args.repeats, "min_time": 0.0})
    common.progress(f"[{case.name}] building and compiling {', '.join(methods)} + projection ...")
    targets, proj, n_params, param_bytes = sb.step_targets(case, methods)
    for t in [*targets, proj]:
        sb.compile_target(t, sb.QUICK_COMPILER_OPTIONS if args.quick else None)
        common.progress(f"  compiled {t.name}: {common.fmt_seconds(t.compile_s)}")
    sb.time_interleaved([*targets, proj], warmup=args.warmup, repeats=args.repeats, min_time=args.min_time or 0.0)
    by_name = {t.name: t for t in targets}
    base = {"model": case.model, "input_shape": list(case.image_shape), "batch_size": case.batch_size,
            "n_params": n_params, "param_bytes": param_bytes}
    records = []
    medians = {}
    for t in targets:
        timing = sb.timing_fields(t, args.warmup)
        medians[t.name] = timing["median_s"]
        rec = sb.record_base(BENCHMARK, f"{case.name}/{t.name}", env)
        rec.update(base, method=t.name, gradient_evaluations=sb.GRADIENTS[t.name],
                   shared_forward=sb.SHARED_FORWARD if t.name.startswith("ROSU") else None,
                   steps_per_s=1.0 / timing["median_s"], **timing)
        records.append(rec)
    timing = sb.timing_fields(proj, args.warmup)
    medians["projection"] = timing["median_s"]
    rec = sb.record_base(BENCHMARK, f"{case.name}/projection", env)
    rec.update(base, method="projection", **timing)
    records.append(rec)

    by_time = {t.name: t.times for t in [*targets, proj]}

    def paired(a, b):
        """Ratios of a's and b's calls in the same round of the interleaving: (p10, median, p90)."""
        if a not in by_time or b not in by_time:
            return None
        rs = sorted(x / y for x, y in zip(by_time[a], by_time[b], strict=True))
        return {f"p{q}": common._percentile(rs, q) for q in (10, 50, 90)}

    def ratio(a, b):
        """Median of the per-round ratios: robust to load that drifts during the run (the primary figure)."""
        p = paired(a, b)
        return None if p is None else p["p50"]

    def ratio_of_medians(a, b):
        return medians[a] / medians[b] if a in medians and b in medians else None

    def min_ratio(a, b):
        return min(by_time[a]) / min(by_time[b]) if a in by_time and b in by_time else None

    pairs = {
        "rosu_over_uam": ("ROSU", "UAM"),
        "rosu_lagged_over_uam": ("ROSU-lagged", "UAM"),
        "rosu_over_ft": ("ROSU", "FT"),
        "uam_over_ft": ("UAM", "FT"),
        "rosu_lagged_over_ft": ("ROSU-lagged", "FT"),
        "rosu_over_rosu_noproj": ("ROSU", "ROSU-noproj"),
        "projection_share": ("projection", "ROSU"),
        "projection_share_lagged": ("projection", "ROSU-lagged"),
    }
    ratios = {k: ratio(a, b) for k, (a, b) in pairs.items()}
    ratios.update({f"{k}_of_medians": ratio_of_medians(a, b) for k, (a, b) in pairs.items()})
    # Ratios of the fastest call of each: the least sensitive to other processes on a shared machine.
    ratios.update({f"{k}_min": min_ratio(a, b) for k, (a, b) in pairs.items()})
    ratios["projection_share_by_difference"] = (
        (medians["ROSU"] - medians["ROSU-noproj"]) / medians["ROSU"]
        if "ROSU" in medians and "ROSU-noproj" in medians else None
    )
    rec = sb.record_base(BENCHMARK, f"{case.name}/ratios", env)
    rec.update(base, **ratios,
               ratio_statistic="median over rounds of the per-round ratio (calls interleaved round-robin)",
               paired_ratios={k: paired(a, b) for k, (a, b) in pairs.items()},
               shared_forward=sb.SHARED_FORWARD,
               shared_forward_note=("g_f and g_r are separate value_and_grad calls on the forget batch (eval-mode "
                                    "BatchNorm) and the retain batch (train mode); a shared pass would change the "
                                    "maths under train-mode BatchNorm, so ROSU fresh costs 3 gradients vs UAM's 2"),
               targets=TARGETS,
               met={k: sb.met(ratios[k], v) for k, v in TARGETS.items()},
               repeats=len(targets[0].times) if targets else args.repeats, warmup=args.warmup)
    records.append(rec)

    uam_mem = sb.memory_of(by_name["UAM"].compiled) if "UAM" in by_name else None
    for t in targets:
        mem = sb.memory_of(t.compiled)
        rec = sb.record_base("step_memory", f"{case.name}/{t.name}", env)
        extra = {}
        if uam_mem is not None and mem["peak_bytes"] is not None and uam_mem["peak_bytes"] is not None:
            for k in ("temp_bytes", "argument_bytes", "output_bytes", "peak_bytes"):
                extra[f"extra_{k}_over_uam"] = mem[k] - uam_mem[k]
            extra["extra_peak_over_uam_param_trees"] = extra["extra_peak_bytes_over_uam"] / param_bytes
        rec.update(base, method=t.name, gradient_evaluations=sb.GRADIENTS[t.name], **mem, **extra)
        records.append(rec)
    return records


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/step_cost.jsonl")
    parser.add_argument("--models", default=None, help="comma-separated model cases (default: all)")
    parser.add_argument("--methods", default=",".join(sb.ALL_METHODS), help="comma-separated methods")
    parser.add_argument("--resnet-batch", type=int, default=64, help="ResNet-18 batch size (64 on CPU)")
    parser.add_argument("--resnet-repeats", type=int, default=None,
                        help="ResNet-18 timed rounds (default: --repeats; run_all.sh uses 3 on CPU)")
    parser.add_argument("--resnet-warmup", type=int, default=None, help="ResNet-18 warm-up calls")
    parser.add_argument("--cnn-batch", type=int, default=None, help="override the small-CNN batch sizes")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = args.repeats or 2
        args.warmup = min(args.warmup, 1)
    args.repeats = args.repeats or 5
    if args.min_time is None and not args.quick:
        args.min_time = 8.0  # cheap steps: go round-robin until the slowest method has run 8 s (max 200 rounds)
    cases = model_cases(args.quick, args.resnet_batch, args.cnn_batch)
    if args.models:
        names = [m.strip() for m in args.models.split(",") if m.strip()]
        unknown = [n for n in names if n not in cases]
        if unknown:
            parser.error(f"unknown model case(s) {unknown}; known: {list(cases)}")
        cases = {n: cases[n] for n in names}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    env = common.environment()
    common.progress(f"device: {env['device_kind']} x{env['device_count']} ({env['backend']}), jax {env['jax']}")
    summary = []
    for case in cases.values():
        for rec in run_case(case, methods, args, env):
            common.write_jsonl(args.out, rec)
            if rec["benchmark"] == BENCHMARK and not rec["case"].endswith("/ratios"):
                summary.append({"case": rec["case"], "median": common.fmt_seconds(rec["median_s"]),
                                "steps/s": rec.get("steps_per_s"), "compile": common.fmt_seconds(rec["compile_s"]),
                                "grads": rec.get("gradient_evaluations")})
            elif rec["case"].endswith("/ratios"):
                shown = ("rosu_over_uam", "rosu_lagged_over_uam", "rosu_over_ft", "projection_share")
                common.progress(f"[{case.name}] " + "  ".join(f"{k} {common._cell(rec[k])}" for k in shown)
                                + f"  met {rec['met']}")
    common.print_table(summary, ["case", "median", "steps/s", "compile", "grads"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
