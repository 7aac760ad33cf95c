"""The projection step against a copy: ``retain_orthogonal_perturbation`` (and UAM's ``minmax_perturbation``) vs a
jitted copy of the same pytree (``x * s`` with a traced ``s = 1``, verified to write fresh buffers), timed round-robin;
target projection / copy <= 3 on CPU. The projection reads g_f and g_r twice and writes δ; a copy reads and writes once.

  python -m benchmarks.projection --out benchmarks/results/projection.jsonl
  python -m benchmarks.projection --scaling --out benchmarks/results/projection_scaling.jsonl
"""

from __future__ import annotations

import math
import re
import sys

import jax
import jax.numpy as jnp

import rosu_jax
from benchmarks import common
from rosu_jax.models import build_model

TARGET_RATIO = 3.0
RHO = 0.05


def mlp_shapes(hidden: int = 300, depth: int = 2) -> dict[str, tuple]:
    dims = [3072] + [hidden] * depth + [10]
    return {f"dense{i}/{leaf}": (a, b) if leaf == "kernel" else (b,)
            for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)) for leaf in ("kernel", "bias")}


def resnet18_shapes() -> dict[str, tuple]:
    """The parameter leaves of the library's CIFAR ResNet-18 (11,173,962 parameters)."""
    _, params, _ = build_model("resnet18", 10, 3)
    return {jax.tree_util.keystr(path): leaf.shape for path, leaf in jax.tree_util.tree_leaves_with_path(params)}


def transformer_shapes(d_model: int = 1024, n_layers: int = 8) -> dict[str, tuple]:
    """Transformer blocks: q/k/v/o, a 4x MLP and two LayerNorms, with biases (100,769,792 parameters)."""
    block = {**{f"attn/{n}/kernel": (d_model, d_model) for n in "qkvo"},
             **{f"attn/{n}/bias": (d_model,) for n in "qkvo"},
             "mlp/fc1/kernel": (d_model, 4 * d_model), "mlp/fc1/bias": (4 * d_model,),
             "mlp/fc2/kernel": (4 * d_model, d_model), "mlp/fc2/bias": (d_model,),
             **{f"{ln}/{p}": (d_model,) for ln in ("ln1", "ln2") for p in ("scale", "bias")}}
    return {f"block{i}/{k}": v for i in range(n_layers) for k, v in block.items()}


def in_layout(shapes: dict[str, tuple], layout: str, n_many: int = 256) -> dict[str, tuple]:
    """``shapes`` as is ('tree'), as one 1-D array ('flat') or as ``n_many`` equal leaves, the rest in the last."""
    total = sum(math.prod(s) for s in shapes.values())
    if layout == "tree":
        return shapes
    if layout == "flat":
        return {"flat": (total,)}
    size = total // n_many
    return {f"leaf{i:05d}": (size if i < n_many - 1 else total - size * (n_many - 1),) for i in range(n_many)}


def random_tree(shapes: dict[str, tuple], dtype, seed: int) -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {name: jax.random.normal(k, shape, jnp.float32).astype(dtype)
            for k, (name, shape) in zip(keys, shapes.items(), strict=True)}


def copy_fn(tree, scale):
    """Memory-bound reference: read every leaf once, write a new buffer once (``scale`` is traced, = 1)."""
    return jax.tree.map(lambda x: x * scale.astype(x.dtype), tree)


def fusions_by_kind(compiled) -> dict[str, int]:
    """Fusion instructions per XLA fusion kind in the optimised HLO's entry computation."""
    text = compiled.as_text()
    kinds = re.findall(r"fusion\(.*?kind=(k\w+)", text[text.find("ENTRY"):])
    return {k: kinds.count(k) for k in sorted(set(kinds))}


def copy_verified(compiled, tree, scale) -> bool:
    """The compiled copy writes fresh buffers of equal values, inputs intact, with a fusion or copy per leaf."""
    out = jax.block_until_ready(compiled(tree, scale))
    pairs = list(zip(jax.tree.leaves(tree), jax.tree.leaves(out), strict=True))
    fresh = all(a.unsafe_buffer_pointer() != b.unsafe_buffer_pointer() and not a.is_deleted() for a, b in pairs)
    equal = all(bool(jnp.array_equal(a, b)) for a, b in pairs[:4])
    ops = sum(fusions_by_kind(compiled).values()) + compiled.as_text().count(" copy(")
    return fresh and equal and ops >= len(pairs)


def run_case(model: str, shapes: dict[str, tuple], layout: str, dtype_name: str, mode: str, args, env) -> dict:
    shapes = in_layout(shapes, layout)
    dtype = jnp.dtype(dtype_name)
    n_params = sum(math.prod(s) for s in shapes.values())
    forget, retain = random_tree(shapes, dtype, 1), random_tree(shapes, dtype, 2)
    rho, one = jnp.float32(RHO), jnp.float32(1.0)
    proj = common.compile_fn("projection", rosu_jax.retain_orthogonal_perturbation, forget, retain, rho)
    minmax = common.compile_fn("minmax", rosu_jax.minmax_perturbation, forget, rho)
    copy = common.compile_fn("copy", copy_fn, forget, one)
    verified = copy_verified(copy.compiled, forget, one)
    common.time_fn([proj, copy, minmax], warmup=1 if args.quick else args.warmup,
                   repeats=args.repeats or (3 if args.quick else 10 if n_params >= 50_000_000 else 20),
                   min_time=0.0 if args.quick else args.min_time if args.min_time is not None else 0.5)
    t = {target.name: target.timing() for target in (proj, copy, minmax)}
    median = {name: v["median_s"] for name, v in t.items()}
    tree_bytes = n_params * dtype.itemsize
    ratio = median["projection"] / median["copy"]
    spread = {name: {k: v[k] for k in ("p10_s", "p90_s", "iqr_s", "min_s")} for name, v in t.items()}
    return common.record(
        "projection", f"scaling/{n_params}" if mode == "scaling" else f"{model}/{layout}/{dtype_name}", env,
        mode=mode, model=model, layout=layout, dtype=dtype_name, n_params=n_params, n_leaves=len(shapes),
        tree_bytes=tree_bytes, **{f"{name}_median_s": v for name, v in median.items()}, ratio=ratio,
        minmax_ratio=median["minmax"] / median["copy"], target_ratio=TARGET_RATIO, target_met=ratio <= TARGET_RATIO,
        spread=spread, repeats={name: v["repeats"] for name, v in t.items()}, compile_s=proj.compile_s,
        lower_s=proj.lower_s, copy_compile_s=copy.compile_s, minmax_compile_s=minmax.compile_s,
        # effective bandwidth: the projection moves ~5 tree sizes (2 reads, then 2 reads + 1 write), the copy 2
        projection_gbps=5 * tree_bytes / median["projection"] / 1e9, copy_gbps=2 * tree_bytes / median["copy"] / 1e9,
        copy_verified=verified,
        hlo_projection={"fusions_by_kind": fusions_by_kind(proj.compiled)},
        hlo_copy={"fusions_by_kind": fusions_by_kind(copy.compiled)})


def cases(args) -> list[tuple[str, dict, str, str, str]]:
    """(model, shapes, layout, dtype, mode) of every case to run."""
    if args.scaling:
        sizes = [10_000, 100_000] if args.quick else [10**5, 3 * 10**5, 10**6, 3 * 10**6, 10**7, 3 * 10**7, 10**8,
                                                      2 * 10**8]
        return [(f"flat_{n}", {"flat": (n,)}, "flat", "float32", "scaling") for n in sizes]
    if args.quick:  # a 3072-16-10 MLP: few leaves, fast compiles
        tiny = mlp_shapes(hidden=16, depth=1)
        return [("mlp_tiny", tiny, layout, dtype, "case") for layout, dtype in
                (("tree", "float32"), ("flat", "float32"), ("tree", "bfloat16"))]
    models = {"mlp_1m": mlp_shapes(), "resnet18_11m": resnet18_shapes(), "transformer_100m": transformer_shapes()}
    dtypes = {"resnet18_11m": ("float32", "bfloat16")}
    return [(model, shapes, layout, dtype, "case") for model, shapes in models.items()
            for dtype in dtypes.get(model, ("float32",)) for layout in ("tree", "flat", "many")]


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__, "benchmarks/results/projection.jsonl")
    parser.add_argument("--scaling", action="store_true", help="time vs parameter count (one flat float32 vector)")
    args = parser.parse_args(argv)
    env = common.environment()
    common.progress(f"projection on {env['device_kind']} x{env['device_count']} ({env['cpu_count']} CPUs)")
    todo = cases(args)
    for i, case in enumerate(todo, start=1):
        rec = run_case(*case, args, env)
        common.write_jsonl(args.out, rec)
        common.progress(f"[{i}/{len(todo)}] {rec['case']} projection {common.fmt_seconds(rec['projection_median_s'])}"
                        f"  copy {common.fmt_seconds(rec['copy_median_s'])}  ratio {rec['ratio']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
