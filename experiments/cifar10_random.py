"""cifar10 — random forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/cifar10_random.py (tfds, or --data-dir /path/to/image-folder) --out results/cifar10_random
Expected Retrain: UA ~5.2, RA 100, TA ~94.3, MIA ~12.9 (literature, CIFAR-10 / ResNet-18, 10% random).
ROSU's published retain accuracy (leaderboard quote; the paper's tables are not public): see PROTOCOL.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _paper import paper_config  # noqa: E402

CONFIG = paper_config("cifar10", "random", data_dir=None)
