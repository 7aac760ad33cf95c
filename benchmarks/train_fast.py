"""Train an experiment config's original model through the project's own training path, timed, and test it.

What ``rosu-unlearn`` does to get the original model of a vision config: ``VisionTask.load`` (CIFAR-10 from a folder
of images in class sub-folders: the training images less the protocol's 10% validation holdout), ``training_data``,
``init_model``, ``runs.train.train_model`` with the config's recipe; then eval-mode test accuracy on the whole test
set. Records ``train_fast`` '<config stem>' with the test accuracy, the training wall time (``train_wall_s``:
``train_model`` from its call to its return, first-step compilation included; ``train_model_s``: its own epoch
clock), the epochs and steps, the recipe, the model, per-epoch wall times and the 1-minute load average at the end
of every epoch (``loadavg_1m_epochs``; ``loadavg_1m_max``), and whether the issue's targets were met (test
accuracy >= 80% within 30 minutes). Without the images the run is skipped, saying so (exit 0, no record).

  python -m benchmarks.train_fast --out benchmarks/results/train_fast.jsonl
  python -m benchmarks.train_fast --epochs 1 --out one_epoch.jsonl            # a shortened run (recorded as such)
  XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m benchmarks.train_fast --mesh data=2 ...

``--mesh data=2`` trains data-parallel over two host devices (``XLA_FLAGS=--xla_force_host_platform_device_count=2``,
set before Python starts): the same maths (BatchNorm's batch statistics are taken over the whole global batch), and
on 2 cores about 1.6x the images/s of one device, whose XLA:CPU program keeps only ~1.3 cores busy.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks import common
from rosu_jax.cli.run import load_config_file
from rosu_jax.models import count_params
from rosu_jax.runs.train import train_model
from rosu_jax.tasks.vision.data import normalize_images
from rosu_jax.tasks.vision.evaluation import predict_logits
from rosu_jax.tasks.vision.task import VisionTask

DEFAULT_CONFIG = "experiments/cifar10_fast_resnet.py"
TARGETS = {"test_accuracy": 0.80, "train_wall_s": 30 * 60.0}
QUICK_TASK = {"dataset": "digits", "data_dir": None, "model_kwargs": (("widths", (4, 8, 8, 8)),)}


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__, "benchmarks/results/train_fast.jsonl")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="experiment config file (a vision task)")
    parser.add_argument("--data-dir", help="CIFAR-10 folder with train/ and test/ class sub-folders (default: "
                        "$CIFAR_DIR, or the shared data beside the checkout)")
    parser.add_argument("--epochs", type=int, help="override the recipe's epochs (a shortened run, recorded)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], help="override the model's compute dtype")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mesh", help="train data-parallel on this mesh, e.g. data=2 (needs as many devices: "
                        "XLA_FLAGS=--xla_force_host_platform_device_count=2 on a CPU)")
    args = parser.parse_args(argv)
    config = load_config_file(str(common.REPO / args.config) if not Path(args.config).is_absolute() else args.config)
    task_config = config.task
    if args.quick:  # the offline digits, a toy width, one epoch: exercises the path, numbers meaningless
        task_config = dataclasses.replace(task_config, **QUICK_TASK, train=dataclasses.replace(
            task_config.train, epochs=1, batch_size=64))
    else:
        data_dir = common.cifar10_dir(args.data_dir)
        if data_dir is None:
            common.progress("[train_fast] skipped: no folder of CIFAR-10 images in class sub-folders (train/, test/); "
                            "pass --data-dir or set CIFAR_DIR")
            return 0
        task_config = dataclasses.replace(task_config, data_dir=str(data_dir))
    if args.epochs:
        task_config = dataclasses.replace(task_config, train=dataclasses.replace(task_config.train, epochs=args.epochs))
    if args.dtype:
        kwargs = tuple(kv for kv in task_config.model_kwargs if kv[0] != "dtype") + (("dtype", args.dtype),)
        task_config = dataclasses.replace(task_config, model_kwargs=kwargs)
    recipe = task_config.train
    env = common.environment()
    task = VisionTask(task_config)
    t0 = time.perf_counter()
    data = task.load()
    load_s = time.perf_counter() - t0
    training = task.training_data(data, args.seed)
    params, model_state = task.init_model(args.seed)
    mesh = None
    if args.mesh:
        from rosu_jax.parallel.mesh import make_mesh

        mesh = make_mesh(args.mesh)
    common.progress(f"[train_fast] {task_config.model_name} {dict(task_config.model_kwargs)}, {count_params(params):,} "
                    f"params; {training.num_examples} training images, {recipe.epochs} epochs x "
                    f"{training.steps_per_epoch} steps of {recipe.batch_size}; load {common.loadavg_1m():.2f}")
    epoch_ends, epoch_loads = [], []

    def on_epoch_end(epoch: int) -> None:
        epoch_ends.append(time.perf_counter())
        epoch_loads.append(common.loadavg_1m())
        common.progress(f"  epoch {epoch}/{recipe.epochs}: {epoch_ends[-1] - started:7.1f} s, "
                        f"load {epoch_loads[-1]:.2f}")

    started = time.perf_counter()
    trained = train_model(task.training_loss(), params, model_state, training, recipe, seed=args.seed,
                          progress=False, on_epoch_end=on_epoch_end, mesh=mesh)
    train_wall_s = time.perf_counter() - started
    t1 = time.perf_counter()
    dataset = data.dataset
    logits = predict_logits(task.apply_fn, trained.params, trained.model_state, dataset.x_test,
                            normalize=lambda x: normalize_images(x, data.mean, data.std))
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == dataset.y_test))
    eval_s = time.perf_counter() - t1
    loads = [x for x in epoch_loads if x is not None]
    epoch_s = np.diff([started, *epoch_ends]).tolist()
    fields = {"config": args.config, "quick": args.quick, "dataset": task_config.dataset,
              "model": task_config.model_name, "model_kwargs": dict(task_config.model_kwargs),
              "n_params": count_params(params), "mesh": args.mesh, "recipe": dataclasses.asdict(recipe),
              "seed": args.seed,
              "train_examples": training.num_examples, "test_examples": int(len(dataset.y_test)),
              "steps": training.steps_per_epoch * recipe.epochs, "epochs": recipe.epochs,
              "test_accuracy": accuracy, "train_wall_s": train_wall_s, "train_model_s": trained.seconds,
              "epoch_s": epoch_s, "images_per_s": training.steps_per_epoch * recipe.batch_size * recipe.epochs
              / train_wall_s, "data_load_s": load_s, "eval_s": eval_s, "loadavg_1m_epochs": epoch_loads,
              "loadavg_1m_max": max(loads) if loads else None, "targets": TARGETS}
    fields["met"] = {"test_accuracy": accuracy >= TARGETS["test_accuracy"],
                     "train_wall_s": train_wall_s <= TARGETS["train_wall_s"]}
    fields["loaded"] = any(common.too_loaded(x, env["cpu_count"]) for x in loads)
    case = Path(args.config).stem + (f"/epochs={recipe.epochs}" if args.epochs else "") + (
        f"/mesh={args.mesh}" if args.mesh else "") + ("/quick" if args.quick else "")
    common.write_jsonl(args.out, common.record("train_fast", case, env, **fields))
    common.progress(f"[train_fast] test accuracy {accuracy:.2%} after {recipe.epochs} epochs, training "
                    f"{train_wall_s:.0f} s wall (max load {fields['loadavg_1m_max'] or 0:.2f}); targets "
                    f"{'met' if all(fields['met'].values()) else 'MISSED'}: {fields['met']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
