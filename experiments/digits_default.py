"""The embedded default: digits (scikit-learn, offline), small CNN, class-wise + random, all methods.

Command:  rosu-unlearn --config experiments/digits_default.py --out results/digits   (same as plain rosu-unlearn)
Expected Retrain: class-wise UA 100, MIA ~100, RA ~100; random 10%: UA ~2-4 (digits generalise well), RA ~100.
"""

from rosu_jax.runs import RunConfig
from rosu_jax.tasks.vision import VisionConfig

CONFIG = RunConfig(task=VisionConfig())
