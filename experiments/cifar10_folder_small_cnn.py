"""CIFAR-10 from an image folder (e.g. ../shared/data/cifar10-jpeg), small CNN sized for CPU; both scenarios.

Command:  rosu-unlearn --config experiments/cifar10_folder_small_cnn.py --data-dir ../shared/data/cifar10-jpeg \
          --out results/cifar10-folder
Expected Retrain: class-wise UA 100, MIA ~100; random 10%: UA close to 100 − test accuracy of the small CNN.
Measured (benchmarks/results/cifar10_folder_small_cnn/results.md; 1,500 images per class, 5 epochs): at these
learning rates GA, NegGrad+ and SCRUB collapsed to chance in both scenarios; grid-search them (--lr-grid).
"""

from rosu_jax.runs.config import RunConfig, TrainRecipe
from rosu_jax.steps.registry import MethodConfig

CONFIG = RunConfig(
    dataset="cifar10",
    model="small_cnn",
    model_kwargs=(("widths", (32, 64, 128)), ("hidden", 128)),
    train=TrainRecipe(epochs=15, batch_size=128, lr=0.05, schedule="cosine", augment=True),
    unlearn_epochs=2,
    unlearn_batch_size=128,
    method_configs=(
        ("FT", MethodConfig(lr=0.02)),
        ("GA", MethodConfig(lr=5e-4)),
        ("NegGrad+", MethodConfig(lr=0.01, retain_weight=0.95)),
        ("RL", MethodConfig(lr=0.01)),
        ("l1-sparse", MethodConfig(lr=0.02)),
        ("SalUn", MethodConfig(lr=0.01)),
        ("SCRUB", MethodConfig(lr=0.005)),
        ("UAM", MethodConfig(lr=0.01)),
        ("UAM+λ", MethodConfig(lr=0.01)),
        ("ROSU", MethodConfig(lr=0.01)),
    ),
)
