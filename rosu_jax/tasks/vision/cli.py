"""The vision task's command-line flags (``rosu-unlearn`` with no sub-command, or ``rosu-unlearn vision``)."""

from __future__ import annotations

import argparse

from rosu_jax.models import MODELS
from rosu_jax.tasks.base import configure
from rosu_jax.tasks.vision.data import DATASET_NAMES
from rosu_jax.tasks.vision.data.splits import SCENARIOS as SPLIT_SCENARIOS
from rosu_jax.tasks.vision.task import VisionConfig

SUMMARY = "image classifiers: class-wise and random forgetting, UA / RA / TA / MIA, Avg.Gap (the default task)"
EXAMPLES = """examples:
  rosu-unlearn                                        # digits, small CNN, class-wise + random, all methods
  rosu-unlearn --out results/digits --seeds 0,1,2,3,4  # ... five seeds, with intervals; results.json/.md, plots
  rosu-unlearn --dataset folder --data-dir DIR --model small_cnn --epochs 15   # a folder of CIFAR-10 images
  rosu-unlearn --config experiments/cifar10_classwise.py                       # a paper setting (ResNet-18)
  rosu-unlearn --methods ROSU,UAM --lr-grid 0.005,0.01,0.02 --set ROSU.rho=0.2
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("vision task")
    g.add_argument(
        "--dataset", choices=DATASET_NAMES, help="digits (default, offline), folder, cifar10, cifar100, tiny_imagenet"
    )
    g.add_argument("--data-dir", help="dataset root: a folder with train/<class>/*.jpg and test/<class>/*.jpg")
    g.add_argument(
        "--model",
        choices=tuple(MODELS),
        help="small_cnn or resnet18 (default: small_cnn for digits, else resnet18, as the protocol)",
    )
    g.add_argument("--dtype", choices=["float32", "bfloat16"], help="compute dtype of the model (params stay float32)")
    g.add_argument(
        "--skip-bad-images", action="store_true", help="leave out image files that do not decode (default: fail)"
    )
    g.add_argument("--train-per-class", type=int, help="keep at most N training images per class (CPU budgets)")
    g.add_argument(
        "--scenario",
        choices=[*SPLIT_SCENARIOS, "both", "sequential"],
        help="forgetting scenario (default both); sequential: a stream of deletion requests",
    )
    g.add_argument("--requests", type=int, help="sequential: number of deletion requests (default 5)")
    g.add_argument(
        "--request-fraction", type=float, help="sequential: share of the training set per request (default 0.02)"
    )
    g.add_argument("--forget-class", type=int, help="class forgotten in class-wise forgetting (default 0)")
    g.add_argument("--forget-fraction", type=float, help="fraction forgotten in random forgetting (default 0.1)")
    g.add_argument("--epochs", type=int, help="training epochs of the original model and Retrain")
    g.add_argument("--train-lr", type=float, help="training learning rate")
    g.add_argument("--batch-size", type=int, help="training batch size of the original model and Retrain")
    g.add_argument("--augment", action="store_true", help="random crop + flip while training")
    g.add_argument("--unlearn-epochs", type=int, help="passes over the retain set per unlearning run")
    g.add_argument("--unlearn-batch-size", type=int, help="batch size of the unlearning runs (default 64)")
    g.add_argument("--unlearn-steps", type=int, help="stop every unlearning run after N steps (a CPU budget)")
    g.add_argument(
        "--model-seed",
        type=int,
        help="train the original model, draw the split and train Retrain with this seed for every --seeds value "
        "(the seeds then vary only the unlearning runs)",
    )


def build_config(args: argparse.Namespace, base: VisionConfig | None, task_sets: dict) -> VisionConfig:
    """The task config: ``base`` (a --config file's, or the default) with the flags and ``--set`` values applied."""
    config = base or VisionConfig()
    changes = {}
    if args.skip_bad_images:
        changes["skip_bad_images"] = True
    if args.dtype:
        changes["model_kwargs"] = tuple(kv for kv in config.model_kwargs if kv[0] != "dtype") + (("dtype", args.dtype),)
    if args.scenario:
        changes["scenarios"] = SPLIT_SCENARIOS if args.scenario == "both" else (args.scenario,)
    if args.requests is not None:
        changes["sequential_requests"] = args.requests
    if args.request_fraction is not None:
        changes["sequential_fraction"] = args.request_fraction
    flags = (
        "dataset",
        "data_dir",
        "model",
        "train_per_class",
        "forget_class",
        "forget_fraction",
        "unlearn_epochs",
        "unlearn_batch_size",
        "unlearn_steps",
        "model_seed",
    )
    return configure(config, args, flags, task_sets, changes=changes, train={"augment": True} if args.augment else {})
