"""The TOFU task's command-line flags (``rosu-unlearn tofu``), and the log-scoring mode (``--score-log``)."""

from __future__ import annotations

import argparse
import json
import sys

from rosu_jax.tasks import language
from rosu_jax.tasks.base import configure
from rosu_jax.tasks.tofu.data import FORGET_SPLITS
from rosu_jax.tasks.tofu.task import TofuConfig

SUMMARY = "TOFU: unlearn fictitious authors from a causal LM (Forget Quality, Model Utility and their components)"
EXAMPLES = """examples:
  rosu-unlearn tofu                                  # offline: synthetic mini-TOFU, a tiny decoder, every objective
  rosu-unlearn tofu --out results/tofu --seeds 0,1,2
  rosu-unlearn tofu --data-dir DIR                   # the hub's JSON Lines files in a local folder
  rosu-unlearn tofu --hub --model-dir CHECKPOINT --retain-log RETAIN_LOG.json --prompt-format chat --mesh fsdp=8
  rosu-unlearn tofu --score-log LOG.json --retain-log RETAIN_LOG.json   # score an evaluation log (no model)
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("TOFU task")
    g.add_argument("--data-dir", help="a folder with TOFU's JSON Lines files (full.json, forget10.json, ...)")
    g.add_argument("--hub", action="store_true", help="read locuslab/TOFU through the datasets library")
    g.add_argument("--forget-split", choices=FORGET_SPLITS, help="forget01, forget05 or forget10 (default)")
    g.add_argument(
        "--model-dir",
        help="a Hugging Face checkpoint fine-tuned on TOFU's full split (default: a tiny decoder trained here)",
    )
    g.add_argument(
        "--retain-log",
        help="the retain model's evaluation log (legacy TOFU format): the reference for "
        "Forget Quality with --model-dir or --score-log",
    )
    g.add_argument("--score-log", help="score this evaluation log against --retain-log and print JSON (no model)")
    g.add_argument(
        "--evaluate-only",
        action="store_true",
        help="evaluate the --model-dir checkpoint and write its "
        "evaluation log to --out (e.g. the retain model's, for --retain-log); no unlearning",
    )
    g.add_argument("--prompt-format", choices=language.PROMPT_FORMATS, help="phi (default), llama2 or chat")
    g.add_argument(
        "--trainable",
        help="parameters unlearning may change: all (default), a regular expression, or "
        "a layer range such as layers.5-7.mlp",
    )
    g.add_argument("--dtype", choices=["float32", "bfloat16"], help="parameter and compute dtype")
    g.add_argument("--epochs", type=int, help="training epochs of the tiny original and retain models")
    g.add_argument("--train-lr", type=float, help="their learning rate")
    g.add_argument("--batch-size", type=int, help="their batch size")
    g.add_argument("--unlearn-epochs", type=int, help="passes over the forget set per unlearning run (default 5)")
    g.add_argument("--unlearn-batch-size", type=int, help="forget (and retain) batch size of unlearning (default 8)")
    g.add_argument("--eval-items", type=int, help="score only the first N forget / retain items (legacy: 300)")
    g.add_argument("--max-new-tokens", type=int, help="greedy answer length for ROUGE (default 48; TOFU: 200)")
    g.add_argument("--synthetic-authors", type=int, help="authors of the synthetic mini-TOFU (default 40)")


def build_config(args: argparse.Namespace, base: TofuConfig | None, task_sets: dict) -> TofuConfig:
    flags = (
        "data_dir",
        "forget_split",
        "model_dir",
        "retain_log",
        "prompt_format",
        "trainable",
        "dtype",
        "unlearn_epochs",
        "unlearn_batch_size",
        "eval_items",
        "max_new_tokens",
        "synthetic_authors",
    )
    return configure(base or TofuConfig(), args, flags, task_sets, changes={"hub": True} if args.hub else {})


def special_mode(args: argparse.Namespace) -> int | None:
    """``--score-log LOG --retain-log RETAIN``: print TOFU's numbers of a log as one JSON object (no model needed);
    ``--evaluate-only``: write the evaluation log of ``--model-dir`` (no unlearning)."""
    if args.evaluate_only:
        return _evaluate_only(args)
    if not args.score_log:
        return None
    if not args.retain_log:
        print(
            "rosu-unlearn tofu: --score-log needs --retain-log (the retain model's log: Forget Quality's reference).",
            file=sys.stderr,
        )
        return 2
    from rosu_jax.tasks.tofu.eval_log import score_logs

    try:
        scores = score_logs(args.score_log, args.retain_log)
    except (OSError, ValueError) as err:
        print(f"rosu-unlearn tofu: {err}", file=sys.stderr)
        return 2
    print(json.dumps(scores, indent=1))
    return 0


def _evaluate_only(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rosu_jax.tasks.tofu.eval_log import to_legacy_log
    from rosu_jax.tasks.tofu.task import TofuTask

    if not (args.model_dir and args.out):
        print(
            "rosu-unlearn tofu: --evaluate-only needs --model-dir (the checkpoint) and --out (where its log goes).",
            file=sys.stderr,
        )
        return 2
    try:
        config = build_config(args, None, {})
        task = TofuTask(config)
        data = task.load()
        setting = task.setting(data, config.forget_split, 0)
        params, model_state = task.pretrained(0)
        evaluation = task.evaluate(params, model_state, setting)
    except (OSError, ValueError) as err:
        print(f"rosu-unlearn tofu: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    to_legacy_log(evaluation.details["splits"], out / "eval_log.json")
    print(json.dumps({k: v for k, v in evaluation.metrics.items() if v is not None}, indent=1))
    print(f"wrote {out / 'eval_log.json'}", file=sys.stderr)  # stdout is the JSON alone
    return 0
