"""WMDP, MMLU and any 4-choice topic scored by lm-evaluation-harness's own tasks, offline from local JSON files.

lm-eval reads WMDP (``cais/wmdp``) and MMLU (``cais/mmlu``) from the Hugging Face hub. Here each task is a YAML
that *includes* lm-eval's own task file (prompt, choices, metric, per-task description) and replaces only the data
source with a local JSON Lines file (``dataset_path: json``); the templates ship in ``lm_eval_tasks/`` and
``render_tasks`` fills in what only the run knows (lm-eval's install folder, the data files). The context of a
WMDP-bio question is therefore lm-eval's, exactly::

    The following are multiple choice questions (with answers) about biology.\\n\\n<question.strip()>\\n
    A. <c0>\\nB. <c1>\\nC. <c2>\\nD. <c3>\\nAnswer:

with continuations " A".." D"; the prediction is the argmax summed log-likelihood (metric ``acc``).

Task names: ``wmdp_bio``, ``wmdp_cyber``, ``wmdp_chem``; ``mmlu_<subject>`` (lm-eval's 57 subjects) or ``mmlu``
(rows of every subject with their ``subject`` field, as ``cais/mmlu`` "all", split per subject); any other name is a
topic in the same format, described "...about <name with spaces>." unless a description is given. Rows are
``{"question": str, "choices": [4 str], "answer": 0-3}``. A task given ``None`` is lm-eval's hub task unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import json
import os
import re
import socket
import tempfile
import threading
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

WMDP_TASKS = ("wmdp_bio", "wmdp_cyber", "wmdp_chem")
HUB = ("huggingface.co", 443)
HUB_TIMEOUT_S = 3.0
LM_EVAL_MISSING = (
    "WMDP and MMLU are scored by lm-evaluation-harness, an optional extra: pip install 'rosu-jax[lm-eval]' "
    "(or pip install lm-eval)."
)


def require_lm_eval() -> None:
    """Raise ``ValueError`` saying how to install lm-evaluation-harness when it is missing (before any work)."""
    if importlib.util.find_spec("lm_eval") is None:
        raise ValueError(LM_EVAL_MISSING)


@functools.cache
def lm_eval_tasks() -> Path:
    """The folder of lm-eval's own task YAMLs (imported here, not at import time: lm-eval is an optional extra)."""
    require_lm_eval()
    import lm_eval

    return Path(lm_eval.__file__).parent / "tasks"


@functools.cache
def mmlu_subjects() -> tuple[str, ...]:
    """lm-eval's MMLU subjects (``abstract_algebra``, ...), from its task files."""
    return tuple(sorted(p.stem[len("mmlu_") :] for p in (lm_eval_tasks() / "mmlu" / "default").glob("mmlu_*.yaml")))


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

TaskData = str | os.PathLike | Sequence[Mapping[str, Any]] | None


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The validated rows of a JSON file: an array of objects, or JSON Lines (one object per line, as the hub's
    ``to_json`` writes). Errors name the file and line."""
    text = Path(path).read_text(encoding="utf-8-sig")
    hint = "expected a JSON array of objects or JSON Lines (one object per line)"
    if text.lstrip().startswith("["):
        try:
            json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{err.lineno}: not valid JSON ({err.msg}); {hint}.") from None
        return [check_row(row, f"{path}:{line}") for line, row in _array_items(text)]
    rows = []
    for line, raw in enumerate(text.splitlines(), 1):
        if raw.strip():
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line}: not valid JSON ({err.msg}); {hint}.") from None
            rows.append(check_row(row, f"{path}:{line}"))
    return rows


def _array_items(text: str):
    """(line, item) of each element of a valid top-level JSON array, for error messages that point at a line."""
    decoder, pos = json.JSONDecoder(), text.index("[") + 1
    while True:
        while text[pos] in " \t\r\n,":
            pos += 1
        if text[pos] == "]":
            return
        item, end = decoder.raw_decode(text, pos)
        yield text.count("\n", 0, pos) + 1, item
        pos = end


def check_row(row: Any, where: str) -> dict[str, Any]:
    """``row`` if it is a 4-choice question (``question``, ``choices`` of 4 strings, ``answer`` 0-3), else a
    ``ValueError`` naming ``where``: lm-eval's template reads choices[0..3] and would fail, or score a 5th choice
    never, without saying which row."""
    if not isinstance(row, Mapping):
        raise ValueError(f"{where}: expected an object with question, choices, answer; got {type(row).__name__}.")
    if not isinstance(row.get("question"), str):
        raise ValueError(f"{where}: 'question' must be a string, got {row.get('question')!r}.")
    choices = row.get("choices")
    if not isinstance(choices, list) or len(choices) != 4 or not all(isinstance(c, str) for c in choices):
        raise ValueError(f"{where}: 'choices' must be a list of exactly 4 strings, got {choices!r}.")
    answer = row.get("answer")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer <= 3:
        raise ValueError(f"{where}: 'answer' must be an integer 0-3 (the index of the correct choice), got {answer!r}.")
    return dict(row)


def _rows(name: str, data: str | os.PathLike | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(data, str | os.PathLike):
        rows = read_rows(data)
    else:
        rows = [check_row(row, f"tasks[{name!r}][{i}]") for i, row in enumerate(data)]
    if not rows:
        raise ValueError(f"tasks[{name!r}]: no questions.")
    return rows


def _template(kind: str) -> dict[str, Any]:
    return yaml.safe_load(resources.files(__package__).joinpath("lm_eval_tasks", f"{kind}.yaml").read_text())


def _task_yaml(name: str, rows: list[dict[str, Any]] | None, folder: Path, description: str | None) -> dict:
    """The YAML of one task: lm-eval's file included (absolute path), the local data file when ``rows`` is given."""
    if name in WMDP_TASKS:
        config = _template("wmdp")
        config["include"] = config["include"].format(task=name)
    elif name.startswith("mmlu_"):
        config = _template("mmlu")
        config["include"] = config["include"].format(subject=name[len("mmlu_") :])
    else:
        config = _template("topic")
        topic = name.replace("_", " ")  # as lm-eval's mmlu/_generate_configs.py turns subjects into descriptions
        default = f"The following are multiple choice questions (with answers) about {topic}.\n\n"
        config["description"] = default if description is None else description
    config["task"], config["include"] = name, str(lm_eval_tasks() / config["include"])
    if rows is None:  # lm-eval's hub task, unchanged
        return {"task": name, "include": config["include"]}
    data_file = folder / f"{name}.jsonl"
    data_file.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    # datasets' cache goes with the folder, so a run leaves nothing in the user's cache.
    config["dataset_kwargs"] = {"data_files": {"test": str(data_file)}, "cache_dir": str(folder / "datasets_cache")}
    return config


def _expand(tasks: Mapping[str, TaskData]) -> dict[str, list[dict[str, Any]] | None]:
    """Task name -> validated rows (None: the hub), with ``mmlu`` split into its subjects."""
    expanded: dict[str, list[dict[str, Any]] | None] = {}
    for name, data in tasks.items():
        if not _NAME.fullmatch(name):
            raise ValueError(f"task name {name!r}: use letters, digits, '_', '.', '-' (it names a file and a task).")
        known = name in (*WMDP_TASKS, "mmlu") or (name.startswith("mmlu_") and name[len("mmlu_") :] in mmlu_subjects())
        if name.startswith(("wmdp", "mmlu")) and not known:
            raise ValueError(
                f"unknown task {name!r}: the WMDP tasks are {', '.join(WMDP_TASKS)}; MMLU is 'mmlu' or "
                f"'mmlu_<subject>' with a subject of lm-eval's ({', '.join(mmlu_subjects()[:3])}, ...)."
            )
        if data is None and not known:
            raise ValueError(f"topic task {name!r} needs its questions: a JSON file or a list of rows, not None.")
        if name != "mmlu":
            parts = {name: None if data is None else _rows(name, data)}
        elif data is None:
            parts = {f"mmlu_{subject}": None for subject in mmlu_subjects()}
        else:
            parts = {}
            for i, row in enumerate(_rows(name, data)):
                subject = row.get("subject")
                if subject not in mmlu_subjects():
                    raise ValueError(
                        f"tasks['mmlu'][{i}]: 'subject' {subject!r} is not one of lm-eval's MMLU subjects."
                    )
                parts.setdefault(f"mmlu_{subject}", []).append(row)
        twice = sorted(set(parts) & set(expanded))
        if twice:
            raise ValueError(f"tasks {twice} are given twice (directly and through 'mmlu').")
        expanded.update(parts)
    return expanded


def render_tasks(
    tasks: Mapping[str, TaskData], folder: str | os.PathLike, *, description: str | Mapping[str, str] | None = None
) -> list[str]:
    """Write one lm-eval task YAML (and its JSON Lines data) per task into ``folder``; returns the task names.

    ``tasks`` maps a task name (see the module docstring) to a local JSON file, a list of rows, or None for
    lm-eval's hub task. ``description`` (one string, or one per topic name) replaces the default description of
    the topic tasks; WMDP and MMLU keep lm-eval's. As lm-eval does, a description is a Jinja template over the row.
    Load them with ``TaskManager(include_path=folder, include_defaults=False)`` (or ``lm_eval --include_path``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    expanded = _expand(tasks)
    topics = [n for n in expanded if n not in WMDP_TASKS and not n.startswith("mmlu_")]
    if description is not None and not topics:
        raise ValueError("description applies to topic tasks only (WMDP and MMLU keep lm-eval's); there is none.")
    descriptions = description if isinstance(description, Mapping) else dict.fromkeys(topics, description)
    unknown = set(descriptions) - set(topics)
    if unknown:
        raise ValueError(f"descriptions for {sorted(unknown)}, which are not topic tasks ({topics}).")
    for name, rows in expanded.items():
        config = _task_yaml(name, rows, folder, descriptions.get(name))
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return list(expanded)


def hub_reachable(timeout: float = HUB_TIMEOUT_S) -> bool:
    """False when ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` is set or huggingface.co:443 does not answer within
    ``timeout`` seconds (name resolution included: the probe runs in a thread that is not waited for longer)."""
    if any(
        os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    ):
        return False
    answered = []

    def probe():
        try:
            socket.create_connection(HUB, timeout=timeout).close()
            answered.append(True)
        except Exception:  # noqa: BLE001 - any failure to connect (or a patched stand-in) means unreachable
            pass

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(answered)


def evaluate_multiple_choice(
    lm,
    tasks: Mapping[str, TaskData],
    *,
    description: str | Mapping[str, str] | None = None,
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Accuracy (%) of ``lm`` (any ``lm_eval.api.model.LM``, e.g. ``JaxLM``) on each task, scored by lm-eval's
    ``simple_evaluate`` on tasks rendered by ``render_tasks``; plus ``"mmlu"``, the average of the MMLU subjects
    weighted by their number of questions (lm-eval's ``weight_by_size``), when there are MMLU subjects.

    Raw accuracies, as the WMDP paper reports them (compare with the base model measured the same way). ``limit``:
    the first ``limit`` questions of each task. Tasks given ``None`` come from the hub: without network access this
    fails at once, saying how to pass local files, instead of lm-eval's long retries. ``progress``: lm-eval's own
    progress bars and log lines (off by default: an unlearning run shows its own).
    """
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.tasks import TaskManager

    hub = [name for name, data in tasks.items() if data is None]
    if hub and not hub_reachable():
        raise RuntimeError(
            f"{', '.join(hub)}: the Hugging Face hub (cais/wmdp, cais/mmlu) is unreachable or disabled "
            "(HF_HUB_OFFLINE / HF_DATASETS_OFFLINE). Run offline with local files: pass each task a JSON or JSON "
            'Lines file (or a list) of rows {"question": ..., "choices": [4 strings], "answer": 0-3}, e.g. '
            'evaluate_multiple_choice(lm, {"wmdp_bio": "wmdp_bio.jsonl", "mmlu": "mmlu_test.jsonl"}).'
        )
    # lm-eval and datasets draw progress bars on stderr that no argument turns off
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
    with tempfile.TemporaryDirectory(prefix="rosu_lm_eval_tasks_") as folder, quiet:
        names = render_tasks(tasks, folder, description=description)
        out = simple_evaluate(
            verbosity="INFO" if progress else "ERROR",
            model=lm,
            tasks=names,
            task_manager=TaskManager(include_path=folder, include_defaults=False),
            limit=limit,
            bootstrap_iters=0,  # accuracies only: no bootstrap standard errors
            log_samples=False,
        )
    accuracy = {name: 100.0 * out["results"][name]["acc,none"] for name in names}
    subjects = [name for name in names if name.startswith("mmlu_")]
    if subjects:
        sizes = {name: out["n-samples"][name]["effective"] for name in subjects}
        accuracy["mmlu"] = sum(accuracy[n] * sizes[n] for n in subjects) / sum(sizes.values())
    return accuracy
