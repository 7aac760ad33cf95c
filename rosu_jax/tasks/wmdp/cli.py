"""The WMDP task's command-line flags (``rosu-unlearn wmdp``)."""

from __future__ import annotations

import argparse

from rosu_jax.tasks.base import configure
from rosu_jax.tasks.wmdp.task import WmdpConfig

SUMMARY = "WMDP: remove hazardous knowledge (RMU, ROSU/UAM over RMU, GradDiff, NPO), scored by lm-evaluation-harness"
EXAMPLES = """examples:
  rosu-unlearn wmdp                                   # offline: synthetic hazard/control topics, a tiny decoder
  rosu-unlearn wmdp --out results/wmdp --seeds 0,1,2
  rosu-unlearn wmdp --questions wmdp_cyber=cyber.jsonl --forget-corpus cyber=cyber-forget.jsonl \\
      --retain-corpus wikitext.txt --mmlu mmlu.jsonl --model-dir CHECKPOINT     # local files
  rosu-unlearn wmdp --hub --forget-corpus bio=bio_remove_dataset.jsonl --model-dir zephyr-7b-beta --mesh fsdp=8
  rosu-unlearn wmdp --hub --model-dir zephyr-7b-beta --trainable lora --dtype bfloat16      # one GPU
"""


def _pairs(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("WMDP task")
    g.add_argument(
        "--questions",
        type=_pairs,
        action="append",
        default=[],
        metavar="TASK=PATH",
        help="a question file (cais/wmdp schema) for a forget task, e.g. wmdp_bio=bio.jsonl (repeat)",
    )
    g.add_argument(
        "--forget-corpus",
        type=_pairs,
        action="append",
        default=[],
        metavar="TOPIC=PATH",
        help="a forget corpus (JSON Lines with 'text', or plain text), e.g. cyber=cyber.jsonl (repeat)",
    )
    g.add_argument("--retain-corpus", help="the retain corpus (e.g. wikitext-2 as text, one passage per line)")
    g.add_argument("--mmlu", help="MMLU questions (cais/mmlu schema with 'subject') as the utility check")
    g.add_argument(
        "--hub",
        action="store_true",
        help="read cais/wmdp, cais/wmdp-corpora, wikitext and cais/mmlu through the datasets library",
    )
    g.add_argument("--topics", help="forget topics with --hub (default bio,cyber)")
    g.add_argument("--model-dir", help="a Hugging Face checkpoint, e.g. Zephyr-7B-beta (default: a tiny decoder)")
    g.add_argument("--dtype", choices=["float32", "bfloat16"], help="parameter and compute dtype")
    g.add_argument("--layer", type=int, help="RMU's steered layer ℓ (default 7, or a tiny model's middle layer)")
    g.add_argument(
        "--trainable",
        help="parameters unlearning may change: RMU's layers ℓ−2..ℓ mlp.down_proj (default), "
        "lora, all, or a selection such as layers.5-7.mlp",
    )
    g.add_argument("--unlearn-batches", type=int, help="steps per unlearning run (RMU: 150)")
    g.add_argument("--unlearn-batch-size", type=int, help="forget and retain batch size (RMU: 4)")
    g.add_argument("--max-length", type=int, help="tokens per passage (RMU: 512 bio, 768 cyber)")
    g.add_argument("--eval-limit", type=int, help="score only the first N questions of each task")
    g.add_argument("--epochs", type=int, help="training epochs of the tiny original model")
    g.add_argument("--train-lr", type=float, help="its learning rate")


def build_config(args: argparse.Namespace, base: WmdpConfig | None, task_sets: dict) -> WmdpConfig:
    changes = {}
    if args.questions:
        changes["questions"] = tuple(args.questions)
    if args.forget_corpus:
        changes["forget_corpora"] = tuple(args.forget_corpus)
    if args.hub:
        changes["hub"] = True
    if args.topics:
        changes["topics"] = tuple(t.strip() for t in args.topics.split(",") if t.strip())
    flags = (
        "retain_corpus",
        "mmlu",
        "model_dir",
        "dtype",
        "layer",
        "trainable",
        "unlearn_batches",
        "unlearn_batch_size",
        "max_length",
        "eval_limit",
    )
    return configure(base or WmdpConfig(), args, flags, task_sets, changes=changes)
