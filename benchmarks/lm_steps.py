"""Step cost of the language-model unlearning methods on a Llama-3.2-1B-shape decoder (bf16, random weights): FT,
UAM, ROSU, ROSU-lagged, GradDiff, NPO, RMU and ROSU-RMU, with every weight trainable ('full') and with LoRA adapters
only ('lora').

Per group and method (built by the method registry on the causal-LM loss terms, AdamW as in TOFU): compile time
(apart), the median step time over interleaved rounds (one call of each method per round, every method timed from
its state after one warm-up step, so UAM and ROSU-lagged hold a real previous g̃) with p10-p90, tokens/s (the forget
+ retain tokens of a step), XLA's memory analysis of the compiled step and the device's high-water mark, model FLOPs
and MFU. Batches: random tokens, B x T each, the first quarter of every row a prompt (label -100), the rest answer
tokens; every row carries its ``index`` (NPO's reference NLL, computed by the method's own ``extras`` on
``FORGET_BATCHES`` forget batches) and a ``topic`` 0 (RMU's control vector; its layer ℓ = the middle layer,
``num_layers // 2``, as layer 7 of Zephyr-7B's 32 in the official run). 'lora': rank-r adapters (``add_lora``, alpha
= 2r) on the attention and MLP projections are the trainable tree, the bf16 base is frozen in the model state
(``{"frozen": ...}``); qwix needs unscanned layers there.

Model FLOPs of a step = 6 · N · B · T · gradient evaluations: the standard 6·N per token of a forward and backward
pass over the whole model (N = every parameter, trainable or frozen, the tied embedding counted once; attention's
T² term ignored), once per gradient the method evaluates over one B x T batch (``Stepper.gradient_evaluations``:
FT 1, GradDiff and NPO 2 (one backward over both batches), UAM 2, ROSU 3, ROSU-lagged 2, RMU 2, ROSU-RMU 4; RMU's
count the whole model although they stop at layer ℓ, so their MFU reads about 2x high). LoRA rows count the same
model FLOPs although their backward skips the base weights' gradients (about 4·N), so their MFU reads up to 1.5x
high. MFU = model FLOPs / step time / the device's dense bf16 peak (``PEAK_FLOPS``; None on a CPU or an unknown
device unless ``--peak-tflops``); ``mfu_over_ft`` = achieved FLOP/s / FT's, on any backend.

Records ``lm_steps`` '<group>/<method>' and '<group>/ratios' (ROSU / UAM and ROSU-lagged / UAM: median of the
per-round ratios with p10-p90; targets <= 1.5 (three gradients against two) and <= 1.03 reported as ``met``;
the methods the budget left out). ``--budget-s``: no group or method starts after that many seconds (a device
call has 10 minutes); each group's records are written when it is timed. The full size refuses a CPU backend
unless ``--allow-cpu``: its numbers would say nothing about a GPU.

  timeout --signal=INT 570 python -m benchmarks.lm_steps --out benchmarks/results/gpu-lm_steps.jsonl
  python -m benchmarks.lm_steps --quick --out lm_steps-quick.jsonl    # tiny decoder, seconds on a CPU
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax.nnx import traversals

from benchmarks import common
from rosu_jax.methods import get_method
from rosu_jax.methods.base import ExtrasContext
from rosu_jax.models import count_params
from rosu_jax.models.lm import DecoderConfig, build_decoder, llama_3_2_1b, tiny
from rosu_jax.models.lm.decoder import INIT_STD
from rosu_jax.models.trainable import partition
from rosu_jax.tasks.language import IGNORE, loss_terms

# benchmark name -> (registry method, hyperparameters besides OPTIMIZER), in the order they start: a spent budget
# leaves out the last, so the methods of the ratios come first
METHODS = {
    "FT": ("FT", {}),  # 1 gradient: the retain batch
    "UAM": ("UAM", {}),  # 2: g_f at θ, g̃ at θ+δ
    "ROSU": ("ROSU", {}),  # 3: g_f and g_r at θ, g̃ at θ+δ
    "ROSU-lagged": ("ROSU", {"lagged": True}),  # 2: g_r = the previous step's g̃
    "GradDiff": ("GradDiff", {}),  # 2: one backward pass over the forget and retain batches
    "NPO": ("NPO", {}),  # 2: as GradDiff, against the reference NLL in the extras
    "RMU": ("RMU", {}),  # 2: layer ℓ's activations on both batches (the layers above ℓ are never computed)
    "ROSU-RMU": ("ROSU-RMU", {}),  # 3 of RMU's: ROSU with RMU's forget / retain terms as L_f / L_r
}
OPTIMIZER = {"optimizer": "adamw", "lr": 1e-5, "weight_decay": 0.01}  # TOFU's (rosu_jax.tasks.tofu defaults)
TOTAL_STEPS = 1000  # sets the optimizer's schedules only
FORGET_BATCHES = 4  # forget batches of NPO's reference NLL (the step uses the first)
TARGETS = {"rosu_over_uam": 1.5, "rosu_lagged_over_uam": 1.03}
RATIOS = {"rosu_over_uam": ("ROSU", "UAM"), "rosu_lagged_over_uam": ("ROSU-lagged", "UAM")}
# Dense bf16 tensor-core peak per device (FLOP/s), matched in order against the device kind.
PEAK_FLOPS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12))
FLOPS_FORMULA = "6 * n_params * batch_size * seq_len * gradient_evaluations"


@dataclasses.dataclass(frozen=True)
class Group:
    """Which parameters train: ``lora_rank`` None = every parameter, else LoRA adapters of that rank only."""

    name: str
    config: DecoderConfig
    lora_rank: int | None = None

    @property
    def trainable(self) -> str:
        return "all" if self.lora_rank is None else f"LoRA r={self.lora_rank}"


def model_config(quick: bool) -> tuple[str, DecoderConfig]:
    if quick:  # one layer in float32: XLA:CPU compiles the twelve bf16 steps of two layers in twice the time
        return "tiny", tiny(num_layers=1, scan_layers=True, remat=True)
    return "llama_3_2_1b", llama_3_2_1b(dtype="bfloat16", param_dtype="bfloat16", scan_layers=True, remat=True)


def groups(config: DecoderConfig, args) -> list[Group]:
    out = [] if args.lora_only else [Group("full", config)]
    if not args.no_lora:  # qwix creates adapters on module objects: no stacked (scanned) layers
        out.append(Group("lora", dataclasses.replace(config, scan_layers=False), args.lora_rank))
    return out


def random_params(shapes, seed: int):
    """Norm scales 1, biases 0, other weights N(0, INIT_STD²), drawn on the device: drawing 1.24 B numbers on the
    host (``build_decoder``'s initialisation) takes tens of seconds of a device call's 10 minutes."""
    flat = traversals.flatten_mapping(shapes)

    def init():
        keys = jax.random.split(jax.random.key(seed), len(flat))
        values = {path: jnp.ones(s.shape, s.dtype) if path[-1] == "scale" else jnp.zeros(s.shape, s.dtype)
                  if path[-1] == "bias" else (INIT_STD * jax.random.normal(k, s.shape, jnp.float32)).astype(s.dtype)
                  for k, (path, s) in zip(keys, flat.items(), strict=True)}
        return traversals.unflatten_mapping(values)

    return jax.jit(init)()


def build(group: Group, seed: int = 0):
    """(apply_fn, trainable params, model state with the frozen rest, record fields)."""
    apply_fn, shapes = build_decoder(group.config, seed, abstract=True)
    params = random_params(shapes, seed)
    if group.lora_rank is not None:
        from rosu_jax.models.lm.lora import add_lora, lora_selection  # qwix: the optional extra

        apply_fn, params = add_lora(group.config, params, rank=group.lora_rank, alpha=2.0 * group.lora_rank)
        trainable, frozen = partition(params, lora_selection)
    else:
        trainable, frozen = params, {}
    c = group.config
    fields = {"group": group.name, "trainable": group.trainable, "lora_rank": group.lora_rank,
              "lora_alpha": None if group.lora_rank is None else 2.0 * group.lora_rank,
              "n_params": count_params(params), "n_trainable": count_params(trainable),
              "param_bytes": int(sum(x.nbytes for x in jax.tree.leaves(params))),
              "frozen_bytes": int(sum(x.nbytes for x in jax.tree.leaves(frozen))),
              "config": {k: getattr(c, k) for k in ("vocab_size", "hidden_size", "intermediate_size", "num_layers",
                                                    "num_heads", "num_kv_heads", "dtype", "param_dtype",
                                                    "scan_layers", "remat")}}
    return apply_fn, trainable, {"frozen": frozen}, fields


def make_batches(config: DecoderConfig, batch_size: int, seq_len: int, count: int, seed: int) -> list[dict]:
    """``count`` batches of random tokens; the first quarter of every row is the prompt (no loss)."""
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(count):
        ids = rng.integers(0, config.vocab_size, (batch_size, seq_len), dtype=np.int32)
        labels = ids.copy()
        labels[:, : seq_len // 4] = IGNORE
        batches.append({"input_ids": jnp.asarray(ids), "attention_mask": jnp.ones_like(ids),
                        "labels": jnp.asarray(labels),
                        "index": jnp.arange(i * batch_size, (i + 1) * batch_size, dtype=jnp.int32),
                        "topic": jnp.zeros(batch_size, jnp.int32)})
    return batches


def make_stepper(method: str, terms: dict, trainable, model_state, forget_batches: list[dict], info: dict):
    """(the registry's stepper of ``method``, its extras or None, seconds spent on the extras)."""
    registry_name, values = METHODS[method]
    registry_method = get_method(registry_name)
    settings = registry_method.configure(OPTIMIZER | values)
    t0 = time.perf_counter()
    extras = None
    if registry_method.extras is not None:
        context = ExtrasContext(terms, trainable, model_state, lambda: iter(forget_batches),
                                len(forget_batches) * forget_batches[0]["index"].shape[0], info=info)
        extras = jax.block_until_ready(registry_method.extras(context, settings))
    return registry_method.build(terms, settings, TOTAL_STEPS), extras, time.perf_counter() - t0


def device_memory() -> dict[str, int | None]:
    """The device's allocator counters (None where the backend has none, e.g. a CPU): the high-water mark of the
    whole process so far, not of one step."""
    stats = jax.devices()[0].memory_stats() or {}
    return {"device_peak_bytes": stats.get("peak_bytes_in_use"), "device_bytes_in_use": stats.get("bytes_in_use"),
            "device_bytes_limit": stats.get("bytes_limit")}


def peak_flops(device_kind: str, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    return next((peak for name, peak in PEAK_FLOPS if name.lower() in device_kind.lower()), None)


def _num(x: float | None, spec: str = ".3g") -> str:
    return "-" if x is None else format(x, spec)


def run_group(group: Group, methods: list[str], args, env: dict, deadline: float) -> list[dict]:
    """Build, compile and warm up each method until ``deadline``, time them round-robin, and return the records."""
    not_run = {}
    if time.perf_counter() > deadline:
        return [common.record("lm_steps", f"{group.name}/ratios", env, group=group.name, trainable=group.trainable,
                              model=args.model, batch_size=args.batch_size, seq_len=args.seq_len,
                              not_run=dict.fromkeys(methods, "budget"), targets=TARGETS, met={})]
    common.progress(f"[{group.name}] building the {args.model} decoder ({group.trainable} trainable) ...")
    t0 = time.perf_counter()
    apply_fn, trainable, model_state, fields = build(group)
    fields |= {"model": args.model, "batch_size": args.batch_size, "seq_len": args.seq_len,
               "tokens_per_step": 2 * args.batch_size * args.seq_len, "optimizer": OPTIMIZER,
               "build_s": time.perf_counter() - t0}
    forget_batches = make_batches(group.config, args.batch_size, args.seq_len, FORGET_BATCHES, seed=1)
    (retain,) = make_batches(group.config, args.batch_size, args.seq_len, 1, seed=2)
    forget, key = forget_batches[0], jax.random.key(0)
    terms = loss_terms(apply_fn, hidden_layer=group.config.num_layers // 2)
    info = {"num_topics": 1, "hidden_size": group.config.hidden_size}
    targets, per_method = [], {}
    for method in methods:
        if time.perf_counter() > deadline:
            not_run[method] = "budget"
            continue
        stepper, extras, extras_s = make_stepper(method, terms, trainable, model_state, forget_batches, info)
        state = stepper.init(trainable, model_state, extras)
        try:  # one device call per record set: a method that does not fit is recorded, the others still run
            timed = common.compile_fn(method, stepper.step, state, forget, retain, key, quick=args.quick)
            state = jax.block_until_ready(timed.compiled(state, forget, retain, key)[0])
        except jax.errors.JaxRuntimeError as err:
            if "RESOURCE_EXHAUSTED" not in str(err):
                raise
            not_run[method] = f"out of memory: {str(err)[:300]}"
            common.progress(f"  {method:12s} out of memory; not run")
            continue
        # The step returns the model state it was given; keep the one frozen base, not one per method's state.
        state = state._replace(model_state=model_state)
        timed.call = functools.partial(timed.compiled, state, forget, retain, key)
        targets.append(timed)
        per_method[method] = {"registry_method": METHODS[method][0], "hyperparameters": METHODS[method][1],
                              "gradient_evaluations": stepper.gradient_evaluations, "extras_s": extras_s,
                              **common.memory_of(timed.compiled), **device_memory()}
        common.progress(f"  {method:12s} compiled in {common.fmt_seconds(timed.compile_s)}")
    if targets:
        common.time_fn(targets, warmup=args.warmup - 1, repeats=args.repeats, min_time=args.min_time)
    return method_records(group, targets, per_method, fields, not_run, args, env)


def method_records(group: Group, targets, per_method: dict, fields: dict, not_run: dict, args, env: dict):
    """One record per timed method and the group's ratios record (ratios: medians of per-round ratios)."""
    times = {t.name: t.times for t in targets}
    peak = peak_flops(env["device_kind"], args.peak_tflops)
    flops = {m: 6 * fields["n_params"] * args.batch_size * args.seq_len * per_method[m]["gradient_evaluations"]
             for m in times}
    paired = {}
    for m in times:
        if "UAM" in times:
            paired[f"{m}_over_UAM"] = common.paired_ratio(times[m], times["UAM"])
        if "FT" in times:  # achieved FLOP/s over FT's, round by round: (F_m / F_FT) · (t_FT / t_m)
            speed = common.paired_ratio(times["FT"], times[m])
            paired[f"mfu_{m}_over_FT"] = {q: v * flops[m] / flops["FT"] for q, v in speed.items()}
    records = []
    for t in targets:
        timing = t.timing()
        achieved = flops[t.name] / timing["median_s"]
        memory = per_method[t.name]
        rec = common.record(
            "lm_steps", f"{group.name}/{t.name}", env, **fields, method=t.name, **memory, **timing,
            warmup=args.warmup, step_ms=timing["median_s"] * 1e3,
            tokens_per_s=fields["tokens_per_step"] / timing["median_s"], model_flops_per_step=flops[t.name],
            flops_formula=FLOPS_FORMULA, achieved_tflops=achieved / 1e12,
            peak_tflops=None if peak is None else peak / 1e12, mfu=None if peak is None else achieved / peak,
            mfu_over_ft=(paired.get(f"mfu_{t.name}_over_FT") or {}).get("p50"),
            ratio_to_uam=(paired.get(f"{t.name}_over_UAM") or {}).get("p50"),
            ratio_to_uam_spread=paired.get(f"{t.name}_over_UAM"),
            peak_gib=None if memory["peak_bytes"] is None else memory["peak_bytes"] / 2**30,
            device_peak_gib=None if memory["device_peak_bytes"] is None else memory["device_peak_bytes"] / 2**30)
        records.append(rec)
        common.progress(f"  {t.name:12s} {common.fmt_seconds(timing['median_s']):>10}/step "
                        f"[{common.fmt_seconds(timing['p10_s'])}–{common.fmt_seconds(timing['p90_s'])}]  "
                        f"{rec['tokens_per_s']:,.0f} tokens/s  XLA peak {_num(rec['peak_gib'])} GiB  "
                        f"MFU {_num(rec['mfu'], '.1%')}  MFU/FT {_num(rec['mfu_over_ft'])}  "
                        f"/UAM {_num(rec['ratio_to_uam'])}")
    ratios = {name: paired[f"{a}_over_{b}"]["p50"] for name, (a, b) in RATIOS.items() if f"{a}_over_{b}" in paired}
    met = {k: None if k not in ratios else bool(ratios[k] <= v) for k, v in TARGETS.items()}
    records.append(common.record(
        "lm_steps", f"{group.name}/ratios", env, **fields, **ratios, paired_ratios=paired, targets=TARGETS, met=met,
        not_run=not_run, mfu_over_ft={r["method"]: r["mfu_over_ft"] for r in records},
        ratio_statistic="median over rounds of the per-round ratio (calls interleaved round-robin)",
        repeats=len(targets[0].times) if targets else 0))
    for k, v in ratios.items():
        common.progress(f"  {k} {v:.3f} (target <= {TARGETS[k]}: {'met' if met[k] else 'MISSED'})")
    if not_run:
        common.progress(f"  not run: {', '.join(f'{m} ({why[:40]})' for m, why in not_run.items())}")
    return records


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__, "benchmarks/results/lm_steps.jsonl")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods, in starting order")
    parser.add_argument("--batch-size", type=int, help="rows of each of the forget and retain batches (8; quick 2)")
    parser.add_argument("--seq-len", type=int, help="tokens per row (512; quick 32)")
    parser.add_argument("--lora-rank", type=int, default=16, help="rank of the LoRA rows' adapters")
    parser.add_argument("--no-lora", action="store_true", help="only the rows with every parameter trainable")
    parser.add_argument("--lora-only", action="store_true", help="only the LoRA rows")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="start no group or method after this many seconds (default 480: a device call has 600)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak (TFLOP/s) where PEAK_FLOPS has none")
    parser.add_argument("--allow-cpu", action="store_true", help="run the full size on a CPU backend anyway")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    args.model, config = model_config(args.quick)
    args.batch_size = args.batch_size or (2 if args.quick else 8)
    args.seq_len = args.seq_len or (32 if args.quick else 512)
    args.repeats = args.repeats or (2 if args.quick else 10)
    args.warmup = max(1, min(args.warmup, 1) if args.quick else args.warmup)  # the first is the state's step
    if args.min_time is None:  # keep going round-robin until the slowest method has run 5 s
        args.min_time = 0.0 if args.quick else 5.0
    methods = args.methods.split(",")
    if unknown := [m for m in methods if m not in METHODS]:
        parser.error(f"unknown method {unknown}; methods: {list(METHODS)}")
    if args.no_lora and args.lora_only:
        parser.error("--no-lora and --lora-only leave nothing to run")
    env = common.environment()
    common.progress(f"device: {env['device_kind']} x{env['device_count']} ({env['backend']}), jax {env['jax']}")
    if env["backend"] == "cpu" and not (args.quick or args.allow_cpu):
        print("lm_steps: the JAX backend is 'cpu'; the full size (a Llama-3.2-1B-shape model in bf16) is a GPU "
              "benchmark: install a CUDA jax, pass --quick for the tiny smoke run, or --allow-cpu to run it here "
              "anyway", file=sys.stderr)
        return 2
    for group in groups(config, args):
        for rec in run_group(group, methods, args, env, deadline=start + args.budget_s):
            common.write_jsonl(args.out, rec)
    common.progress(f"done in {time.perf_counter() - start:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
