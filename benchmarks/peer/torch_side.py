"""PyTorch half of the peer benchmark: torchunlearn's UAM (and a plain-PyTorch UAM) on the library's models.

Runs in the optional torch environment (``/work/torchenv``: torch, torchvision, torchunlearn, numpy), driven by
``benchmarks/peer_torchunlearn.py`` over the protocol of ``benchmarks/peer/worker.py``. It imports neither JAX
nor rosu_jax. Models replicate ``rosu_jax.models`` layer for layer (module names included, so the JAX
parameters saved by the JAX half load here: HWIO kernels -> OIHW, dense (in, out) -> (out, in)).

Methods:
  torchunlearn-UAM  ``torchunlearn.optim.UAM(model, SGD, rho).step(cost_fn, {"Forget": ..., "Retain": ...})``,
                    the library's own step, model in train mode as its Trainer sets it. Its ascent pass runs
                    the forward/backward on cat(forget, retain) (2B samples) and keeps the forget rows' loss.
  torch-UAM         the same maths as rosu_jax's 2-gradient UAM, in plain PyTorch: g_f on the forget batch
                    (eval-mode BatchNorm), δ = ρ g_f/‖g_f‖, g̃ = ∇L_r(θ+δ) on the retain batch (train mode),
                    restore θ, SGD step — per-parameter ``torch._foreach`` ops, no torchunlearn code.
"""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from worker import loadavg_1m, serve  # noqa: E402

BN_MOMENTUM_TORCH = 0.1  # = 1 - Flax's 0.9


class SameConv(nn.Module):
    """3x3 conv, bias-free unless asked. ``same_padding``: pad like XLA's 'SAME' (stride 2: (0, 1)), for the
    parity check only; the timed models use PyTorch's usual symmetric ``padding=1`` (same shapes and FLOPs)."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, bias: bool, same_padding: bool):
        super().__init__()
        self.k, self.stride = k, stride
        self.asym = same_padding and k == 3 and stride == 2
        pad = 0 if (k == 1 or self.asym) else k // 2
        self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=pad, bias=bias)

    def forward(self, x):
        if self.asym:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=BN_MOMENTUM_TORCH)


class TorchSmallCNN(nn.Module):
    """rosu_jax.models.SmallCNN: conv3x3-BN-relu (stride 1, then 2), global mean pool, fc1-relu-fc2."""

    def __init__(self, num_classes: int, in_channels: int, widths=(32, 64), hidden: int = 128, same_padding=False):
        super().__init__()
        self.num_stages = len(widths)
        c_in = in_channels
        for i, w in enumerate(widths):
            setattr(self, f"conv{i}", SameConv(c_in, w, 3, 1 if i == 0 else 2, False, same_padding))
            setattr(self, f"bn{i}", _bn(w))
            c_in = w
        self.fc1 = nn.Linear(c_in, hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        for i in range(self.num_stages):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        x = x.mean(dim=(2, 3))
        return self.fc2(F.relu(self.fc1(x)))


class TorchBasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, same_padding: bool):
        super().__init__()
        self.conv1 = SameConv(c_in, c_out, 3, stride, False, same_padding)
        self.bn1 = _bn(c_out)
        self.conv2 = SameConv(c_out, c_out, 3, 1, False, same_padding)
        self.bn2 = _bn(c_out)
        self.has_projection = stride != 1 or c_in != c_out
        if self.has_projection:
            self.proj_conv = SameConv(c_in, c_out, 1, stride, False, same_padding)
            self.proj_bn = _bn(c_out)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = self.proj_bn(self.proj_conv(x)) if self.has_projection else x
        return F.relu(y + shortcut)


class TorchResNet18(nn.Module):
    """rosu_jax.models.ResNet18 (CIFAR: 3x3 stem, stride 1, no max-pool), 11,173,962 parameters for 10 classes."""

    STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))

    def __init__(self, num_classes: int, in_channels: int = 3, same_padding: bool = False):
        super().__init__()
        self.stem_conv = SameConv(in_channels, 64, 3, 1, False, same_padding)
        self.stem_bn = _bn(64)
        names, c_in = [], 64
        for s, (width, stride) in enumerate(self.STAGES):
            for b in range(2):
                name = f"layer{s + 1}_block{b}"
                setattr(self, name, TorchBasicBlock(c_in, width, stride if b == 0 else 1, same_padding))
                names.append(name)
                c_in = width
        self.block_names = tuple(names)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem_conv(x)))
        for name in self.block_names:
            x = getattr(self, name)(x)
        return self.fc(x.mean(dim=(2, 3)))


def build_torch_model(name: str, num_classes: int, in_channels: int, *, same_padding=False, **kwargs) -> nn.Module:
    if name == "small_cnn":
        return TorchSmallCNN(num_classes, in_channels, same_padding=same_padding, **kwargs)
    if name == "resnet18":
        return TorchResNet18(num_classes, in_channels, same_padding=same_padding)
    raise ValueError(f"unknown model {name!r}")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def load_jax_params(model: nn.Module, npz_path: str) -> int:
    """Copy the JAX half's parameters (npz keyed 'conv0/kernel', ...) into ``model``; returns tensors loaded."""
    arrays = np.load(npz_path)
    by_name = dict(model.named_parameters())
    loaded = 0
    for key in arrays.files:
        value = arrays[key]
        path, leaf = key.rsplit("/", 1)
        module = path.replace("/", ".")
        if leaf == "kernel" and value.ndim == 4:
            target, value = f"{module}.conv.weight", value.transpose(3, 2, 0, 1)
        elif leaf == "kernel":
            target, value = f"{module}.weight", value.T
        elif leaf == "scale":
            target = f"{module}.weight"
        else:
            target = f"{module}.{leaf}"
        param = by_name[target]
        if tuple(param.shape) != value.shape:
            raise ValueError(f"{key}: JAX shape {value.shape} vs torch {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))
        loaded += 1
    if loaded != len(by_name):
        raise ValueError(f"loaded {loaded} of {len(by_name)} torch parameters")
    return loaded


# --------------------------------------------------------------------------------------------------------
# Steps
# --------------------------------------------------------------------------------------------------------


def make_torchunlearn_uam(model: nn.Module, lr: float, momentum: float, weight_decay: float, rho: float):
    from torchunlearn.optim import UAM

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    minimizer = UAM(model, optimizer, rho=rho)

    def cost_fn(data, reduction="mean"):
        x, y = data
        return F.cross_entropy(model(x), y, reduction="none" if reduction is None else reduction)

    def step(forget, retain):
        model.train()  # torchunlearn's Trainer.fit sets train mode before every _update_weight
        minimizer.step(cost_fn, {"Forget": forget, "Retain": retain})

    return step


def make_plain_uam(model: nn.Module, lr: float, momentum: float, weight_decay: float, rho: float):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def step(forget, retain):
        xf, yf = forget
        xr, yr = retain
        model.eval()  # forget loss with running BatchNorm statistics, as rosu_jax's forget_loss_fn
        g_f = torch.autograd.grad(F.cross_entropy(model(xf), yf), params)
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g_f)))
            delta = torch._foreach_mul(g_f, float(rho) / (norm + 1e-12))
            torch._foreach_add_(params, delta)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(xr), yr).backward()
        with torch.no_grad():
            torch._foreach_sub_(params, delta)
        optimizer.step()

    return step


STEP_FACTORIES = {"torchunlearn-UAM": make_torchunlearn_uam, "torch-UAM": make_plain_uam}


# --------------------------------------------------------------------------------------------------------
# Worker
# --------------------------------------------------------------------------------------------------------

CASES: dict[str, dict[str, Any]] = {}


def _to_torch(images_nhwc: np.ndarray, labels: np.ndarray, channels_last: bool = False):
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, torch.from_numpy(labels.astype(np.int64))


def info(_: dict[str, Any]) -> dict[str, Any]:
    try:
        import torchunlearn

        tu_version = getattr(torchunlearn, "__version__", None)
        from importlib.metadata import version

        tu_dist = version("torchunlearn")
    except ImportError:
        tu_version = tu_dist = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "torchunlearn": tu_dist or tu_version,
        "numpy": np.__version__,
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "mkldnn_enabled": torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled,
        "torch_parallel_info": torch.__config__.parallel_info().splitlines()[:8],
        "backend": "cpu",
        "device_kind": "cpu",
    }


def setup(msg: dict[str, Any]) -> dict[str, Any]:
    t0 = time.perf_counter()
    data = np.load(msg["data_path"])
    kwargs = msg.get("model_kwargs") or {}
    model = build_torch_model(msg["model"], msg["num_classes"], data["forget_x"].shape[-1], **kwargs)
    n_params = count_params(model)
    if msg.get("params_path"):
        load_jax_params(model, msg["params_path"])
    forget = _to_torch(data["forget_x"], data["forget_y"])
    retain = _to_torch(data["retain_x"], data["retain_y"])
    step = STEP_FACTORIES[msg["method"]](model, msg["lr"], msg["momentum"], msg["weight_decay"], msg["rho"])
    setup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(msg.get("warmup", 2)):
        step(forget, retain)
    warmup_s = time.perf_counter() - t0
    CASES[msg["case_id"]] = {"step": step, "forget": forget, "retain": retain, "model": model}
    return {"n_params": n_params, "setup_s": setup_s, "warmup_s": warmup_s, "compile_s": None}


def run(msg: dict[str, Any]) -> dict[str, Any]:
    case = CASES[msg["case_id"]]
    step, forget, retain = case["step"], case["forget"], case["retain"]
    load = loadavg_1m()
    t0 = time.perf_counter()
    for _ in range(msg["steps"]):
        step(forget, retain)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "loadavg_1m": load}


def parity(msg: dict[str, Any]) -> dict[str, Any]:
    """Eval-mode logits of the torch model (XLA 'SAME' padding) with the JAX parameters vs the JAX logits."""
    data = np.load(msg["data_path"])
    ref = np.load(msg["logits_path"])
    model = build_torch_model(msg["model"], msg["num_classes"], data["retain_x"].shape[-1], same_padding=True)
    load_jax_params(model, msg["params_path"])
    model.eval()
    with torch.no_grad():
        logits = model(_to_torch(data["retain_x"], data["retain_y"])[0]).numpy()
    err = float(np.max(np.abs(logits - ref["logits"])))
    return {"max_abs_logit_diff": err, "max_abs_logit": float(np.max(np.abs(ref["logits"])))}


def _time(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def diag(msg: dict[str, Any]) -> dict[str, Any]:
    """Where the time goes: forward / forward+backward of the whole model and of single conv layers."""
    data = np.load(msg["data_path"])
    repeats = msg.get("repeats", 5)
    out: dict[str, Any] = {}
    for layout in ("nchw", "channels_last"):
        cl = layout == "channels_last"
        model = build_torch_model(msg["model"], msg["num_classes"], data["retain_x"].shape[-1])
        if cl:
            model = model.to(memory_format=torch.channels_last)
        x, y = _to_torch(data["retain_x"], data["retain_y"], channels_last=cl)
        model.train()

        def fwd(model=model, x=x):
            with torch.no_grad():
                model(x)

        def fwd_bwd(model=model, x=x, y=y):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()

        out[f"model_fwd_{layout}_s"] = _time(fwd, repeats)
        out[f"model_fwd_bwd_{layout}_s"] = _time(fwd_bwd, repeats)
    for spec in msg.get("convs", []):
        n, h, w, c_in, c_out, stride = spec
        conv = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        x = torch.randn(n, c_in, h, w, requires_grad=True)

        def cfwd(conv=conv, x=x):
            with torch.no_grad():
                conv(x)

        def cfwd_bwd(conv=conv, x=x):
            conv.zero_grad(set_to_none=True)
            x.grad = None
            conv(x).sum().backward()

        key = "conv_{}x{}x{}_{}to{}_s{}".format(*spec)
        out[f"{key}_fwd_s"] = _time(cfwd, repeats)
        out[f"{key}_fwd_bwd_s"] = _time(cfwd_bwd, repeats)
    # per-op dispatch: a chain of tiny elementwise ops
    small = torch.zeros(8)

    def tiny_ops(small=small):
        y = small
        for _ in range(100):
            y = y + 1.0
        return y

    out["dispatch_100_tiny_adds_s"] = _time(tiny_ops, repeats)
    out["loadavg_1m"] = loadavg_1m()
    return out


def main() -> None:
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    serve({"info": info, "setup": setup, "run": run, "parity": parity, "diag": diag})


if __name__ == "__main__":
    main()
