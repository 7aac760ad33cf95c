"""Peak memory of one compiled step per method, from XLA's memory analysis (no timing, nothing executed).

``jax.jit(step).lower(state, forget_batch, retain_batch, key).compile().memory_analysis()`` gives the sizes of
the step's arguments, outputs, aliased buffers and temporaries; ``peak_bytes`` = temp + argument + output −
alias. One record per (model, method), benchmark='step_memory', with the extra over UAM in bytes and in units
of one parameter tree (``param_bytes``). ``step_cost.py`` writes the same records from the executables it
times; this script is for memory-only runs (e.g. larger batches than fit the time budget).

What the maths needs (float32 trees of the parameters' size P):
  UAM (make_uam_step): g_f, δ, g̃, and the lagged g̃ kept in the state (its κ diagnostic) -> state +1 P.
  ROSU fresh: also g_r at θ while δ is formed (+1 P of temporaries); no lagged tree in the state.
  ROSU lagged: the previous g̃ in the state (+1 P of state, as UAM's); no fresh g_r.
So ROSU fresh should need about one parameter tree more than UAM at the peak, minus the lagged tree UAM keeps,
and ROSU lagged the same as UAM.

Usage:
  python benchmarks/memory.py --out benchmarks/results/memory.jsonl
  python benchmarks/memory.py --models resnet18/cifar --resnet-batch 256 --out /tmp/m.jsonl
  python benchmarks/memory.py --quick --out /tmp/m.jsonl
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import stepbench as sb  # noqa: E402
from step_cost import model_cases  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/memory.jsonl")
    parser.add_argument("--models", default=None, help="comma-separated model cases (default: all)")
    parser.add_argument("--methods", default=",".join(sb.ALL_METHODS))
    parser.add_argument("--resnet-batch", type=int, default=64)
    parser.add_argument("--cnn-batch", type=int, default=None)
    args = parser.parse_args(argv)
    cases = model_cases(args.quick, args.resnet_batch, args.cnn_batch)
    if args.models:
        cases = {n.strip(): cases[n.strip()] for n in args.models.split(",") if n.strip()}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    env = common.environment()
    rows = []
    for case in cases.values():
        targets, _, n_params, param_bytes = sb.step_targets(case, methods)
        mems = {}
        for t in targets:
            sb.compile_target(t, sb.QUICK_COMPILER_OPTIONS if args.quick else None)
            mems[t.name] = sb.memory_of(t.compiled)
        for t in targets:
            mem = mems[t.name]
            rec = sb.record_base("step_memory", f"{case.name}/{t.name}", env)
            extra = {}
            uam = mems.get("UAM")
            if uam and mem["peak_bytes"] is not None and uam["peak_bytes"] is not None:
                for k in ("temp_bytes", "argument_bytes", "output_bytes", "peak_bytes"):
                    extra[f"extra_{k}_over_uam"] = mem[k] - uam[k]
                extra["extra_peak_over_uam_param_trees"] = extra["extra_peak_bytes_over_uam"] / param_bytes
            rec.update(model=case.model, input_shape=list(case.image_shape), batch_size=case.batch_size,
                       n_params=n_params, param_bytes=param_bytes, method=t.name,
                       gradient_evaluations=sb.GRADIENTS[t.name], compile_s=t.compile_s, **mem, **extra)
            common.write_jsonl(args.out, rec)
            rows.append({"case": rec["case"], "peak": mem["peak_bytes"], "temp": mem["temp_bytes"],
                         "args": mem["argument_bytes"], "out": mem["output_bytes"],
                         "extra/UAM": extra.get("extra_peak_bytes_over_uam"),
                         "extra (P trees)": extra.get("extra_peak_over_uam_param_trees")})
    common.print_table(rows, ["case", "peak", "temp", "args", "out", "extra/UAM", "extra (P trees)"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
