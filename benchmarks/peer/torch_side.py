"""The PyTorch half of the peer benchmark, in its own environment (torch, torchunlearn, numpy): one JSON command per
line in (``info``, ``setup``, ``run``, ``parity``, ``quit``), one JSON answer per line out. The models replicate
``rosu_jax.models`` module for module, so the JAX half's parameters load. ``torchunlearn-UAM`` is torchunlearn's own
step (ascent on cat(forget, retain)); ``torch-UAM`` is rosu_jax's 2-gradient UAM in plain PyTorch."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from importlib import metadata
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

BN_MOMENTUM_TORCH = 0.1  # = 1 - Flax's 0.9


class SameConv(nn.Module):
    """A bias-free conv; ``same_padding`` (the parity check) pads like XLA's 'SAME', the timed models symmetrically."""

    def __init__(self, c_in: int, c_out: int, k: int, stride: int, same_padding: bool):
        super().__init__()
        self.pad = (0, 1, 0, 1) if same_padding and k == 3 and stride == 2 else None
        self.conv = nn.Conv2d(c_in, c_out, k, stride=stride, padding=0 if k == 1 or self.pad else k // 2, bias=False)

    def forward(self, x):
        return self.conv(F.pad(x, self.pad) if self.pad else x)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=1e-5, momentum=BN_MOMENTUM_TORCH)


class TorchSmallCNN(nn.Module):
    """rosu_jax.models.SmallCNN: conv3x3-BN-relu (stride 1, then 2), global mean pool, fc1-relu-fc2."""

    def __init__(self, num_classes: int, in_channels: int, widths=(32, 64), hidden: int = 128, same_padding=False):
        super().__init__()
        self.num_stages = len(widths)
        for i, (c_in, w) in enumerate(zip((in_channels, *widths[:-1]), widths, strict=True)):
            setattr(self, f"conv{i}", SameConv(c_in, w, 3, 1 if i == 0 else 2, same_padding))
            setattr(self, f"bn{i}", _bn(w))
        self.fc1 = nn.Linear(widths[-1], hidden)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        for i in range(self.num_stages):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        x = x.mean(dim=(2, 3))
        return self.fc2(F.relu(self.fc1(x)))


class TorchBasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, same_padding: bool):
        super().__init__()
        self.conv1 = SameConv(c_in, c_out, 3, stride, same_padding)
        self.bn1 = _bn(c_out)
        self.conv2 = SameConv(c_out, c_out, 3, 1, same_padding)
        self.bn2 = _bn(c_out)
        self.has_projection = stride != 1 or c_in != c_out
        if self.has_projection:
            self.proj_conv = SameConv(c_in, c_out, 1, stride, same_padding)
            self.proj_bn = _bn(c_out)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(y + (self.proj_bn(self.proj_conv(x)) if self.has_projection else x))


class TorchResNet18(nn.Module):
    """rosu_jax.models.ResNet18 (CIFAR: 3x3 stem, stride 1, no max-pool), 11,173,962 parameters for 10 classes."""

    STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))

    def __init__(self, num_classes: int, in_channels: int = 3, same_padding: bool = False):
        super().__init__()
        self.stem_conv = SameConv(in_channels, 64, 3, 1, same_padding)
        self.stem_bn = _bn(64)
        c_in = 64
        for s, (width, stride) in enumerate(self.STAGES):
            for b in range(2):
                setattr(self, f"layer{s + 1}_block{b}", TorchBasicBlock(c_in, width, stride if b == 0 else 1,
                                                                        same_padding))
                c_in = width
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem_conv(x)))
        for block in (m for m in self.children() if isinstance(m, TorchBasicBlock)):  # in the order they were set
            x = block(x)
        return self.fc(x.mean(dim=(2, 3)))


MODELS = {"small_cnn": TorchSmallCNN, "resnet18": TorchResNet18}


def load_jax_params(model: nn.Module, npz_path: str) -> None:
    """Copy the JAX half's parameters (npz keyed 'conv0/kernel', ...) into ``model``, every one of them."""
    arrays = np.load(npz_path)
    by_name = dict(model.named_parameters())
    if len(arrays.files) != len(by_name):
        raise ValueError(f"{len(arrays.files)} JAX parameters for {len(by_name)} torch parameters")
    for key in arrays.files:
        value = arrays[key]
        path, leaf = key.rsplit("/", 1)
        conv = leaf == "kernel" and value.ndim == 4  # HWIO -> OIHW; a dense kernel (in, out) -> (out, in)
        param = by_name[path.replace("/", ".") + {"kernel": ".conv.weight" if conv else ".weight",
                                                  "scale": ".weight"}.get(leaf, f".{leaf}")]
        value = value.transpose(3, 2, 0, 1) if conv else value.T if leaf == "kernel" else value
        if tuple(param.shape) != value.shape:
            raise ValueError(f"{key}: JAX shape {value.shape} vs torch {tuple(param.shape)}")
        with torch.no_grad():
            param.copy_(torch.from_numpy(np.ascontiguousarray(value)))


def make_torchunlearn_uam(model: nn.Module, lr: float, momentum: float, weight_decay: float, rho: float):
    from torchunlearn.optim import UAM

    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    minimizer = UAM(model, optimizer, rho=rho)

    def cost_fn(data, reduction="mean"):
        return F.cross_entropy(model(data[0]), data[1], reduction="none" if reduction is None else reduction)

    def step(forget, retain):
        model.train()  # torchunlearn's Trainer.fit sets train mode before every _update_weight
        minimizer.step(cost_fn, {"Forget": forget, "Retain": retain})

    return step


def make_plain_uam(model: nn.Module, lr: float, momentum: float, weight_decay: float, rho: float):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)

    def step(forget, retain):
        model.eval()  # forget loss with running BatchNorm statistics, as rosu_jax's forget_loss_fn
        g_f = torch.autograd.grad(F.cross_entropy(model(forget[0]), forget[1]), params)
        with torch.no_grad():
            norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g_f)))
            delta = torch._foreach_mul(g_f, float(rho) / (norm + 1e-12))
            torch._foreach_add_(params, delta)
        model.train()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(retain[0]), retain[1]).backward()
        with torch.no_grad():
            torch._foreach_sub_(params, delta)
        optimizer.step()

    return step


STEP_FACTORIES = {"torchunlearn-UAM": make_torchunlearn_uam, "torch-UAM": make_plain_uam}
CASES: dict[str, tuple] = {}  # case id -> (step, forget, retain)


def _to_torch(images_nhwc: np.ndarray, labels: np.ndarray):
    return torch.from_numpy(np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2))), torch.from_numpy(
        labels.astype(np.int64))


def info(_: dict[str, Any]) -> dict[str, Any]:
    return {"python": platform.python_version(), "platform": platform.platform(), "torch": torch.__version__,
            "torchunlearn": metadata.version("torchunlearn"), "numpy": np.__version__,
            "torch_num_threads": torch.get_num_threads(), "backend": "cpu", "device_kind": "cpu"}


def setup(msg: dict[str, Any]) -> dict[str, Any]:
    data = np.load(msg["data_path"])
    model = MODELS[msg["model"]](msg["num_classes"], data["forget_x"].shape[-1], **(msg.get("model_kwargs") or {}))
    load_jax_params(model, msg["params_path"])
    forget = _to_torch(data["forget_x"], data["forget_y"])
    retain = _to_torch(data["retain_x"], data["retain_y"])
    step = STEP_FACTORIES[msg["method"]](model, msg["lr"], msg["momentum"], msg["weight_decay"], msg["rho"])
    t0 = time.perf_counter()
    for _ in range(msg["warmup"]):
        step(forget, retain)
    CASES[msg["case_id"]] = (step, forget, retain)
    return {"n_params": sum(p.numel() for p in model.parameters()), "warmup_s": time.perf_counter() - t0,
            "compile_s": None}


def run(msg: dict[str, Any]) -> dict[str, Any]:
    """``steps`` steps of one case, timed: the driver's block."""
    step, forget, retain = CASES[msg["case_id"]]
    t0 = time.perf_counter()
    for _ in range(msg["steps"]):
        step(forget, retain)
    return {"seconds": time.perf_counter() - t0}


def parity(msg: dict[str, Any]) -> dict[str, Any]:
    """Eval-mode logits of the torch model (XLA 'SAME' padding) with the JAX parameters vs the JAX logits."""
    data = np.load(msg["data_path"])
    reference = np.load(msg["logits_path"])["logits"]
    model = MODELS[msg["model"]](msg["num_classes"], data["retain_x"].shape[-1], same_padding=True)
    load_jax_params(model, msg["params_path"])
    model.eval()
    with torch.no_grad():
        logits = model(_to_torch(data["retain_x"], data["retain_y"])[0]).numpy()
    return {"max_abs_logit_diff": float(np.max(np.abs(logits - reference))),
            "max_abs_logit": float(np.max(np.abs(reference)))}


def serve(handlers: dict[str, Callable[[dict], dict]]) -> None:
    """Answer stdin's commands until ``quit`` (other output goes to stderr; an exception answers ``{"error": ...}``)."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for line in sys.stdin:
        if not line.strip():
            continue
        message = json.loads(line)
        if message.get("cmd") == "quit":
            protocol.write(json.dumps({"ok": True}) + "\n")
            break
        try:
            reply = handlers[message["cmd"]](message)
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which decides
            traceback.print_exc()
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        protocol.write(json.dumps(reply) + "\n")
    protocol.close()


if __name__ == "__main__":
    torch.set_num_threads(2)
    serve({"info": info, "setup": setup, "run": run, "parity": parity})
