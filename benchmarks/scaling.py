"""Step time vs parameter count (``step_scaling``: ``step_cost``'s steps and projection, MLPs 3072-h-h-10 and small
CNNs of widths (w, 2w, 4w)); in a subprocess on 8 fake CPU devices, ``sharded_step`` vs one device (|Δθ|, |Δκ|).

  python -m benchmarks.scaling --out benchmarks/results/scaling.jsonl
  python -m benchmarks.scaling --mlp-hidden 512,8192 --no-cnn --no-sharded --out sizes.jsonl
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys

import jax
import numpy as np

from benchmarks import common
from benchmarks.step_cost import CIFAR_CNN, ModelCase, build, make_batches, make_stepper, ratio_fields, step_targets
from rosu_jax.tasks.vision.losses import loss_terms

FAKE_DEVICES = 8  # part 2's fake CPU devices


def scaling_part(args, env) -> None:
    methods = args.methods.split(",")
    hidden = args.mlp_hidden or ([8, 32] if args.quick else [32, 128, 512, 1024, 2048, 4096])
    cases = [ModelCase(f"mlp/h={h}", "mlp", (32, 32, 3), 8 if args.quick else 128, (("hidden", h),)) for h in hidden]
    if not (args.no_cnn or args.quick):
        cases += [ModelCase(f"small_cnn/w={w}", "small_cnn", (32, 32, 3), 32, (("widths", (w, 2 * w, 4 * w)),
                                                                             ("hidden", 128))) for w in (16, 32, 64)]
    for case in cases:
        targets, projection, fields, gradients = step_targets(case, methods, args.quick)
        common.time_fn([*targets, projection], warmup=args.warmup, repeats=args.repeats, min_time=args.min_time or 0.0)
        width = dict(case.model_kwargs)["hidden" if case.model == "mlp" else "widths"]
        fields = {**fields, "family": case.model, "width": width}
        for t in [*targets, projection]:
            common.write_jsonl(args.out, common.record(
                "step_scaling", f"{case.name}/{t.name}", env, **fields, method=t.name,
                gradient_evaluations=gradients.get(t.name), warmup=args.warmup, **t.timing(),
                memory=common.memory_of(t.compiled)))
        projection_s = projection.timing()["median_s"]
        ratios = ratio_fields({t.name: t.times for t in [*targets, projection]})
        common.write_jsonl(args.out, common.record(
            "step_scaling", f"{case.name}/ratios", env, **fields, **ratios, projection_s=projection_s,
            projection_ns_per_param=projection_s / fields["n_params"] * 1e9))
        common.progress(f"[{case.name}] {fields['n_params']:,} params: " + "  ".join(
            f"{t.name} {common.fmt_seconds(t.timing()['median_s'])}" for t in [*targets, projection]))


def max_abs_diff(a, b) -> float:
    return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
               for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))


def sharded_child(args) -> None:
    """Part 2, in the child process that sees the fake devices."""
    from rosu_jax.parallel import make_mesh, shard_batch, shard_state, sharded_step

    env = common.environment()
    n = jax.device_count()
    if n != FAKE_DEVICES:
        raise SystemExit(f"expected {FAKE_DEVICES} devices, JAX sees {n} (XLA_FLAGS={env['xla_flags']})")
    case = ModelCase("small_cnn/cifar", "small_cnn", (8, 8, 3), 16, (("widths", (4, 8)), ("hidden", 8))) \
        if args.quick else ModelCase("small_cnn/cifar", "small_cnn", (32, 32, 3), 64, CIFAR_CNN)
    min_size = 64 if args.quick else 2**12  # the conv and dense kernels are split over 'fsdp'
    apply_fn, params, model_state = build(case)
    terms = loss_terms(apply_fn, case.num_classes)
    forget, retain = make_batches(case)
    keys = [jax.random.fold_in(jax.random.key(0), i) for i in range(2 if args.quick else 3)]  # steps compared
    options = {"compiler_options": common.QUICK_COMPILER_OPTIONS} if args.quick else {}
    for method in ["ROSU"] if args.quick else ["ROSU", "UAM"]:
        stepper = make_stepper(method, terms)
        single = jax.jit(stepper.step, **options)
        initial, reference = stepper.init(params, model_state), []
        for key in keys:
            reference.append(single(reference[-1][0] if reference else initial, forget, retain, key))
        for spec in ["data=2,fsdp=4"] if args.quick else ["data=8", "data=2,fsdp=4"]:
            mesh = make_mesh(spec)
            state0 = shard_state(stepper.init(params, model_state), mesh, min_size=min_size)
            step = sharded_step(stepper, mesh, state0, min_size=min_size, **options)
            sharded_batches = tuple(shard_batch(jax.tree.map(np.asarray, b), mesh) for b in (forget, retain))
            state, param_diff, coupling_diff = state0, 0.0, 0.0
            for key, (ref_state, ref_metrics) in zip(keys, reference, strict=True):
                state, metrics = step(state, *sharded_batches, key)
                param_diff = max(param_diff, max_abs_diff(state.params, ref_state.params))
                coupling_diff = max(coupling_diff, abs(float(metrics["coupling"]) - float(ref_metrics["coupling"])))
            shardings = jax.tree.leaves(step.state_shardings.params)
            sharded_leaves = sum(any(p is not None for p in s.spec) for s in shardings)
            timed = [common.Timed("single", functools.partial(single, initial, forget, retain, keys[0])),
                     common.Timed("sharded", functools.partial(step.jitted, state0, *sharded_batches, keys[0]))]
            common.time_fn(timed, warmup=args.warmup, repeats=args.repeats, min_time=args.min_time or 0.0)
            single_t, sharded_t = (t.timing() for t in timed)
            rec = common.record(
                "sharded_step", f"fake{n}/{spec}/{method}", env, fake_devices=True, mesh=spec, method=method,
                device_note=f"{n} fake CPU devices sharing {os.cpu_count()} cores ({env['xla_flags']}); timings show "
                            "sharding overhead only",
                **case.fields(params), min_shard_size=min_size,
                sharded_param_leaves=sharded_leaves, steps_compared=len(keys), max_abs_param_diff=param_diff,
                max_abs_coupling_diff=coupling_diff, tolerance=1e-4, correct=max(param_diff, coupling_diff) <= 1e-4,
                single_median_s=single_t["median_s"], sharded_median_s=sharded_t["median_s"],
                sharded_over_single=sharded_t["median_s"] / single_t["median_s"], single=single_t, sharded=sharded_t)
            common.write_jsonl(args.out, rec)
            common.progress(f"[{rec['case']}] {sharded_leaves} leaves sharded; max|Δθ| {param_diff:.2e} max|Δκ| "
                            f"{coupling_diff:.2e}; sharded/single {rec['sharded_over_single']:.2f}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = common.base_parser(__doc__, "benchmarks/results/scaling.jsonl")
    parser.add_argument("--mlp-hidden", type=lambda text: [int(x) for x in text.split(",")], help="MLP hidden widths h")
    parser.add_argument("--methods", default="FT,UAM,ROSU,ROSU-lagged")
    parser.add_argument("--no-cnn", action="store_true")
    parser.add_argument("--no-sharded", action="store_true", help="skip part 2 (the fake devices)")
    parser.add_argument("--sharded-child", action="store_true", help="(internal) run part 2 in this process")
    parser.set_defaults(warmup=1)  # large sizes take seconds per step on a CPU: 1 warm-up call, 3 timed rounds
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 3)
    if args.sharded_child:
        sharded_child(args)
        return 0
    env = common.environment()
    common.progress(f"device: {env['device_kind']} x{env['device_count']} ({env['backend']})")
    scaling_part(args, env)
    if args.no_sharded:
        return 0
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={FAKE_DEVICES}".strip()
    child_env = {**os.environ, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags}
    cmd = [sys.executable, "-m", "benchmarks.scaling", *argv, "--sharded-child"]
    return subprocess.run(cmd, env=child_env, cwd=common.REPO, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
