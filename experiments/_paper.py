"""Shared pieces of the paper's vision settings (ResNet-18, reference recipe). Not a config itself."""

from rosu_jax.runs.config import RunConfig, TrainRecipe
from rosu_jax.steps.registry import MethodConfig

# Reference recipe of the protocol: SGD momentum 0.9, weight decay 5e-4, batch 256, lr 0.1, ~180 epochs.
# (Use --epochs to shorten it; say so next to any figure you report.)
RESNET18_RECIPE = TrainRecipe(epochs=182, batch_size=256, lr=0.1, schedule="cosine", augment=True)

# Starting points from the literature for 10 unlearning epochs on ResNet-18 (the protocol grid-searches lr per
# method to minimise Avg.Gap: pass --lr-grid to do that and report the grid).
RESNET18_METHOD_CONFIGS = (
    ("FT", MethodConfig(lr=0.02)),
    ("GA", MethodConfig(lr=1e-4)),
    ("NegGrad+", MethodConfig(lr=0.01, retain_weight=0.95)),
    ("RL", MethodConfig(lr=0.01)),
    ("l1-sparse", MethodConfig(lr=0.01, l1_weight=5e-4)),
    ("SalUn", MethodConfig(lr=0.013)),
    ("SCRUB", MethodConfig(lr=0.005)),
    ("UAM", MethodConfig(lr=0.01, rho=0.5)),
    ("UAM+λ", MethodConfig(lr=0.01, rho=0.5, amplification=0.05)),
    ("ROSU", MethodConfig(lr=0.01, rho=0.5, amplification=0.05)),
)


def paper_config(dataset: str, scenario: str, data_dir: str | None = None) -> RunConfig:
    return RunConfig(
        dataset=dataset,
        data_dir=data_dir,
        model="resnet18",
        scenarios=(scenario,),
        train=RESNET18_RECIPE,
        unlearn_epochs=10,
        unlearn_batch_size=256,
        method_configs=RESNET18_METHOD_CONFIGS,
    )
