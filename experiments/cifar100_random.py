"""cifar100 — random forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/cifar100_random.py (tfds, or --data-dir /path/to/image-folder) --out results/cifar100_random
Expected Retrain: not given by our protocol: RA ~100 (Retrain fits its own data); UA, TA and MIA from your own Retrain row.
ROSU's published retain accuracy (leaderboard quote; the paper's tables are not public): see PROTOCOL.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _paper import paper_config  # noqa: E402

CONFIG = paper_config("cifar100", "random", data_dir=None)
