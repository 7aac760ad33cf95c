"""CIFAR-10 from a folder of images in class sub-folders, small CNN sized for CPU; both scenarios.

Command:  rosu-unlearn --config experiments/cifar10_folder_small_cnn.py --data-dir DIR --out results/cifar10-folder
          (DIR holds train/<class>/*.jpg and test/<class>/*.jpg)
Expected Retrain: class-wise UA 100, MIA ~100; random 10%: UA close to 100 − test accuracy of the small CNN.
At these learning rates GA, NegGrad+ and SCRUB collapsed to a constant prediction in an earlier 1,500-images-per-
class run (their rows are marked "collapsed"); grid-search them (--lr-grid).
"""

from rosu_jax.runs import RunConfig
from rosu_jax.tasks.base import TrainingRecipe
from rosu_jax.tasks.vision import VisionConfig

CONFIG = RunConfig(
    task=VisionConfig(
        dataset="cifar10",
        model="small_cnn",
        model_kwargs=(("widths", (32, 64, 128)), ("hidden", 128)),
        train=TrainingRecipe(epochs=15, batch_size=128, lr=0.05, schedule="cosine", augment=True),
        unlearn_epochs=2,
        unlearn_batch_size=128,
    ),
    overrides={
        "FT": {"lr": 0.02},
        "GA": {"lr": 5e-4},
        "NegGrad+": {"lr": 0.01, "retain_weight": 0.95},
        "RL": {"lr": 0.01},
        "l1-sparse": {"lr": 0.02},
        "SalUn": {"lr": 0.01},
        "SCRUB": {"lr": 0.005},
        "UAM": {"lr": 0.01},
        "UAM+λ": {"lr": 0.01},
        "ROSU": {"lr": 0.01},
    },
)
