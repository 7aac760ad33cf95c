"""tiny_imagenet — random forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/tiny_imagenet_random.py --data-dir /path/to/tiny-imagenet-200 --out results/tiny_imagenet_random
Expected Retrain: not given by our protocol: RA ~100 (Retrain fits its own data); UA, TA and MIA from your own Retrain row.
ROSU's published retain accuracy (leaderboard quote; the paper's tables are not public): see PROTOCOL.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _paper import paper_config  # noqa: E402

CONFIG = paper_config("tiny_imagenet", "random", data_dir="/path/to/tiny-imagenet-200")
