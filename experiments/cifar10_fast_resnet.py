"""CIFAR-10 with an original model strong enough to judge unlearning, trained on a 2-core CPU in under 30 minutes.

Command:  XLA_FLAGS=--xla_force_host_platform_device_count=2 \
          rosu-unlearn --config experiments/cifar10_fast_resnet.py --mesh data=2 --data-dir DIR --out results/cifar10-fast
          (DIR: a folder of CIFAR-10 images in class sub-folders, train/<class>/*.jpg and test/<class>/*.jpg; the
          protocol holds out 10% of the training images per class for validation, so 45,000 train the model.
          The two host devices and --mesh data=2 only make it faster on a CPU: without them it is the same run)
Training only, timed and recorded:
          XLA_FLAGS=--xla_force_host_platform_device_count=2 python -m benchmarks.train_fast --mesh data=2

Model and recipe: ``rosu_jax.tasks.vision.presets.fast_resnet_task`` ('resnet_fast', ResNet-9-like, widths
16-32-64-128, 0.41M parameters; batch 256, SGD momentum 0.9, weight decay 5e-4, 1 warm-up epoch to lr 0.2 then
cosine, crop+flip, float32). Expected original model (benchmarks/results/train_fast.jsonl): see the record's
``test_accuracy`` and ``train_wall_s``; the README's "Fast CIFAR-10 model" section quotes the committed figures.
The Retrain reference costs the same again per scenario. Unlearning learning rates: the protocol's ResNet-18
starting points; tune them (--lr-grid or --tune) before reading a ranking off one run.
"""

from rosu_jax.runs import RunConfig
from rosu_jax.tasks.vision.presets import RESNET18_OVERRIDES, fast_resnet_task

CONFIG = RunConfig(task=fast_resnet_task("cifar10"), overrides={k: dict(v) for k, v in RESNET18_OVERRIDES.items()})
