"""tiny_imagenet — classwise forgetting, ResNet-18 (the paper's setting).

Command:  rosu-unlearn --config experiments/tiny_imagenet_classwise.py --data-dir /path/to/tiny-imagenet-200 --out results/tiny_imagenet_classwise
Expected Retrain: UA 100 and MIA ~100 by construction (the class is absent from Retrain's data); RA ~100; TA not given by our protocol.
ROSU's published retain accuracy (leaderboard quote; the paper's tables are not public): see PROTOCOL.md.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _paper import paper_config  # noqa: E402

CONFIG = paper_config("tiny_imagenet", "classwise", data_dir="/path/to/tiny-imagenet-200")
