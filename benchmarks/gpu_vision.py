"""The paper's vision rows on a GPU: CIFAR-10, ResNet-18, class-wise and random forgetting, end to end.

One call trains the original model and Retrain with a fast schedule (bf16 compute), unlearns with UAM, UAM+λ and
ROSU, and records per row UA/RA/TA/MIA and Avg.Gap next to the published ROSU retain accuracy (a leaderboard quote
of the paper: RA 99.96 class-wise, 99.84 random), the per-step time and the model FLOPs utilisation (MFU: 3 × the
forward FLOPs of ResNet-18 on a 32×32 image × batch × gradient evaluations per step, over the step time, against the
device's bf16 peak). Sized for a 10-minute device call; it refuses a CPU backend unless ``--allow-cpu`` or
``--quick``. Needs a folder of CIFAR-10 images in class sub-folders (``--data-dir`` or ``CIFAR_DIR``).

  timeout --signal=INT 570 python -m benchmarks.gpu_vision --out benchmarks/results/gpu-vision.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile

import jax

from benchmarks import common
from rosu_jax.runs import RunConfig
from rosu_jax.runs.pipeline import run_pipeline
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig

METHODS = ("UAM", "UAM+λ", "ROSU")
PUBLISHED_RA = {"classwise": 99.96, "random": 99.84}
RESNET18_FORWARD_FLOPS = 0.56e9  # per 32×32 image (CIFAR ResNet-18, multiply-adds counted as 2 FLOPs)
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


def peak_tflops(kind: str) -> float | None:
    return next((v for name, v in PEAK_BF16_TFLOPS.items() if name in kind), None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="benchmarks/results/gpu-vision.jsonl")
    parser.add_argument("--data-dir", help="a folder of CIFAR-10 images in class sub-folders (or CIFAR_DIR)")
    parser.add_argument("--epochs", type=int, default=12, help="training epochs of the original model and Retrain")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="a small CNN on 20 images per class (CPU smoke test)")
    parser.add_argument("--allow-cpu", action="store_true", help="run the full size on a CPU (numbers are not GPU's)")
    args = parser.parse_args(argv)
    device = jax.devices()[0].device_kind
    common.progress(f"device: {device} x {jax.device_count()} ({jax.default_backend()})")
    if jax.default_backend() == "cpu" and not (args.quick or args.allow_cpu):
        print(
            "gpu_vision: the backend is a CPU; pass --allow-cpu (the figures would not be GPU figures) or --quick.",
            file=sys.stderr,
        )
        return 2
    folder = common.cifar10_dir(args.data_dir)
    if folder is None:
        common.progress("gpu_vision: no folder of CIFAR-10 images (--data-dir or CIFAR_DIR); nothing measured")
        return 0
    recipe = TrainingRecipe(
        epochs=args.epochs, batch_size=args.batch_size, lr=0.2, schedule="cosine", warmup_epochs=1.0, augment=True
    )
    task = VisionConfig(
        dataset="cifar10",
        data_dir=str(folder),
        model="resnet18",
        model_kwargs=(("dtype", "bfloat16"),),
        train=recipe,
        unlearn_epochs=2,
        unlearn_batch_size=256,
    )
    if args.quick:
        task = dataclasses.replace(
            task,
            model="small_cnn",
            model_kwargs=(),
            train_per_class=20,
            train=dataclasses.replace(recipe, epochs=1, batch_size=64),
            unlearn_epochs=1,
            unlearn_batch_size=32,
        )
    config = RunConfig(task=task, methods=METHODS, overrides={"*": {"lr": 0.01}})
    env = common.environment()
    peak = peak_tflops(device)
    with tempfile.TemporaryDirectory(prefix="rosu-gpu-vision-") as tmp:
        output = run_pipeline(config, work_dir=tmp, progress=False, log=common.progress)
    for row in output.rows:
        step_s = row["seconds"] / row["steps"] if row.get("steps") else None
        flops = (
            3 * RESNET18_FORWARD_FLOPS * task.unlearn_batch_size * row["gradient_evaluations"]
            if row.get("gradient_evaluations") and not args.quick
            else None
        )
        mfu = flops / step_s / (peak * 1e12) if flops and step_s and peak else None
        rec = common.record(
            "gpu_vision",
            f"{row['scenario']}/{row['method']}",
            env,
            scenario=row["scenario"],
            method=row["method"],
            **{
                k: row.get(k)
                for k in (
                    "UA",
                    "RA",
                    "TA",
                    "MIA",
                    "avg_gap",
                    "seconds",
                    "compile_s",
                    "steps",
                    "gradient_evaluations",
                    "status",
                )
            },
            published_rosu_ra=PUBLISHED_RA[row["scenario"]],
            step_s=step_s,
            mfu=mfu,
            quick=args.quick,
            recipe=dataclasses.asdict(task.train),
            model=task.model,
        )
        common.write_jsonl(args.out, rec)
        common.progress(
            f"{row['scenario']}/{row['method']}: UA {row['UA']} RA {row['RA']} TA {row['TA']} "
            f"MIA {row['MIA']} gap {row.get('avg_gap')} step {step_s} s MFU {mfu}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
