"""Peer side by side: rosu_jax's UAM/ROSU (JAX, CPU) against torchunlearn's UAM (PyTorch, CPU), steps/s.

Same model (rosu_jax's SmallCNN / CIFAR ResNet-18, replicated layer for layer in PyTorch, parameter counts
asserted equal, the JAX initial weights loaded into the torch model), same forget and retain batches (one fixed
pair, re-used every step), SGD lr 0.01 momentum 0.9 weight decay 5e-4, ρ 0.5, both float32 on CPU.

Two worker processes: the JAX half (``peer_jax_side.py``, this interpreter) and the torch half
(``peer/torch_side.py`` in the optional torch environment, ``torch.set_num_threads(2)``). The driver compiles /
warms up every method, calibrates a block of K steps (~``--min-time`` seconds), then times ``--repeats`` blocks
per method, interleaved across the two processes (order reversed every repeat), so background load hits both
sides alike; each record carries ``loadavg_1m``. JAX compile time is reported apart (``compile_s``).

Cases: small_cnn on real digits (sklearn, 8x8x1) batch 64; small_cnn on CIFAR-shaped N(0, 1) data (32x32x3)
batch 128; resnet18 on CIFAR-shaped N(0, 1) data batch 64. Forget and retain batch have the same size B.

Methods: JAX ``UAM`` (make_uam_step, 2 gradients), ``UAM-registry`` (3), ``ROSU`` (registry, 3),
``ROSU-lagged`` (2); torch ``torchunlearn-UAM`` (torchunlearn.optim.UAM; its ascent pass runs the model on
cat(forget, retain), i.e. 2B samples) and ``torch-UAM`` (the same maths as rosu_jax's UAM in plain PyTorch).
Records (``benchmark='peer'``): ``record`` = 'case' (one per model and method), 'ratio' (per model: JAX steps/s
over torch steps/s, median of the per-repeat ratios), 'parity' (max |logit difference| with the JAX weights),
'diag' (forward / forward+backward of the model and of single conv layers, dispatch, data; both sides).

The torch half is optional: without ``--torch-python`` (default ``/work/torchenv/bin/python``) or if that
interpreter cannot import torch and torchunlearn, only the JAX half runs and a SKIP line says why.

Setup of the torch environment (kept apart from the project's venv):
  python3 -m venv /work/torchenv
  /work/torchenv/bin/pip install torch==2.14.1 torchvision==0.29.1
  /work/torchenv/bin/pip install torchunlearn==0.1.0

Usage:
  python benchmarks/peer_torchunlearn.py --out benchmarks/results/peer.jsonl
  python benchmarks/peer_torchunlearn.py --quick --no-torch --out /tmp/peer.jsonl     # smoke test
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import common  # noqa: E402

BENCHMARK = "peer"
DEFAULT_TORCH_PYTHON = "/work/torchenv/bin/python"
JAX_METHODS_FULL = ("UAM", "UAM-registry", "ROSU", "ROSU-lagged")
TORCH_METHODS = ("torchunlearn-UAM", "torch-UAM")
HYPER = {"lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4, "rho": 0.5}
NUM_CLASSES = 10

FULL_CASES = (
    {"model": "small_cnn", "dataset": "digits", "batch": 64},
    {"model": "small_cnn", "dataset": "cifar", "batch": 128},
    {"model": "resnet18", "dataset": "cifar", "batch": 64},
)
QUICK_CASES = ({"model": "small_cnn", "dataset": "digits", "batch": 16, "model_kwargs": {"widths": [8], "hidden": 16}},)

CONVS = {  # (N, H, W, C_in, C_out, stride) of the model's conv layers, for the diagnostics
    ("small_cnn", "digits"): [(64, 8, 8, 1, 32, 1), (64, 8, 8, 32, 64, 2)],
    ("small_cnn", "cifar"): [(128, 32, 32, 3, 32, 1), (128, 32, 32, 32, 64, 2)],
    ("resnet18", "cifar"): [
        (64, 32, 32, 64, 64, 1),
        (64, 16, 16, 128, 128, 1),
        (64, 8, 8, 256, 256, 1),
        (64, 4, 4, 512, 512, 1),
    ],
}


# --------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------


def make_data(dataset: str, batch: int, path: Path) -> str:
    """Write the forget and retain batches (NHWC float32, int labels) that both halves load."""
    rng = np.random.default_rng(0)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.images.astype(np.float32) / 16.0)[..., None]
        x = (x - x.mean()) / x.std()
        y = digits.target.astype(np.int32)
        order = rng.permutation(len(x))
        x, y = x[order], y[order]
        description = "sklearn load_digits (real), standardised"
    elif dataset == "cifar":
        x = rng.standard_normal((2 * batch, 32, 32, 3)).astype(np.float32)
        y = rng.integers(0, NUM_CLASSES, 2 * batch).astype(np.int32)
        description = "random N(0,1), CIFAR shape 32x32x3"
    else:
        raise ValueError(f"unknown dataset {dataset!r}")
    np.savez(
        path,
        forget_x=x[:batch],
        forget_y=y[:batch],
        retain_x=x[batch : 2 * batch],
        retain_y=y[batch : 2 * batch],
    )
    return description


# --------------------------------------------------------------------------------------------------------
# Workers
# --------------------------------------------------------------------------------------------------------


class InProcessJax:
    """The JAX half in this process (``--in-process``; the smoke test): same ``call`` interface as ``Worker``."""

    name = "jax"

    def __init__(self):
        import peer_jax_side

        side = peer_jax_side.JaxSide()
        self.handlers = {
            "info": side.info,
            "setup": side.setup,
            "run": side.run,
            "parity": side.parity,
            "diag": side.diag,
        }

    def call(self, **msg: Any) -> dict[str, Any]:
        return json.loads(json.dumps(self.handlers[msg["cmd"]](msg), default=common._json_default))

    def close(self) -> None:
        pass


class Worker:
    """A worker subprocess speaking ``peer/worker.py``'s JSON-lines protocol."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        self.name = name
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, text=True, bufsize=1, env=env
        )

    def call(self, **msg: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.name} worker exited (code {self.proc.poll()}) during {msg.get('cmd')}")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.name} worker: {reply['error']}")
        return reply

    def close(self) -> None:
        try:
            self.call(cmd="quit")
        except Exception:  # noqa: BLE001
            pass
        self.proc.wait(timeout=30)


def torch_available(torch_python: str | None) -> tuple[bool, str]:
    if not torch_python:
        return False, "no --torch-python given"
    if not Path(torch_python).exists():
        return False, f"{torch_python} does not exist (create the torch env: see this script's docstring)"
    probe = subprocess.run(
        [torch_python, "-c", "import torch, torchunlearn.optim; print(torch.__version__)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        return False, f"{torch_python} cannot import torch/torchunlearn: {probe.stderr.strip().splitlines()[-1:]}"
    return True, f"torch {probe.stdout.strip()} at {torch_python}"


# --------------------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------------------


def spread(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {
        "p10": common._percentile(s, 10),
        "p90": common._percentile(s, 90),
        "min": s[0],
        "max": s[-1],
        "iqr": common._percentile(s, 75) - common._percentile(s, 25),
        "rel_iqr": (common._percentile(s, 75) - common._percentile(s, 25)) / statistics.median(s),
    }


def run_case(case: dict, workers: dict[str, Worker], methods: dict[str, tuple], args, tmp: Path, env_rows: dict):
    model, dataset, batch = case["model"], case["dataset"], case["batch"]
    label = f"{model}/{dataset}/b{batch}"
    data_path = tmp / f"{model}_{dataset}_{batch}.npz"
    params_path = tmp / f"{model}_{dataset}_{batch}_params.npz"
    data_description = make_data(dataset, batch, data_path)
    base = {"model": model, "dataset": dataset, "batch": batch, "data": data_description, **HYPER}
    common_msg = {
        "data_path": str(data_path),
        "params_path": str(params_path),
        "num_classes": NUM_CLASSES,
        "model": model,
        "model_kwargs": case.get("model_kwargs"),
        "warmup": args.warmup,
        **HYPER,
    }
    setups: dict[tuple, dict] = {}
    for framework, names in methods.items():  # JAX first: it writes the shared initial parameters
        for method in names:
            key = (framework, method)
            reply = workers[framework].call(cmd="setup", case_id=f"{label}/{method}", method=method, **common_msg)
            setups[key] = reply
            common.progress(
                f"[setup] {label} {framework:5s} {method:17s} params={reply['n_params']:,} "
                f"compile={common.fmt_seconds(reply.get('compile_s'))} warmup={common.fmt_seconds(reply['warmup_s'])}"
            )
    counts = {setups[k]["n_params"] for k in setups}
    if len(counts) != 1:
        found = {"/".join(k): v["n_params"] for k, v in setups.items()}
        raise AssertionError(f"{label}: parameter counts differ between the halves: {found}")
    records = []
    if "torch" in workers and not case.get("model_kwargs"):
        logits_path = tmp / f"{model}_{dataset}_{batch}_logits.npz"
        workers["jax"].call(cmd="parity", logits_path=str(logits_path), **common_msg)
        par = workers["torch"].call(cmd="parity", logits_path=str(logits_path), **common_msg)
        common.progress(
            f"[parity] {label} max|Δlogit|={par['max_abs_logit_diff']:.2e} (max|logit| {par['max_abs_logit']:.2f})"
        )
        records.append({"record": "parity", "case": f"{label}/parity", **base, **par})

    # calibrate K steps per block (~min_time seconds)
    steps_per_block = {}
    for key in setups:
        t = workers[key[0]].call(cmd="run", case_id=f"{label}/{key[1]}", steps=1)["seconds"]
        steps_per_block[key] = max(1, int(round(args.min_time / max(t, 1e-6))))
    times: dict[tuple, list[float]] = {k: [] for k in setups}
    loads: dict[tuple, list[float]] = {k: [] for k in setups}
    order = list(setups)
    for r in range(args.repeats):
        for key in order if r % 2 == 0 else order[::-1]:
            reply = workers[key[0]].call(cmd="run", case_id=f"{label}/{key[1]}", steps=steps_per_block[key])
            times[key].append(steps_per_block[key] / reply["seconds"])
            if reply.get("loadavg_1m") is not None:
                loads[key].append(reply["loadavg_1m"])
    for key in order:
        framework, method = key
        sps = times[key]
        rec = {
            **env_rows[framework],  # first: the per-block fields below must win (environment() may have a load)
            "record": "case",
            "case": f"{label}/{framework}/{method}",
            **base,
            "framework": framework,
            "method": method,
            "n_params": setups[key]["n_params"],
            "gradient_evaluations": setups[key].get("gradient_evaluations", 2),
            "steps_per_s_median": statistics.median(sps),
            "spread": spread(sps),
            "steps_per_s": sps,
            "repeats": len(sps),
            "steps_per_block": steps_per_block[key],
            "compile_s": setups[key].get("compile_s"),
            "lower_s": setups[key].get("lower_s"),
            "warmup_s": setups[key]["warmup_s"],
            "loadavg_1m": statistics.fmean(loads[key]) if loads[key] else None,
            "loadavg_1m_blocks": loads[key],
        }
        if method == "torchunlearn-UAM":
            rec["note"] = "ascent pass on cat(forget, retain): forward/backward over 2B samples; 3B per step"
        records.append(rec)
        common.progress(
            f"[time]  {label} {framework:5s} {method:17s} {rec['steps_per_s_median']:9.2f} steps/s "
            f"(p10 {rec['spread']['p10']:.2f}, p90 {rec['spread']['p90']:.2f}, K={steps_per_block[key]}, "
            f"load {rec['loadavg_1m'] or 0:.2f})"
        )
    if "torch" in workers:
        records.append(ratio_record(label, base, times, env_rows))
    return records, data_path


def ratio_record(label: str, base: dict, times: dict[tuple, list[float]], env_rows: dict) -> dict:
    """JAX over torch steps/s: median over repeats of the per-repeat ratio (interleaved, so paired)."""
    pairs = {
        "jax_uam_over_torch_uam": (("jax", "UAM"), ("torch", "torchunlearn-UAM")),
        "jax_rosu_over_torch_uam": (("jax", "ROSU"), ("torch", "torchunlearn-UAM")),
        "jax_rosu_lagged_over_torch_uam": (("jax", "ROSU-lagged"), ("torch", "torchunlearn-UAM")),
        "jax_uam_registry_over_torch_uam": (("jax", "UAM-registry"), ("torch", "torchunlearn-UAM")),
        "jax_uam_over_torch_plain_uam": (("jax", "UAM"), ("torch", "torch-UAM")),
        "jax_rosu_over_torch_plain_uam": (("jax", "ROSU"), ("torch", "torch-UAM")),
        "jax_rosu_lagged_over_torch_plain_uam": (("jax", "ROSU-lagged"), ("torch", "torch-UAM")),
        "torch_plain_uam_over_torchunlearn_uam": (("torch", "torch-UAM"), ("torch", "torchunlearn-UAM")),
    }
    rec: dict[str, Any] = {"record": "ratio", "case": f"{label}/ratio", **base}
    for name, (num, den) in pairs.items():
        if num in times and den in times:
            per_repeat = [a / b for a, b in zip(times[num], times[den], strict=True)]
            rec[name] = statistics.median(per_repeat)
            rec[f"{name}_spread"] = spread(per_repeat)
    rec["torch"] = env_rows["torch"].get("torch")
    rec["torchunlearn"] = env_rows["torch"].get("torchunlearn")
    rec["jax"] = env_rows["jax"].get("jax")
    rec["loadavg_1m"] = common_load()
    common.progress(
        f"[ratio] {label} jax UAM / torchunlearn UAM = {rec.get('jax_uam_over_torch_uam', float('nan')):.2f}, "
        f"jax ROSU / torchunlearn UAM = {rec.get('jax_rosu_over_torch_uam', float('nan')):.2f}, "
        f"jax UAM / plain-torch UAM = {rec.get('jax_uam_over_torch_plain_uam', float('nan')):.2f}"
    )
    return rec


def common_load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def diag_records(case: dict, workers: dict[str, Worker], data_path: Path, env_rows: dict, repeats: int) -> list:
    model, dataset, batch = case["model"], case["dataset"], case["batch"]
    label = f"{model}/{dataset}/b{batch}"
    msg = {
        "data_path": str(data_path),
        "model": model,
        "num_classes": NUM_CLASSES,
        "repeats": repeats,
        "convs": CONVS.get((model, dataset), []),
    }
    out = []
    for framework, worker in workers.items():
        d = worker.call(cmd="diag", **msg)
        out.append(
            {
                **env_rows[framework],
                "record": "diag",
                "case": f"{label}/{framework}/diag",
                "model": model,
                "dataset": dataset,
                "batch": batch,
                "framework": framework,
                **d,
            }
        )
        common.progress(
            f"[diag]  {label} {framework}: "
            + ", ".join(f"{k}={common.fmt_seconds(v)}" for k, v in d.items() if k.endswith("_s"))
        )
    return out


# --------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0], "benchmarks/results/peer.jsonl")
    parser.add_argument("--torch-python", default=DEFAULT_TORCH_PYTHON, help="Interpreter of the torch env.")
    parser.add_argument("--no-torch", action="store_true", help="Run only the JAX half.")
    parser.add_argument("--models", nargs="*", default=None, help="Subset of small_cnn, resnet18.")
    parser.add_argument("--no-diag", action="store_true", help="Skip the where-does-the-time-go diagnostics.")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--in-process", action="store_true", help="Run the JAX half in this process.")
    parser.add_argument("--jax-methods", nargs="*", default=None, help=f"Subset of {JAX_METHODS_FULL}.")
    parser.add_argument("--torch-methods", nargs="*", default=None, help=f"Subset of {TORCH_METHODS}.")
    args = parser.parse_args(argv)
    cases = QUICK_CASES if args.quick else FULL_CASES
    if args.models:
        cases = tuple(c for c in cases if c["model"] in args.models)
    args.repeats = args.repeats or (2 if args.quick else 7)
    args.min_time = args.min_time if args.min_time is not None else (0.05 if args.quick else 1.0)
    args.warmup = 1 if args.quick and args.warmup == 3 else args.warmup
    jax_methods = tuple(args.jax_methods or (("UAM",) if args.quick else JAX_METHODS_FULL))

    use_torch, why = (False, "--no-torch given") if args.no_torch else torch_available(args.torch_python)
    if not use_torch:
        common.progress(f"SKIP torch half: {why}. Only the JAX half runs (no ratios).")
    env = dict(os.environ)
    workers: dict[str, Any] = {}
    try:
        if args.in_process:
            workers["jax"] = InProcessJax()
        else:
            workers["jax"] = Worker("jax", [sys.executable, str(HERE / "peer_jax_side.py"), "--worker"], env)
        if use_torch:
            workers["torch"] = Worker(
                "torch", [args.torch_python, str(HERE / "peer" / "torch_side.py"), str(args.torch_threads)], env
            )
        env_rows: dict[str, dict] = {}
        jax_env = workers["jax"].call(cmd="info")
        torch_env = workers["torch"].call(cmd="info") if use_torch else {}
        shared = {
            "torch": torch_env.get("torch"),
            "torchunlearn": torch_env.get("torchunlearn"),
            "jax": jax_env.get("jax"),
            "cpu_count": os.cpu_count(),
        }
        env_rows["jax"] = {**jax_env, **shared}
        env_rows["torch"] = {**torch_env, **shared}
        methods = {"jax": jax_methods}
        if use_torch:
            methods["torch"] = tuple(args.torch_methods or TORCH_METHODS)
        all_records = []
        with tempfile.TemporaryDirectory(prefix="peer_bench_") as tmp:
            for case in cases:
                records, data_path = run_case(case, workers, methods, args, Path(tmp), env_rows)
                if not args.no_diag and not args.quick:
                    records += diag_records(case, workers, data_path, env_rows, repeats=5)
                for rec in records:
                    rec = {"benchmark": BENCHMARK, **rec}
                    common.write_jsonl(args.out, rec)
                    all_records.append(rec)
    finally:
        for w in workers.values():
            w.close()
    rows = [r for r in all_records if r["record"] == "case"]
    print()
    common.print_table(
        rows,
        [
            "model",
            "dataset",
            "batch",
            "framework",
            "method",
            "gradient_evaluations",
            "steps_per_s_median",
            "compile_s",
            "loadavg_1m",
        ],
    )
    ratios = [r for r in all_records if r["record"] == "ratio"]
    if ratios:
        print()
        common.print_table(
            ratios,
            [
                "model",
                "dataset",
                "batch",
                "jax_uam_over_torch_uam",
                "jax_rosu_over_torch_uam",
                "jax_rosu_lagged_over_torch_uam",
                "jax_uam_over_torch_plain_uam",
                "torch_plain_uam_over_torchunlearn_uam",
            ],
        )
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    common.progress(f"done in {time.perf_counter() - t0:.1f}s")
    sys.exit(code)
