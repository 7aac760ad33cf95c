"""The PyTorch peer: rosu_jax's UAM, ROSU and ROSU-lagged (JAX, in this process) against torchunlearn's UAM and a
plain-PyTorch UAM (``torch_side``, a worker in its own torch environment); same models, weights and batches, SGD,
float32 on CPU, ``--repeats`` blocks of ~``--min-time`` s per method round-robin. Records 'case' (steps/s), 'ratio'
and 'parity'. A case waits ``--settle`` s for the load to fall to the core count, else exits 3 (``--allow-loaded``).

The torch environment, kept apart from the project's (without it only the JAX half runs, and says why):
  python3 -m venv torchenv && torchenv/bin/pip install torch torchunlearn
  TORCH_PYTHON=torchenv/bin/python python -m benchmarks.peer --out benchmarks/results/peer.jsonl
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from benchmarks import common
from benchmarks.step_cost import make_stepper
from rosu_jax.models import build_model, count_params
from rosu_jax.tasks.vision.losses import loss_terms

JAX_METHODS = ("UAM", "ROSU", "ROSU-lagged")
TORCH_METHODS = ("torchunlearn-UAM", "torch-UAM")
HYPER = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "rho": 0.5}
CASES = ({"model": "small_cnn", "dataset": "digits", "batch": 64},
         {"model": "small_cnn", "dataset": "cifar", "batch": 128},
         {"model": "resnet18", "dataset": "cifar", "batch": 64})
QUICK_CASE = {"model": "small_cnn", "dataset": "digits", "batch": 16, "model_kwargs": {"widths": [8], "hidden": 16}}
RATIOS = {f"jax_{j.lower().replace('-', '_')}_over_{t}": (("jax", j), ("torch", m))
          for j in JAX_METHODS for t, m in (("torch_uam", "torchunlearn-UAM"), ("torch_plain_uam", "torch-UAM"))}
RATIOS["torch_plain_uam_over_torchunlearn_uam"] = (("torch", "torch-UAM"), ("torch", "torchunlearn-UAM"))
REFUSED = 3  # exit status of a run refused for load


def make_data(dataset: str, batch: int, path: Path) -> str:
    """Write the forget and retain batches (NHWC float32, int labels) both halves load; returns a description."""
    rng = np.random.default_rng(0)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images.astype(np.float32) / 16.0)[..., None]
        order = rng.permutation(len(x))
        x, y = ((x - x.mean()) / x.std())[order], digits.target.astype(np.int32)[order]
        description = "sklearn load_digits (real), standardised"
    else:
        x = rng.standard_normal((2 * batch, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, 10, 2 * batch).astype(np.int32)
        description = "random N(0,1), CIFAR shape 32x32x3"
    np.savez(path, forget_x=x[:batch], forget_y=y[:batch], retain_x=x[batch:2 * batch], retain_y=y[batch:2 * batch])
    return description


class JaxSide:
    """The JAX half: a compiled step per case (``step_cost``'s steppers); it answers the torch worker's commands."""

    def __init__(self):
        self.cases: dict[str, dict[str, Any]] = {}

    def call(self, cmd: str, **msg: Any) -> dict[str, Any]:
        return getattr(self, cmd)(msg)

    def close(self) -> None:
        self.cases.clear()

    def info(self, _: dict) -> dict:
        return common.environment()

    def _model(self, msg: dict, data, compute: bool = True) -> tuple:
        """The case's model; ``compute``: with the JAX-only settings (``jax_model_kwargs``, e.g. the dtype)."""
        kwargs = {**(msg.get("model_kwargs") or {}), **((msg.get("jax_model_kwargs") or {}) if compute else {})}
        return build_model(msg["model"], msg["num_classes"], data["forget_x"].shape[-1], seed=0, **kwargs)

    def setup(self, msg: dict) -> dict:
        data = np.load(msg["data_path"])
        apply_fn, params, model_state = self._model(msg, data)
        # the torch half starts from these weights, named as it maps them onto its modules ('conv0/kernel', ...)
        np.savez(msg["params_path"], **traverse_util.flatten_dict(jax.device_get(params), sep="/"))
        hyper = {k: msg[k] for k in ("lr", "momentum", "weight_decay", "rho")}
        stepper = make_stepper(msg["method"], loss_terms(apply_fn, msg["num_classes"]), **hyper)
        forget, retain = ({"image": jnp.asarray(data[f"{s}_x"]), "label": jnp.asarray(data[f"{s}_y"], dtype=jnp.int32)}
                          for s in ("forget", "retain"))
        key = jax.random.key(0)
        state, step_fn = stepper.init(params, model_state), stepper.step
        if msg.get("mesh"):  # data-parallel over host devices (XLA_FLAGS=--xla_force_host_platform_device_count=N)
            from rosu_jax.parallel.mesh import make_mesh, shard_batch, shard_state, sharded_step

            mesh = make_mesh(msg["mesh"])
            state = shard_state(state, mesh)
            step_fn = sharded_step(stepper, mesh, state)
            forget, retain = shard_batch(forget, mesh), shard_batch(retain, mesh)
        target = common.compile_fn(msg["method"], step_fn, state, forget, retain, key)
        t0 = time.perf_counter()
        for _ in range(msg["warmup"]):
            state, _ = target.compiled(state, forget, retain, key)
        jax.block_until_ready(state)
        self.cases[msg["case_id"]] = {"step": target.compiled, "state": state, "batches": (forget, retain, key)}
        return {"n_params": count_params(params), "gradient_evaluations": stepper.gradient_evaluations,
                "lower_s": target.lower_s, "compile_s": target.compile_s, "warmup_s": time.perf_counter() - t0}

    def run(self, msg: dict) -> dict:
        """``steps`` steps of one case (the state carried on), timed: the driver's block."""
        case = self.cases[msg["case_id"]]
        state = case["state"]
        t0 = time.perf_counter()
        for _ in range(msg["steps"]):
            state, _ = case["step"](state, *case["batches"])
        jax.block_until_ready(state)
        case["state"] = state
        return {"seconds": time.perf_counter() - t0}

    def parity(self, msg: dict) -> dict:
        """Eval-mode logits on the retain batch, saved for the torch half to compare with its own."""
        data = np.load(msg["data_path"])
        apply_fn, params, model_state = self._model(msg, data, compute=False)
        logits, _ = jax.jit(lambda p, s, x: apply_fn(p, s, x, train=False))(params, model_state, data["retain_x"])
        np.savez(msg["logits_path"], logits=np.asarray(logits))
        return {}


class Worker:
    """The torch half's process: one JSON command per line in, one JSON answer per line out (see ``torch_side``)."""

    def __init__(self, name: str, argv: list[str]):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                     cwd=common.REPO)

    def call(self, **msg: Any) -> dict[str, Any]:
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        if not (line := self.proc.stdout.readline()):
            raise RuntimeError(f"the {self.name} worker exited (code {self.proc.poll()}) during {msg['cmd']}")
        if "error" in (reply := json.loads(line)):
            raise RuntimeError(f"{self.name} worker: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.poll() is None:
            self.call(cmd="quit")
        self.proc.wait(timeout=30)


def torch_available(torch_python: str | None) -> tuple[bool, str]:
    if not torch_python:
        return False, "no torch environment given (--torch-python or $TORCH_PYTHON; see --help)"
    if not Path(torch_python).exists():
        return False, f"{torch_python} does not exist (create the torch environment: see --help)"
    probe = subprocess.run([torch_python, "-c", "import torch, torchunlearn.optim"], capture_output=True, text=True)
    if probe.returncode:
        return False, f"{torch_python} cannot import torch and torchunlearn: {probe.stderr.strip()[-300:]}"
    return True, "torch environment found"


def settled_load(loadavg: Callable[[], float | None], cpus: int, settle_s: float, poll_s: float = 5.0) -> float | None:
    """The 1-minute load average once it is at most ``cpus``, or the last reading after ``settle_s`` seconds."""
    deadline = time.monotonic() + settle_s
    while common.too_loaded(load := loadavg(), cpus) and time.monotonic() < deadline:
        time.sleep(poll_s)
    return load


def run_case(case: dict, workers: dict, methods: dict, args, tmp: Path, env: dict, loadavg: Callable) -> list[dict]:
    label = f"{case['model']}/{case['dataset']}/b{case['batch']}"
    data_path, params_path = tmp / "data.npz", tmp / "params.npz"
    base = {"model": case["model"], "dataset": case["dataset"], "batch": case["batch"],
            "data": make_data(case["dataset"], case["batch"], data_path), "setting": args.setting,
            "dtype": args.dtype, "mesh": args.mesh, **HYPER}
    msg = {"data_path": str(data_path), "params_path": str(params_path), "num_classes": 10, "model": case["model"],
           "model_kwargs": case.get("model_kwargs"), "warmup": args.warmup, **HYPER,
           "jax_model_kwargs": {"dtype": args.dtype} if args.dtype != "float32" else None, "mesh": args.mesh}
    keys = [(framework, method) for framework, names in methods.items() for method in names]
    # JAX first: it writes the initial weights the torch half loads
    setups = {(f, m): workers[f].call(cmd="setup", case_id=f"{label}/{m}", method=m, **msg) for f, m in keys}
    if len(counts := {s["n_params"] for s in setups.values()}) != 1:
        raise SystemExit(f"{label}: the halves' parameter counts differ: {counts}")
    records = []
    if "torch" in workers and not case.get("model_kwargs"):
        workers["jax"].call(cmd="parity", logits_path=str(tmp / "logits.npz"), **msg)
        parity = workers["torch"].call(cmd="parity", logits_path=str(tmp / "logits.npz"), **msg)
        records.append(common.record("peer", f"{label}/parity", env["jax"], record="parity", **base, **parity))
    def timed(framework: str, method: str, steps: int) -> float:
        return workers[framework].call(cmd="run", case_id=f"{label}/{method}", steps=steps)["seconds"]

    steps = {k: max(1, round(args.min_time / max(timed(*k, 1), 1e-6))) for k in keys}  # a block: ~min_time s
    rates: dict[tuple, list[float]] = {k: [] for k in keys}
    loads: dict[tuple, list[float | None]] = {k: [] for k in keys}
    for repeat in range(args.repeats):
        for k in keys if repeat % 2 == 0 else keys[::-1]:
            loads[k].append(loadavg())
            rates[k].append(steps[k] / timed(*k, steps[k]))
    for (framework, method), k_rates in rates.items():
        block_loads = [x for x in loads[framework, method] if x is not None]
        rec = common.record(
            "peer", f"{label}/{framework}/{method}", env[framework], record="case", **base, framework=framework,
            method=method, **{"gradient_evaluations": 2, **setups[framework, method]},  # torch: both UAMs take 2
            steps_per_s_median=statistics.median(k_rates), steps_per_s=k_rates,
            spread={f"p{q}": common.percentile(k_rates, q) for q in (10, 90)}, repeats=args.repeats,
            steps_per_block=steps[framework, method],
            loadavg_1m=statistics.fmean(block_loads) if block_loads else None, loadavg_1m_blocks=block_loads)
        if method == "torchunlearn-UAM":
            rec["note"] = "its ascent pass runs on cat(forget, retain): 2B samples, 3B per step"
        records.append(rec)
        common.progress(f"[{label}] {framework:5s} {method:17s} {rec['steps_per_s_median']:9.2f} steps/s "
                        f"(K={steps[framework, method]}, load {rec['loadavg_1m'] or 0:.2f})")
    if "torch" in workers:
        ratios = {k: v for name, spread in common.paired_ratios(rates, RATIOS).items()
                  for k, v in ((f"{name}_spread", spread), (name, spread["p50"]))}
        records.append(common.record("peer", f"{label}/ratio", env["jax"], record="ratio", **base, **ratios,
                                     torch=env["torch"].get("torch"), torchunlearn=env["torch"].get("torchunlearn")))
    return records


def main(argv: list[str] | None = None, loadavg: Callable[[], float | None] = common.loadavg_1m) -> int:
    parser = common.base_parser(__doc__, "benchmarks/results/peer.jsonl")
    parser.add_argument("--torch-python", default=os.environ.get("TORCH_PYTHON"), help="default: $TORCH_PYTHON")
    parser.add_argument("--no-torch", action="store_true", help="run only the JAX half")
    parser.add_argument("--models", nargs="*", help="subset of small_cnn, resnet18")
    parser.add_argument("--datasets", nargs="*", help="subset of digits, cifar")
    parser.add_argument("--batch", type=int, help="batch size of every case (default: each case's)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="the JAX models' dtype")
    parser.add_argument("--jax-methods", default=",".join(JAX_METHODS), help="comma-separated subset")
    parser.add_argument("--mesh", help="the JAX steps data-parallel, e.g. data=2 (and as many devices in XLA_FLAGS)")
    parser.add_argument("--setting", default="default", help="name of the speed setting, recorded in every record")
    parser.add_argument("--allow-loaded", action="store_true", help="run on a loaded machine (records marked loaded)")
    parser.add_argument("--settle", type=float, default=120.0, help="seconds to wait for the load before refusing")
    args = parser.parse_args(argv)
    cases = (QUICK_CASE,) if args.quick else tuple(c for c in CASES if (not args.models or c["model"] in args.models)
                                                   and (not args.datasets or c["dataset"] in args.datasets))
    cases = tuple({**c, "batch": args.batch} for c in cases) if args.batch else cases
    jax_methods = tuple(x for x in args.jax_methods.split(",") if x)
    if unknown := sorted(set(jax_methods) - set(JAX_METHODS)):
        parser.error(f"unknown method(s) {unknown}; JAX: {', '.join(JAX_METHODS)}")
    args.repeats = args.repeats or (2 if args.quick else 7)
    args.min_time = args.min_time if args.min_time is not None else 0.05 if args.quick else 1.0
    args.warmup = min(args.warmup, 1) if args.quick else args.warmup
    cpus = os.cpu_count() or 1
    use_torch, why = (False, "--no-torch given") if args.no_torch else torch_available(args.torch_python)
    if not use_torch:
        common.progress(f"SKIP torch half: {why}. Only the JAX half runs (no ratios).")
    methods = {"jax": ("UAM",) if args.quick else jax_methods, **({"torch": TORCH_METHODS} if use_torch else {})}
    workers: dict[str, Any] = {}
    try:
        workers["jax"] = JaxSide()  # in this process: idle while the torch worker runs
        if use_torch:
            workers["torch"] = Worker("torch", [args.torch_python, "-m", "benchmarks.peer.torch_side"])
        env = {name: worker.call(cmd="info") for name, worker in workers.items()}
        if use_torch:
            env["torch"] |= {"jax": env["jax"]["jax"], "cpu_count": cpus}
        for case in cases:
            load = loadavg() if args.allow_loaded else settled_load(loadavg, cpus, args.settle)
            if common.too_loaded(load, cpus):
                common.progress(f"{'WARNING' if args.allow_loaded else 'REFUSED'}: 1-minute load average {load:.2f} on "
                                f"{cpus} cores. " + ("Running anyway (--allow-loaded): the records are marked loaded."
                                                     if args.allow_loaded else "Wait, or pass --allow-loaded."))
                if not args.allow_loaded:
                    return REFUSED
            with tempfile.TemporaryDirectory(prefix="rosu-peer-") as tmp:
                for rec in run_case(case, workers, methods, args, Path(tmp), env, loadavg):
                    rec.update(loadavg_1m_at_start=load, load_limit=cpus, loaded=common.too_loaded(load, cpus))
                    common.write_jsonl(args.out, rec)
    finally:
        for worker in workers.values():
            worker.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
