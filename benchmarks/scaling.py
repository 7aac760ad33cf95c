"""Step time vs parameter count, and the sharded step on 8 fake CPU devices.

Part 1 (benchmark='step_scaling'): one step of FT, UAM, ROSU and ROSU-lagged and the projection alone, for
  - a CIFAR-input ReLU MLP 3072-h-h-10 (h = 32 .. 4096: ~0.1M .. ~29M parameters, batch 128), and
  - the small CNN on CIFAR shapes with widths (w, 2w, 4w) (batch 32),
timed interleaved per size (see ``stepbench``), so a user can extrapolate the step and projection time to
their model size. The projection-only scaling up to 2e8 parameters is in ``projection.py --scaling``.
Per size: one record per method (case='mlp/h=<h>/<method>') and one ratio record (case='mlp/h=<h>/ratios').

Part 2 (benchmark='sharded_step', --fake-devices 8): in a subprocess started with
XLA_FLAGS=--xla_force_host_platform_device_count=8 (set before JAX is imported), the registry's ROSU and UAM
steps on the small CNN (CIFAR shape, batch 64) through ``rosu_jax.parallel.sharded_step`` on the meshes
'data=8' and 'data=2,fsdp=4' (parameters sharded over 'fsdp'), against the same step on one device:
  - correctness: max |Δ| of the parameters after a few steps, and of the coupling κ;
  - timing: sharded vs single-device step. The 8 devices are fake: they share this machine's cores, so the
    timing says what sharding costs in overhead, not what 8 real devices would gain.

Usage:
  python benchmarks/scaling.py --out benchmarks/results/scaling.jsonl                      # both parts
  python benchmarks/scaling.py --mlp-hidden 32,512,4096,8192 --no-cnn --no-sharded ...     # pick sizes
  python benchmarks/scaling.py --quick --out /tmp/sc.jsonl                                  # smoke test
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

FAKE_FLAG = "--xla_force_host_platform_device_count"


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv):
    import common

    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/scaling.jsonl")
    parser.add_argument("--mlp-hidden", type=_csv_ints, default=None, help="MLP hidden widths")
    parser.add_argument("--cnn-width", type=_csv_ints, default=None, help="small-CNN base widths w")
    parser.add_argument("--methods", default="FT,UAM,ROSU,ROSU-lagged")
    parser.add_argument("--no-mlp", action="store_true")
    parser.add_argument("--no-cnn", action="store_true")
    parser.add_argument("--no-sharded", action="store_true")
    parser.add_argument("--fake-devices", type=int, default=8, help="fake CPU devices of the sharded part")
    parser.add_argument("--sharded-steps", type=int, default=3, help="steps compared for correctness")
    parser.add_argument("--child", action="store_true", help=argparse_suppress())
    parser.set_defaults(warmup=1)  # big sizes take seconds per step on CPU: 1 warm-up call, 3 timed rounds
    return parser.parse_args(argv)


def argparse_suppress():
    import argparse

    return argparse.SUPPRESS


# --------------------------------------------------------------------------------------------------------
# Part 1: step time vs parameter count
# --------------------------------------------------------------------------------------------------------


def scaling_part(args, env) -> None:
    import common
    import stepbench as sb

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    cases = []
    if not args.no_mlp:
        hidden = args.mlp_hidden or ([8, 32] if args.quick else [32, 128, 512, 1024, 2048, 4096])
        batch = 8 if args.quick else 128
        for h in hidden:
            cases.append(sb.ModelCase(f"mlp/h={h}", "mlp", (32, 32, 3), batch, model_kwargs=(("hidden", h),)))
    if not args.no_cnn and not args.quick:
        for w in args.cnn_width or [16, 32, 64]:
            cases.append(sb.ModelCase(f"small_cnn/w={w}", "small_cnn", (32, 32, 3), 32,
                                      model_kwargs=(("widths", (w, 2 * w, 4 * w)), ("hidden", 128))))
    options = sb.QUICK_COMPILER_OPTIONS if args.quick else None
    rows = []
    for case in cases:
        targets, proj, n_params, param_bytes = sb.step_targets(case, methods)
        for t in [*targets, proj]:
            sb.compile_target(t, options)
        sb.time_interleaved([*targets, proj], warmup=args.warmup, repeats=args.repeats,
                            min_time=args.min_time or 0.0)
        medians = {}
        base = {"family": case.model, "width": dict(case.model_kwargs).get("hidden" if case.model == "mlp"
                                                                             else "widths"),
                "batch_size": case.batch_size, "input_shape": list(case.image_shape), "n_params": n_params,
                "param_bytes": param_bytes}
        for t in [*targets, proj]:
            timing = sb.timing_fields(t, args.warmup)
            medians[t.name] = timing["median_s"]
            rec = sb.record_base("step_scaling", f"{case.name}/{t.name}", env)
            rec.update(base, method=t.name, gradient_evaluations=sb.GRADIENTS.get(t.name), **timing,
                       memory=sb.memory_of(t.compiled))
            common.write_jsonl(args.out, rec)
        rec = sb.record_base("step_scaling", f"{case.name}/ratios", env)
        ratios = {
            "rosu_over_uam": medians.get("ROSU", 0) / medians["UAM"] if "ROSU" in medians and "UAM" in medians
            else None,
            "rosu_lagged_over_uam": medians["ROSU-lagged"] / medians["UAM"]
            if "ROSU-lagged" in medians and "UAM" in medians else None,
            "rosu_over_ft": medians["ROSU"] / medians["FT"] if "ROSU" in medians and "FT" in medians else None,
            "projection_share": medians["projection"] / medians["ROSU"] if "ROSU" in medians else None,
            "projection_s": medians["projection"],
            "projection_ns_per_param": medians["projection"] / n_params * 1e9,
        }
        rec.update(base, **ratios)
        common.write_jsonl(args.out, rec)
        row = {"case": case.name, "n_params": n_params, **{m: common.fmt_seconds(medians.get(m)) for m in
                                                            [*methods, "projection"]},
               "ROSU/UAM": ratios["rosu_over_uam"], "proj share": ratios["projection_share"]}
        rows.append(row)
        common.progress(f"[{case.name}] {n_params:,} params: " + "  ".join(f"{k} {v}" for k, v in row.items()
                                                                            if k not in ("case", "n_params")))
    if rows:
        common.print_table(rows, list(rows[0]))


# --------------------------------------------------------------------------------------------------------
# Part 2: 8 fake devices (runs in a child process)
# --------------------------------------------------------------------------------------------------------


def sharded_child(args) -> None:
    import common
    import jax
    import numpy as np
    import stepbench as sb

    from rosu_jax.parallel import make_mesh, shard_batch, shard_state, sharded_step
    from rosu_jax.steps.registry import get_method

    env = common.environment()
    n = jax.device_count()
    if n != args.fake_devices:
        flags = os.environ.get("XLA_FLAGS")
        raise SystemExit(f"expected {args.fake_devices} devices, JAX sees {n} (XLA_FLAGS={flags})")
    if args.quick:
        case = sb.ModelCase("small_cnn/cifar", "small_cnn", (8, 8, 3), 16, model_kwargs=(("widths", (4, 8)),
                                                                                          ("hidden", 8)))
        min_size = 64
    else:
        case = sb.ModelCase("small_cnn/cifar", "small_cnn", (32, 32, 3), 64,
                            model_kwargs=(("widths", (32, 64, 128)), ("hidden", 128)))
        min_size = 2**12  # the conv and dense kernels are split over 'fsdp'
    apply_fn, params, model_state = sb.build(case)
    n_params = sb.count_params(params)
    forget, retain = sb.make_batches(case)
    forget_np = jax.tree.map(np.asarray, forget)
    retain_np = jax.tree.map(np.asarray, retain)
    keys = [jax.random.fold_in(jax.random.key(0), i) for i in range(args.sharded_steps)]
    meshes = ["data=2,fsdp=4"] if args.quick else ["data=8", "data=2,fsdp=4"]
    methods = ["ROSU"] if args.quick else ["ROSU", "UAM"]
    options = sb.QUICK_COMPILER_OPTIONS if args.quick else None
    jit_kwargs = {"compiler_options": options} if options else {}
    for method in methods:
        stepper = get_method(method).factory(apply_fn, case.num_classes, sb.CONFIG, sb.TOTAL_STEPS, jit=False)
        single = jax.jit(stepper.step, **jit_kwargs)
        ref_state = stepper.init(params, model_state)
        ref_states, ref_metrics = [], []
        state = ref_state
        for key in keys:
            state, m = single(state, forget, retain, key)
            ref_states.append(state)
            ref_metrics.append(m)
        for spec in meshes:
            mesh = make_mesh(spec)
            sh_state0 = shard_state(stepper.init(params, model_state), mesh, min_size=min_size)
            step = sharded_step(stepper, mesh, sh_state0, min_size=min_size, **jit_kwargs)
            fb, rb = shard_batch(forget_np, mesh), shard_batch(retain_np, mesh)
            state = sh_state0
            max_param_diff, max_coupling_diff, max_rel = 0.0, 0.0, 0.0
            for key, ref, ref_m in zip(keys, ref_states, ref_metrics, strict=True):
                state, m = step(state, fb, rb, key)
                for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref.params), strict=True):
                    d = float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
                    max_param_diff = max(max_param_diff, d)
                    max_rel = max(max_rel, d / (float(np.max(np.abs(np.asarray(b)))) + 1e-12))
                max_coupling_diff = max(max_coupling_diff, abs(float(m["coupling"]) - float(ref_m["coupling"])))
            sharded_leaves = sum(
                1 for s in jax.tree.leaves(step.state_shardings.params) if any(p is not None for p in s.spec)
            )
            tol = 1e-4
            # Timing: single-device step vs sharded step, interleaved.
            t_single = sb.Target("single", stepper.step, (ref_state, forget, retain, keys[0]))
            t_single.compiled = single
            t_sharded = sb.Target("sharded", stepper.step, (sh_state0, fb, rb, keys[0]))
            t_sharded.compiled = step.jitted
            sb.time_interleaved([t_single, t_sharded], warmup=args.warmup, repeats=args.repeats,
                                min_time=args.min_time or 0.0)
            rec = sb.record_base("sharded_step", f"fake{n}/{spec}/{method}", env)
            single_t = sb.timing_fields(t_single, args.warmup)
            sharded_t = sb.timing_fields(t_sharded, args.warmup)
            rec.update(
                device_note=f"{n} fake CPU devices sharing {os.cpu_count()} cores "
                            f"(XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}); timings show sharding overhead only",
                fake_devices=True, mesh=spec, method=method, model=case.model, input_shape=list(case.image_shape),
                batch_size=case.batch_size, n_params=n_params, min_shard_size=min_size,
                sharded_param_leaves=sharded_leaves, steps_compared=len(keys),
                max_abs_param_diff=max_param_diff, max_rel_param_diff=max_rel,
                max_abs_coupling_diff=max_coupling_diff, tolerance=tol,
                correct=bool(max_param_diff <= tol and max_coupling_diff <= tol),
                single_median_s=single_t["median_s"], sharded_median_s=sharded_t["median_s"],
                sharded_over_single=sharded_t["median_s"] / single_t["median_s"],
                single=single_t, sharded=sharded_t,
            )
            common.write_jsonl(args.out, rec)
            common.progress(
                f"[fake{n}/{spec}/{method}] {sharded_leaves} param leaves sharded; max|Δθ| {max_param_diff:.2e} "
                f"max|Δκ| {max_coupling_diff:.2e} correct {rec['correct']}; single "
                f"{common.fmt_seconds(single_t['median_s'])} sharded {common.fmt_seconds(sharded_t['median_s'])}"
            )


def sharded_part(args, argv) -> int:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" {FAKE_FLAG}={args.fake_devices}").strip()
    env["JAX_PLATFORMS"] = "cpu"
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child"]
    return subprocess.run(cmd, env=env, check=False).returncode


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.quick:
        args.repeats = args.repeats or 2
        args.warmup = min(args.warmup, 1)
        args.sharded_steps = min(args.sharded_steps, 2)
    args.repeats = args.repeats or 3
    if args.child:
        sharded_child(args)
        return 0
    import common

    env = common.environment()
    common.progress(f"device: {env['device_kind']} x{env['device_count']} ({env['backend']})")
    scaling_part(args, env)
    if not args.no_sharded:
        rc = sharded_part(args, argv)
        if rc:
            common.progress(f"sharded part failed (exit {rc})")
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
