"""The embedded default: digits (scikit-learn, offline), small CNN, class-wise + random, all methods.

Command:  rosu-unlearn --config experiments/digits_default.py --out results/digits   (same as plain rosu-unlearn)
Expected Retrain: class-wise UA 100, MIA ~100, RA ~100; random 10%: UA ~2-4 (digits generalise well), RA ~100.
Learning-rate grid used to pick the per-method defaults:
  rosu-unlearn --lr-grid 0.001,0.003,0.01,0.03,0.1 --out results/digits-grid
"""

from rosu_jax.runs.config import default_config

CONFIG = default_config()
