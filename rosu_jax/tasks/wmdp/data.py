"""WMDP's data for unlearning: the questions that measure hazardous knowledge, the corpora that RMU forgets and keeps.

A WMDP run (Li et al. 2024, arXiv 2403.03218) needs, per forget topic (``bio``, ``cyber``, ``chem``), the
4-choice questions of ``cais/wmdp`` (config ``wmdp-<topic>``, split ``test``) and a forget corpus of passages about
the topic (``cais/wmdp-corpora``: ``cyber-forget-corpus``; the bio forget corpus is gated and requested separately;
WMDP publishes none for chemistry), plus a retain corpus (wikitext-2, split ``test``) and MMLU (``cais/mmlu``, config
``all``, split ``test``) as the utility check. ``WmdpData`` holds all of it; it comes from local files
(``load_wmdp``), from the hub through the ``datasets`` library (``load_wmdp_from_hub``) or, offline, from the
synthetic fictional topics of ``synthetic.make_synthetic_wmdp``.

Question rows are ``{"question": str, "choices": [4 str], "answer": 0-3}`` (MMLU rows also carry ``"subject"``), as
``multiple_choice.evaluate_multiple_choice`` scores them; every path checks them before it returns. A corpus file is
JSON Lines with a ``text`` field (the schema of ``cais/wmdp-corpora``) or plain text with one passage per non-empty
line (``read_corpus``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rosu_jax.tasks.wmdp.multiple_choice import check_row, hub_reachable, mmlu_subjects, read_rows

TOPICS: dict[str, str] = {"bio": "biology", "cyber": "cybersecurity", "chem": "chemistry"}
"""WMDP topic → the subject phrase of its prompt ("...about biology."); its questions are the task ``wmdp_<topic>``."""

QUESTIONS_REPO, MMLU_REPO, CORPORA_REPO = "cais/wmdp", "cais/mmlu", "cais/wmdp-corpora"
HUB_FORGET_CORPORA: dict[str, str] = {"cyber": "cyber-forget-corpus"}
"""Topic → its forget corpus's config in ``cais/wmdp-corpora`` (split ``train``); the others need a local file."""
RETAIN_REPO, RETAIN_CONFIG = "Salesforce/wikitext", "wikitext-2-raw-v1"  # the hub's id of "wikitext" today

CHOICE_LABELS = ("A", "B", "C", "D")
CONTINUATIONS = tuple(f" {label}" for label in CHOICE_LABELS)
"""What lm-eval scores after the context of a question: the target delimiter " " and a letter."""

_CORPUS_FORMAT = (
    'expected JSON Lines with a "text" field per line (the cais/wmdp-corpora schema) or plain UTF-8 text with one '
    "passage per non-empty line"
)
_NO_CORPUS: dict[str, str] = {
    "bio": (
        "the bio forget corpus is gated: request access through the form linked from the dataset card of "
        "cais/wmdp-corpora (https://huggingface.co/datasets/cais/wmdp-corpora), then pass the file you receive "
        "(JSON Lines with a 'text' field): forget_corpora={'bio': 'bio-forget-corpus.jsonl'}"
    ),
    "chem": "WMDP publishes no chemistry forget corpus: pass your own, forget_corpora={'chem': 'chem_forget.jsonl'}",
}


def description(subject: str) -> str:
    """lm-eval's description of a WMDP or MMLU prompt for ``subject`` (e.g. "biology"), the context's first part."""
    return f"The following are multiple choice questions (with answers) about {subject}.\n\n"


def context(row: Mapping[str, Any], subject: str) -> str:
    """The context lm-eval scores the continuations " A".." D" after (zero-shot, WMDP's and MMLU's template)::

    The following are multiple choice questions (with answers) about <subject>.\\n\\n<question.strip()>\\n
    A. <c0>\\nB. <c1>\\nC. <c2>\\nD. <c3>\\nAnswer:
    """
    options = "".join(f"\n{label}. {choice}" for label, choice in zip(CHOICE_LABELS, row["choices"], strict=True))
    return f"{description(subject)}{row['question'].strip()}{options}\nAnswer:"


@dataclasses.dataclass(frozen=True)
class WmdpData:
    """Questions and corpora of one WMDP-style run; build it with ``load_wmdp``, ``load_wmdp_from_hub`` or
    ``make_synthetic_wmdp``, which check it.

    ``questions``: task name → rows, for the ``forget_tasks`` (the questions of the ``forget_topics``) and the
    ``utility_tasks`` (``mmlu``, or a control topic); ``descriptions``: task name → the subject phrase of its prompt
    (``context``), for every task but ``mmlu``, whose rows carry their ``subject``. ``forget_corpora``: forget topic →
    passages; ``retain_corpus``: passages whose representations RMU keeps; ``training_texts``: what a model is
    trained on before unlearning when it is trained here (empty for the real benchmark, which a pre-trained model
    knows). ``source`` says where the data came from and is not part of equality or of the ``fingerprint``.
    """

    forget_topics: tuple[str, ...]
    questions: dict[str, list[dict[str, Any]]]
    descriptions: dict[str, str]
    forget_tasks: tuple[str, ...]
    utility_tasks: tuple[str, ...]
    forget_corpora: dict[str, list[str]]
    retain_corpus: list[str]
    training_texts: list[str] = dataclasses.field(default_factory=list)
    source: str = dataclasses.field(default="", compare=False)

    def __post_init__(self) -> None:
        tasks = (*self.forget_tasks, *self.utility_tasks)
        if sorted(tasks) != sorted(self.questions) or len(set(tasks)) != len(tasks):
            raise ValueError(
                f"questions has tasks {sorted(self.questions)}, but the forget and utility tasks are {list(tasks)}: "
                "each question task is exactly one of them"
            )
        undescribed = [task for task in tasks if task != "mmlu" and task not in self.descriptions]
        if undescribed:
            raise ValueError(f"no description (subject phrase) for the task(s) {undescribed}")
        if sorted(self.forget_corpora) != sorted(self.forget_topics):
            raise ValueError(
                f"forget corpora for {sorted(self.forget_corpora)}, forget topics {list(self.forget_topics)}: "
                "every forget topic has one forget corpus"
            )
        for task, rows in self.questions.items():
            if not rows:
                raise ValueError(f"task {task!r} has no questions")
            for i, row in enumerate(rows):
                check_row(row, f"task {task!r}, question {i}")
        corpora = {f"forget corpus {topic!r}": passages for topic, passages in self.forget_corpora.items()}
        for name, passages in {**corpora, "retain corpus": self.retain_corpus}.items():
            if not passages or not all(isinstance(p, str) and p.strip() for p in passages):
                raise ValueError(f"the {name} must be a non-empty list of non-blank passages")

    def topic_descriptions(self) -> dict[str, str]:
        """lm-eval descriptions of the tasks that are neither WMDP nor MMLU (those keep lm-eval's own), as
        ``evaluate_multiple_choice(lm, data.questions, description=data.topic_descriptions() or None)`` takes them."""
        return {
            task: description(self.descriptions[task])
            for task in self.questions
            if task != "mmlu" and task not in (f"wmdp_{topic}" for topic in TOPICS)
        }

    @property
    def fingerprint(self) -> str:
        """16 hex digits of the SHA-256 of the canonical JSON of every field but ``source``, to key caches and logs."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def read_corpus(path: str | os.PathLike) -> list[str]:
    """The passages of a corpus file. JSON Lines (the first non-blank character is ``{``): the ``text`` field of
    each line's object, other fields ignored. Otherwise plain text: each line is one passage (a passage spanning
    lines needs JSON Lines, where its newlines are escaped). Passages are stripped and blank ones dropped, as
    ``load_wmdp_from_hub`` does, so a hub corpus saved with ``Dataset.to_json`` reads back the same.

    ``ValueError`` naming the file (and line) and the expected format for a binary or non-UTF-8 file, a JSON
    document that is not JSON Lines, a line that is not an object with a string ``text``, or no passage at all.
    """
    path = Path(path)
    raw = path.read_bytes()
    if b"\0" in raw:
        raise ValueError(f"{path}: a binary file (it holds NUL bytes); {_CORPUS_FORMAT}")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}:{line}: not UTF-8 ({err.reason} at byte {err.start}); {_CORPUS_FORMAT}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            json.loads(text)
        except json.JSONDecodeError:
            pass  # a plain text that starts with "["
        else:
            raise ValueError(f"{path}: a JSON array; {_CORPUS_FORMAT}")
    passages = []
    if stripped.startswith("{"):
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not valid JSON ({err.msg}); {_CORPUS_FORMAT}") from None
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                found = f"fields {sorted(item)}" if isinstance(item, dict) else type(item).__name__
                raise ValueError(f"{path}:{number}: no string 'text' field ({found}); {_CORPUS_FORMAT}")
            passages.append(item["text"])
    else:
        passages = text.splitlines()
    passages = [passage.strip() for passage in passages if passage.strip()]
    if not passages:
        raise ValueError(f"{path}: no passage; {_CORPUS_FORMAT}")
    return passages


def _check_topics(topics: Sequence[str], what: str) -> None:
    unknown = [topic for topic in topics if topic not in TOPICS]
    if unknown or not topics:
        raise ValueError(f"{what}: topics {list(unknown or topics)}; choose one or more of {list(TOPICS)}")
    if len(set(topics)) != len(topics):
        raise ValueError(f"{what}: a topic appears twice in {list(topics)}")


def _by_topic(paths: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``paths`` keyed by topic, a task name ``wmdp_<topic>`` read as its topic."""
    by_topic = {key.removeprefix("wmdp_"): path for key, path in paths.items()}
    if len(by_topic) != len(paths):
        raise ValueError(f"{what}: a topic is given twice (as 'bio' and 'wmdp_bio', say) in {list(paths)}")
    return by_topic


def _check_mmlu(rows: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    for i, row in enumerate(rows):
        if row.get("subject") not in mmlu_subjects():
            raise ValueError(
                f"{where}, question {i}: 'subject' {row.get('subject')!r} is not an MMLU subject of lm-eval "
                f"({', '.join(mmlu_subjects()[:3])}, ...); MMLU rows are cais/mmlu's (config 'all'), with their subject"
            )
    return rows


def _wmdp_data(
    questions: dict[str, list[dict[str, Any]]],
    forget_corpora: dict[str, list[str]],
    retain_corpus: list[str],
    mmlu: list[dict[str, Any]] | None,
    source: str,
) -> WmdpData:
    topics = tuple(questions)
    tasks = {f"wmdp_{topic}": rows for topic, rows in questions.items()}
    return WmdpData(
        forget_topics=topics,
        questions={**tasks, **({} if mmlu is None else {"mmlu": mmlu})},
        descriptions={f"wmdp_{topic}": TOPICS[topic] for topic in topics},
        forget_tasks=tuple(tasks),
        utility_tasks=() if mmlu is None else ("mmlu",),
        forget_corpora=forget_corpora,
        retain_corpus=retain_corpus,
        source=source,
    )


def load_wmdp(
    *,
    questions: Mapping[str, str | os.PathLike],
    forget_corpora: Mapping[str, str | os.PathLike],
    retain_corpus: str | os.PathLike,
    mmlu: str | os.PathLike | None = None,
) -> WmdpData:
    """WMDP from local files. ``questions``: topic (``bio``, ``cyber``, ``chem``, or its task name ``wmdp_bio``...)
    → its questions in the schema of ``cais/wmdp``, a JSON array or JSON Lines (e.g. ``Dataset.to_json``);
    ``forget_corpora``: the same topics → a corpus file (``read_corpus``); ``retain_corpus``: a corpus file (e.g.
    wikitext-2's test split, one line per passage); ``mmlu``: ``cais/mmlu`` rows (with ``subject``) for the utility
    check, or None for none.

    Errors name the file and line of the first malformed row (``FileNotFoundError`` for a missing file).
    """
    questions, forget_corpora = _by_topic(questions, "questions"), _by_topic(forget_corpora, "forget_corpora")
    _check_topics(list(questions), "load_wmdp questions")
    if sorted(forget_corpora) != sorted(questions):
        raise ValueError(
            f"questions are given for {sorted(questions)}, forget corpora for {sorted(forget_corpora)}: each forget "
            "topic needs both its questions and its forget corpus"
        )
    rows = {}
    for topic, path in questions.items():
        rows[topic] = read_rows(path)
        if not rows[topic]:
            raise ValueError(f"{path}: no questions; expected cais/wmdp rows (question, choices, answer)")
    mmlu_rows = None
    if mmlu is not None:
        mmlu_rows = _check_mmlu(read_rows(mmlu), str(mmlu))
        if not mmlu_rows:
            raise ValueError(f"{mmlu}: no questions; expected cais/mmlu rows (question, subject, choices, answer)")
    corpora = {topic: read_corpus(forget_corpora[topic]) for topic in questions}
    names = ", ".join(Path(p).name for p in (*questions.values(), *forget_corpora.values(), retain_corpus))
    return _wmdp_data(rows, corpora, read_corpus(retain_corpus), mmlu_rows, f"local files ({names})")


def load_wmdp_from_hub(
    topics: Sequence[str] = ("bio", "cyber"),
    *,
    forget_corpora: Mapping[str, str | os.PathLike] | None = None,
    with_mmlu: bool = True,
    cache_dir: str | os.PathLike | None = None,
) -> WmdpData:
    """WMDP from the Hugging Face hub through the ``datasets`` library (cached in ``cache_dir``): the questions of
    ``topics`` (``cais/wmdp``, configs ``wmdp-<topic>``, split ``test``), MMLU when ``with_mmlu`` (``cais/mmlu``,
    ``all``, ``test``), the retain corpus wikitext-2 (``wikitext-2-raw-v1``, ``test``, non-blank lines, stripped).

    Forget corpora: ``forget_corpora`` maps a topic to a local file (``read_corpus``); a topic it leaves out is read
    from ``cais/wmdp-corpora``, which has cyber only (``cyber-forget-corpus``): bio's is gated, chem's does not
    exist, so they need a local file. Fails within seconds, saying what to do, when a file is missing, ``datasets``
    is not installed (``ImportError``) or the hub is unreachable or disabled (``ConnectionError``:
    ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set, or no connection); then use ``load_wmdp`` on local files.
    """
    topics = tuple(topics)
    _check_topics(topics, "load_wmdp_from_hub")
    local = dict(forget_corpora or {})
    extra = sorted(set(local) - set(topics))
    if extra:
        raise ValueError(f"forget_corpora for {extra}, which are not among the topics {list(topics)}")
    needed = [topic for topic in topics if topic not in local and topic not in HUB_FORGET_CORPORA]
    if needed:
        raise ValueError(f"no forget corpus on the hub for {needed}: " + "; ".join(_NO_CORPUS[t] for t in needed))
    corpora = {topic: read_corpus(path) for topic, path in local.items()}
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "loading WMDP from the hub needs the datasets library: pip install 'rosu-jax[hub]'; or load local files "
            "with load_wmdp(questions=..., forget_corpora=..., retain_corpus=..., mmlu=...)"
        ) from None
    if not hub_reachable():
        raise ConnectionError(
            "the Hugging Face hub is unreachable or disabled (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), so WMDP cannot be "
            f"downloaded. On a machine with internet access save {QUESTIONS_REPO} (wmdp-<topic>), {MMLU_REPO} (all), "
            f"{CORPORA_REPO} and wikitext-2 ({RETAIN_CONFIG}) with Dataset.to_json, copy the files here and pass them "
            "to load_wmdp(questions=..., forget_corpora=..., retain_corpus=..., mmlu=...); make_synthetic_wmdp() is "
            "an offline stand-in"
        )

    def rows(repo: str, config: str, split: str) -> list[dict[str, Any]]:
        """The checked question rows of a hub config."""
        loaded = datasets.load_dataset(repo, config, split=split, cache_dir=cache_dir)
        return [check_row(dict(row), f"{repo} config {config}, row {i}") for i, row in enumerate(loaded)]

    def passages(repo: str, config: str, split: str) -> list[str]:
        """The non-blank ``text`` fields of a hub config, stripped."""
        loaded = datasets.load_dataset(repo, config, split=split, cache_dir=cache_dir)
        return [row["text"].strip() for row in loaded if row["text"].strip()]

    questions = {topic: rows(QUESTIONS_REPO, f"wmdp-{topic}", "test") for topic in topics}
    mmlu = _check_mmlu(rows(MMLU_REPO, "all", "test"), f"{MMLU_REPO} config all") if with_mmlu else None
    for topic in topics:
        if topic not in corpora:
            corpora[topic] = passages(CORPORA_REPO, HUB_FORGET_CORPORA[topic], "train")
    retain = passages(RETAIN_REPO, RETAIN_CONFIG, "test")
    corpora = {topic: corpora[topic] for topic in topics}
    return _wmdp_data(questions, corpora, retain, mmlu, f"hub {QUESTIONS_REPO} ({', '.join(topics)})")
