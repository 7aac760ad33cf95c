"""Step cost of ROSU against FT and UAM, the projection's share and each step's memory: every ``METHODS`` step and the
projection alone, timed round-robin per model case (noise images, a one-class forget batch). Records ``step_cost``
'<model>/<method>', '<model>/projection', '<model>/ratios' (targets ``met``), ``step_memory`` '<model>/<method>'.

  python -m benchmarks.step_cost --out benchmarks/results/step_cost.jsonl
  python -m benchmarks.step_cost --memory-only --models resnet18/cifar --resnet-batch 256 --out memory.jsonl
"""

from __future__ import annotations

import dataclasses
import math
import sys
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from rosu_jax.core.perturbation import retain_orthogonal_perturbation
from rosu_jax.methods import get_method
from rosu_jax.models import build_model, count_params
from rosu_jax.tasks.vision.losses import loss_terms

# benchmark name -> (registry method, hyperparameters besides its defaults)
METHODS = {
    "FT": ("FT", {}),  # 1 gradient: the retain batch
    "UAM": ("UAM", {}),  # 2: g_f at θ, g̃ at θ+δ (plus a retain forward pass at θ for BatchNorm statistics)
    "ROSU": ("ROSU", {}),  # 3: g_f and g_r at θ, g̃ at θ+δ
    "ROSU-lagged": ("ROSU", {"lagged": True}),  # 2: g_r = the previous step's g̃
    "ROSU-noproj": ("UAM+λ", {}),  # 3: ROSU's step with the projection off
}
TOTAL_STEPS = 1000  # sets the optimizer's schedules only
CIFAR_CNN = (("widths", (32, 64, 128)), ("hidden", 128))  # experiments/cifar10_folder_small_cnn.py
TARGETS = {"rosu_lagged_over_uam": 1.03, "rosu_over_uam": 1.5, "projection_share": 0.02}
RATIOS = {  # name -> (numerator, denominator)
    "rosu_over_uam": ("ROSU", "UAM"), "rosu_lagged_over_uam": ("ROSU-lagged", "UAM"), "rosu_over_ft": ("ROSU", "FT"),
    "uam_over_ft": ("UAM", "FT"), "rosu_lagged_over_ft": ("ROSU-lagged", "FT"),
    "rosu_over_rosu_noproj": ("ROSU", "ROSU-noproj"), "projection_share": ("projection", "ROSU"),
    "projection_share_lagged": ("projection", "ROSU-lagged"),
}


@dataclasses.dataclass(frozen=True)
class ModelCase:
    """A model and input shape; ``name`` prefixes the records' cases ('small_cnn/digits', 'mlp/h=512', ...)."""

    name: str
    model: str  # 'small_cnn' | 'resnet18' | 'mlp'
    image_shape: tuple[int, int, int]
    batch_size: int
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    num_classes: int = 10

    def fields(self, params) -> dict[str, Any]:
        param_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
        return {"model": self.model, "input_shape": list(self.image_shape), "batch_size": self.batch_size,
                "n_params": count_params(params), "param_bytes": int(param_bytes)}


def model_cases(quick: bool, resnet_batch: int = 64) -> dict[str, ModelCase]:
    if quick:
        return {"small_cnn/digits": ModelCase("small_cnn/digits", "small_cnn", (8, 8, 1), 8,
                                              (("widths", (4,)), ("hidden", 8)))}
    cases = [ModelCase("small_cnn/digits", "small_cnn", (8, 8, 1), 64),
             ModelCase("small_cnn/cifar", "small_cnn", (32, 32, 3), 128, CIFAR_CNN),
             ModelCase("resnet18/cifar", "resnet18", (32, 32, 3), resnet_batch)]
    return {c.name: c for c in cases}


def mlp_apply_fn(params, model_state, images, *, train: bool):
    """A ReLU MLP on flattened images, with the models' ``apply_fn`` contract (no model state)."""
    del train
    x = images.reshape(images.shape[0], -1)
    for i in range(len(params)):
        x = x @ params[f"dense{i}"]["kernel"] + params[f"dense{i}"]["bias"]
        x = jax.nn.relu(x) if i < len(params) - 1 else x
    return x, model_state


def build(case: ModelCase):
    """(apply_fn, params, model_state) of a case; the MLP is d_in-h-h-classes with He-normal kernels."""
    kwargs = dict(case.model_kwargs)
    if case.model != "mlp":
        return build_model(case.model, case.num_classes, case.image_shape[-1], seed=0, **kwargs)
    rng = np.random.default_rng(0)
    dims = [math.prod(case.image_shape), kwargs["hidden"], kwargs["hidden"], case.num_classes]
    layers = enumerate(zip(dims[:-1], dims[1:], strict=True))
    params = {f"dense{i}": {"kernel": jnp.asarray(rng.normal(0, math.sqrt(2 / a), (a, b)), jnp.float32),
                            "bias": jnp.zeros((b,), jnp.float32)} for i, (a, b) in layers}
    return mlp_apply_fn, params, {}


def make_batches(case: ModelCase) -> tuple[dict, dict]:
    """A forget batch of one class (as in class-wise forgetting) and a retain batch of the others."""
    rng = np.random.default_rng(0)
    shape = (case.batch_size, *case.image_shape)
    forget = {"image": jnp.asarray(rng.normal(size=shape), jnp.float32), "label": jnp.zeros(shape[0], jnp.int32)}
    retain = {"image": jnp.asarray(rng.normal(size=shape), jnp.float32),
              "label": jnp.asarray(rng.integers(1, case.num_classes, shape[0]), jnp.int32)}
    return forget, retain


def make_stepper(method: str, terms: dict, **hyperparameters):
    """The registry's stepper of a benchmark method (``METHODS``), with ``hyperparameters`` on top."""
    registry_name, values = METHODS[method]
    registry_method = get_method(registry_name)
    return registry_method.build(terms, registry_method.configure(values | hyperparameters), TOTAL_STEPS)


def step_targets(case: ModelCase, methods, quick: bool):
    """(compiled step of every method, compiled projection, the case's record fields, gradients per step)."""
    apply_fn, params, model_state = build(case)
    terms = loss_terms(apply_fn, case.num_classes)
    forget, retain = make_batches(case)
    g_f, g_r = (jax.jit(jax.grad(lambda p, b, name=name: terms[name](p, model_state, b, None)[0]))(params, batch)
                for name, batch in (("forget", forget), ("retain", retain)))
    key = jax.random.key(0)
    targets, gradients = [], {}
    for method in methods:
        stepper = make_stepper(method, terms)
        state = stepper.init(params, model_state)
        if method == "ROSU-lagged":  # a realistic (non-zero) previous surrogate gradient in the state
            state = state._replace(opt_state=state.opt_state._replace(lagged_retain_grads=g_r))
        targets.append(common.compile_fn(method, stepper.step, state, forget, retain, key, quick=quick))
        gradients[method] = stepper.gradient_evaluations
    rho = jnp.float32(get_method("ROSU").configure().rho)
    projection = common.compile_fn("projection", retain_orthogonal_perturbation, g_f, g_r, rho, quick=quick)
    return targets, projection, case.fields(params), gradients


def ratio_fields(times: dict[str, list[float]]) -> dict[str, Any]:
    """Each ``RATIOS`` entry: the per-round ratios' median and p10-p90; the projection's share (ROSU − noproj)/ROSU."""
    spreads = common.paired_ratios(times, RATIOS)
    out: dict[str, Any] = {"paired_ratios": spreads, **{name: spread["p50"] for name, spread in spreads.items()}}
    if "ROSU" in times and "ROSU-noproj" in times:
        rosu, noproj = (common.percentile(times[m], 50) for m in ("ROSU", "ROSU-noproj"))
        out["projection_share_by_difference"] = (rosu - noproj) / rosu
    out["ratio_statistic"] = "median over rounds of the per-round ratio (calls interleaved round-robin)"
    return out


def memory_records(case: ModelCase, targets, fields: dict, gradients: dict, env: dict) -> list[dict]:
    memory = {t.name: common.memory_of(t.compiled) for t in targets}
    records, uam = [], memory.get("UAM")
    for t in targets:
        extra = {}
        if uam and uam["peak_bytes"] is not None and memory[t.name]["peak_bytes"] is not None:
            extra = {f"extra_{k}_over_uam": memory[t.name][k] - uam[k]
                     for k in ("temp_bytes", "argument_bytes", "output_bytes", "peak_bytes")}
            extra["extra_peak_over_uam_param_trees"] = extra["extra_peak_bytes_over_uam"] / fields["param_bytes"]
        records.append(common.record("step_memory", f"{case.name}/{t.name}", env, **fields, method=t.name,
                                     gradient_evaluations=gradients[t.name], compile_s=t.compile_s,
                                     **memory[t.name], **extra))
    return records


def run_case(case: ModelCase, methods, args, env) -> list[dict]:
    warmup, repeats, min_time = args.warmup, args.repeats, args.min_time
    if case.model == "resnet18" and not args.quick:  # seconds per step on a CPU: few rounds
        warmup, repeats, min_time = args.resnet_warmup, args.resnet_repeats, 0.0
    common.progress(f"[{case.name}] compiling {', '.join(methods)} and the projection ...")
    targets, projection, fields, gradients = step_targets(case, methods, args.quick)
    if args.memory_only:
        return memory_records(case, targets, fields, gradients, env)
    common.time_fn([*targets, projection], warmup=warmup, repeats=repeats, min_time=min_time)
    records = []
    for t in targets:
        timing = t.timing()
        records.append(common.record("step_cost", f"{case.name}/{t.name}", env, **fields, method=t.name,
                                     gradient_evaluations=gradients[t.name], shared_forward=False,
                                     steps_per_s=1.0 / timing["median_s"], warmup=warmup, **timing))
        common.progress(f"  {t.name:12s} {common.fmt_seconds(timing['median_s']):>10}/step  "
                        f"compile {common.fmt_seconds(t.compile_s)}")
    records.append(common.record("step_cost", f"{case.name}/projection", env, **fields, method="projection",
                                 warmup=warmup, **projection.timing()))
    ratios = ratio_fields({t.name: t.times for t in [*targets, projection]})
    met = {k: None if ratios.get(k) is None else bool(ratios[k] <= v) for k, v in TARGETS.items()}
    records.append(common.record("step_cost", f"{case.name}/ratios", env, **fields, **ratios, targets=TARGETS,
                                 met=met, shared_forward=False, repeats=len(projection.times), warmup=warmup))
    common.progress("  ratios: " + ", ".join(f"{k} {ratios[k]:.3f}" for k in TARGETS if k in ratios))
    return records + memory_records(case, targets, fields, gradients, env)


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__, "benchmarks/results/step_cost.jsonl")
    parser.add_argument("--models", help="comma-separated model cases (default: all)")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods")
    parser.add_argument("--memory-only", action="store_true", help="XLA memory analysis only; nothing is timed")
    parser.add_argument("--resnet-batch", type=int, default=64, help="ResNet-18 batch size (64 on CPU)")
    parser.add_argument("--resnet-repeats", type=int, default=3, help="ResNet-18 timed rounds")
    parser.add_argument("--resnet-warmup", type=int, default=1, help="ResNet-18 warm-up calls")
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (2 if args.quick else 5)
    args.warmup = min(args.warmup, 1) if args.quick else args.warmup
    args.min_time = (0.0 if args.quick else 8.0) if args.min_time is None else args.min_time  # 8 s of cheap steps
    cases = model_cases(args.quick, args.resnet_batch)
    names = args.models.split(",") if args.models else list(cases)
    methods = args.methods.split(",")
    if unknown := [n for n in names if n not in cases] + [m for m in methods if m not in METHODS]:
        parser.error(f"unknown model case or method {unknown}; cases: {list(cases)}, methods: {list(METHODS)}")
    env = common.environment()
    common.progress(f"device: {env['device_kind']} x{env['device_count']} ({env['backend']}), jax {env['jax']}")
    for name in names:
        for rec in run_case(cases[name], methods, args, env):
            common.write_jsonl(args.out, rec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
