"""JAX half of the peer benchmark (``benchmarks/peer_torchunlearn.py``): rosu_jax's UAM and ROSU steps.

Usable in-process (``JaxSide``, as the smoke test does) or as a worker process speaking the protocol of
``benchmarks/peer/worker.py`` (``python benchmarks/peer_jax_side.py --worker``).

Methods (all SGD momentum 0.9, weight decay 5e-4, lr 0.01 from ``MethodConfig(lr=0.01)``):
  UAM           ``rosu_jax.make_uam_step(..., report_coupling=False)``: 2 gradients (g_f at θ, g̃ at θ+δ),
                the published UAM cost and the like-for-like peer of torchunlearn's UAM.
  UAM-registry  ``METHODS['UAM']``: also g_r at θ for the exact coupling diagnostics (3 gradients).
  ROSU          ``METHODS['ROSU']``: fresh g_r at θ, retain-orthogonal δ, λ = 0.05 (3 gradients).
  ROSU-lagged   ``make_rosu_step(..., lagged=True)``: previous step's g̃ as g_r (2 gradients).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from peer.worker import loadavg_1m, serve  # noqa: E402

import rosu_jax  # noqa: E402
from rosu_jax.models import build_model, count_params  # noqa: E402
from rosu_jax.steps.classifier import forget_loss_fn, retain_loss_fn  # noqa: E402
from rosu_jax.steps.registry import METHODS, MethodConfig, make_optimizer  # noqa: E402

JAX_METHODS = ("UAM", "UAM-registry", "ROSU", "ROSU-lagged")
GRADIENTS = {"UAM": 2, "UAM-registry": 3, "ROSU": 3, "ROSU-lagged": 2}
TOTAL_STEPS = 1000


def make_stepper(method: str, apply_fn, num_classes: int, config: MethodConfig):
    forget, retain = forget_loss_fn(apply_fn), retain_loss_fn(apply_fn)
    optimizer = make_optimizer(config, TOTAL_STEPS)
    if method == "UAM":
        return rosu_jax.make_uam_step(forget, retain, optimizer, rho=config.rho, report_coupling=False)
    if method == "ROSU-lagged":
        return rosu_jax.make_rosu_step(
            forget, retain, optimizer, rho=config.rho, amplification=config.amplification, lagged=True
        )
    if method == "UAM-registry":
        return METHODS["UAM"].factory(apply_fn, num_classes, config, TOTAL_STEPS)
    if method == "ROSU":
        return METHODS["ROSU"].factory(apply_fn, num_classes, config, TOTAL_STEPS)
    raise ValueError(f"unknown JAX method {method!r}; known: {JAX_METHODS}")


def _flat(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}/{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(_flat(value, name))
        else:
            out[name] = np.asarray(value)
    return out


def _batch(x: np.ndarray, y: np.ndarray) -> dict[str, jax.Array]:
    return {"image": jnp.asarray(x), "label": jnp.asarray(y, dtype=jnp.int32)}


def _median_time(fn, repeats: int) -> float:
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


class JaxSide:
    """The JAX worker's state: one compiled step per case."""

    def __init__(self):
        self.cases: dict[str, dict[str, Any]] = {}
        self.models: dict[tuple, tuple] = {}

    def _model(self, name: str, num_classes: int, in_channels: int, model_kwargs: dict | None = None):
        key = (name, num_classes, in_channels, json.dumps(model_kwargs or {}, sort_keys=True))
        if key not in self.models:
            self.models[key] = build_model(name, num_classes, in_channels, seed=0, **(model_kwargs or {}))
        return self.models[key]

    def info(self, _: dict[str, Any]) -> dict[str, Any]:
        return common.environment()

    def setup(self, msg: dict[str, Any]) -> dict[str, Any]:
        t0 = time.perf_counter()
        data = np.load(msg["data_path"])
        in_channels = data["forget_x"].shape[-1]
        kwargs = msg.get("model_kwargs") or {}
        apply_fn, params, model_state = self._model(msg["model"], msg["num_classes"], in_channels, kwargs)
        if msg.get("params_path") and not Path(msg["params_path"]).exists():
            np.savez(msg["params_path"], **_flat(params))
        config = MethodConfig(lr=msg["lr"], momentum=msg["momentum"], weight_decay=msg["weight_decay"], rho=msg["rho"])
        stepper = make_stepper(msg["method"], apply_fn, msg["num_classes"], config)
        state = stepper.init(params, model_state)
        forget = _batch(data["forget_x"], data["forget_y"])
        retain = _batch(data["retain_x"], data["retain_y"])
        key = jax.random.key(0)
        setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        lowered = stepper.step.lower(state, forget, retain, key)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        for _ in range(msg.get("warmup", 2)):
            state, _metrics = compiled(state, forget, retain, key)
        jax.block_until_ready(state)
        warmup_s = time.perf_counter() - t2
        self.cases[msg["case_id"]] = {
            "step": compiled,
            "state": state,
            "forget": forget,
            "retain": retain,
            "key": key,
            "host": (data["forget_x"], data["forget_y"], data["retain_x"], data["retain_y"]),
        }
        return {
            "n_params": count_params(params),
            "gradient_evaluations": stepper.gradient_evaluations,
            "setup_s": setup_s,
            "lower_s": t1 - t0,
            "compile_s": t2 - t1,
            "warmup_s": warmup_s,
        }

    def run(self, msg: dict[str, Any]) -> dict[str, Any]:
        case = self.cases[msg["case_id"]]
        step, state, key = case["step"], case["state"], case["key"]
        forget, retain = case["forget"], case["retain"]
        host = msg.get("host_batches", False)
        load = loadavg_1m()
        t0 = time.perf_counter()
        for _ in range(msg["steps"]):
            if host:  # the data path: numpy batch -> device array every step
                fx, fy, rx, ry = case["host"]
                forget, retain = _batch(fx, fy), _batch(rx, ry)
            state, _metrics = step(state, forget, retain, key)
        jax.block_until_ready(state)
        seconds = time.perf_counter() - t0
        case["state"] = state
        return {"seconds": seconds, "loadavg_1m": load}

    def parity(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Save eval-mode logits of the model on the retain batch (the torch half compares its own)."""
        data = np.load(msg["data_path"])
        apply_fn, params, model_state = self._model(msg["model"], msg["num_classes"], data["retain_x"].shape[-1])
        logits, _ = jax.jit(lambda p, s, x: apply_fn(p, s, x, train=False))(
            params, model_state, jnp.asarray(data["retain_x"])
        )
        np.savez(msg["logits_path"], logits=np.asarray(logits))
        return {"saved": msg["logits_path"]}

    def diag(self, msg: dict[str, Any]) -> dict[str, Any]:
        """Forward / forward+backward of the model and of single conv layers, dispatch and data overheads."""
        data = np.load(msg["data_path"])
        repeats = msg.get("repeats", 5)
        apply_fn, params, model_state = self._model(msg["model"], msg["num_classes"], data["retain_x"].shape[-1])
        retain = _batch(data["retain_x"], data["retain_y"])
        loss = retain_loss_fn(apply_fn)
        fwd = jax.jit(lambda p, s, x: apply_fn(p, s, x, train=True)[0])
        fwd_bwd = jax.jit(jax.grad(lambda p, s, b: loss(p, s, b, None)[0]))
        out: dict[str, Any] = {
            "model_fwd_s": _median_time(lambda: fwd(params, model_state, retain["image"]), repeats),
            "model_fwd_bwd_s": _median_time(lambda: fwd_bwd(params, model_state, retain), repeats),
        }
        for spec in msg.get("convs", []):
            n, h, w, c_in, c_out, stride = spec
            rng = np.random.default_rng(0)
            x = jnp.asarray(rng.standard_normal((n, h, w, c_in)).astype(np.float32))
            k = jnp.asarray(rng.standard_normal((3, 3, c_in, c_out)).astype(np.float32))

            def conv(x, k, stride=stride):
                return jax.lax.conv_general_dilated(
                    x, k, (stride, stride), ((1, 1), (1, 1)), dimension_numbers=("NHWC", "HWIO", "NHWC")
                )

            cfwd = jax.jit(conv)
            cgrad = jax.jit(jax.grad(lambda x, k: jnp.sum(conv(x, k)), argnums=(0, 1)))
            key = "conv_{}x{}x{}_{}to{}_s{}".format(*spec)
            out[f"{key}_fwd_s"] = _median_time(lambda cfwd=cfwd, x=x, k=k: cfwd(x, k), repeats)
            out[f"{key}_fwd_bwd_s"] = _median_time(lambda cgrad=cgrad, x=x, k=k: cgrad(x, k), repeats)
        small = jnp.zeros(8)

        def tiny_ops():
            y = small
            for _ in range(100):
                y = y + 1.0
            return y

        out["dispatch_100_tiny_adds_s"] = _median_time(tiny_ops, repeats)
        noop = jax.jit(lambda x: x + 1.0)
        out["dispatch_jit_call_s"] = _median_time(lambda: noop(small), max(repeats, 20))
        fx, fy, rx, ry = data["forget_x"], data["forget_y"], data["retain_x"], data["retain_y"]
        out["host_to_device_batches_s"] = _median_time(lambda: (_batch(fx, fy), _batch(rx, ry)), repeats)
        out["loadavg_1m"] = loadavg_1m()
        return out


def main() -> None:
    if "--worker" not in sys.argv:
        raise SystemExit("run through benchmarks/peer_torchunlearn.py (this is its JAX worker: --worker)")
    side = JaxSide()
    serve({"info": side.info, "setup": side.setup, "run": side.run, "parity": side.parity, "diag": side.diag})


if __name__ == "__main__":
    main()
