"""TOFU's data in the schema of the hub dataset ``locuslab/TOFU``: one JSON Lines file per config, split ``train``.

A run on forget split ``forgetXX`` needs seven configs (``config_names``): ``full`` (everything the model is
fine-tuned on), ``forgetXX`` and ``retainYY`` (the forgotten authors and the rest), ``forgetXX_perturbed`` (the forget
items with a paraphrased answer and 5 wrong answers, for the truth ratio), ``retain_perturbed`` (a fixed subset of the
retain items, same fields), ``real_authors_perturbed`` and ``world_facts_perturbed`` (3 wrong answers each). They come
from a local folder (``load_tofu``), from the hub through the ``datasets`` library (``load_tofu_from_hub``) or, offline,
from the synthetic mini-TOFU (``synthetic.make_synthetic_tofu``). Every path checks the schema, the pairing of the
forget items with their perturbed versions (the legacy code pairs them by index) and that ``full`` is forget ∪ retain
before it returns, and names the file and line of the first problem.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import threading
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HUB_REPO = "locuslab/TOFU"

RETAIN_SPLITS: dict[str, str] = {"forget01": "retain99", "forget05": "retain95", "forget10": "retain90"}
"""Each forget split (the last 1/5/10% of the authors) → its retain split (the other authors)."""

FORGET_SPLITS = tuple(RETAIN_SPLITS)

_QA = ("question", "answer")
_PERTURBED = (*_QA, "paraphrased_answer", "perturbed_answer")
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "full": _QA,
    "forget": _QA,
    "retain": _QA,
    "forget_perturbed": _PERTURBED,
    "retain_perturbed": _PERTURBED,
    "real_authors": (*_QA, "perturbed_answer"),
    "world_facts": (*_QA, "perturbed_answer"),
}
"""``TofuData`` field → the fields every item of its config has: strings, ``perturbed_answer`` a list of strings."""

OPTIONAL_FIELDS = ("paraphrased_question",)
"""Fields an item may have (a string when present); other extra fields are kept as they are."""

NUM_PERTURBED_ANSWERS: dict[str, int] = {
    "forget_perturbed": 5,
    "retain_perturbed": 5,
    "real_authors": 3,
    "world_facts": 3,
}
"""``TofuData`` field → how many wrong answers each of its items has."""

_GET_FILES = (
    "get them with write_tofu_folder(load_tofu_from_hub(...), folder) on a machine with internet access, or "
    f"download the files of the Hugging Face dataset {HUB_REPO} "
    f"(hf download {HUB_REPO} --repo-type dataset --local-dir FOLDER); make_synthetic_tofu() is an offline stand-in"
)
_CONNECT_TIMEOUT_S = 3.0


def config_names(forget_split: str = "forget10") -> dict[str, str]:
    """``TofuData`` field → the hub config it is read from, for a forget split (``forget01``, ``forget05``,
    ``forget10``)."""
    if forget_split not in RETAIN_SPLITS:
        raise ValueError(f"unknown TOFU forget split {forget_split!r}; choose one of {list(FORGET_SPLITS)}")
    return {
        "full": "full",
        "forget": forget_split,
        "retain": RETAIN_SPLITS[forget_split],
        "forget_perturbed": f"{forget_split}_perturbed",
        "retain_perturbed": "retain_perturbed",
        "real_authors": "real_authors_perturbed",
        "world_facts": "world_facts_perturbed",
    }


@dataclasses.dataclass(frozen=True)
class TofuData:
    """The TOFU configs of one forget split, each a list of items (dicts) in the hub schema.

    ``forget_perturbed[i]`` is ``forget[i]`` with its paraphrased and perturbed answers; ``source`` says where the data
    came from and is not part of equality or of the ``fingerprint``. Build it with ``load_tofu``,
    ``load_tofu_from_hub``, ``make_synthetic_tofu`` or ``from_configs``, which check it.
    """

    forget_split: str
    full: list[dict[str, Any]]
    forget: list[dict[str, Any]]
    retain: list[dict[str, Any]]
    forget_perturbed: list[dict[str, Any]]
    retain_perturbed: list[dict[str, Any]]
    real_authors: list[dict[str, Any]]
    world_facts: list[dict[str, Any]]
    source: str = dataclasses.field(default="", compare=False)

    def configs(self) -> dict[str, list[dict[str, Any]]]:
        """Hub config name → its items (``config_names``)."""
        return {name: getattr(self, field) for field, name in config_names(self.forget_split).items()}

    @property
    def fingerprint(self) -> str:
        """A content hash: 16 hex digits of the SHA-256 of the canonical JSON of all configs, to key caches and logs."""
        canonical = json.dumps(self.configs(), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]

    @classmethod
    def from_configs(
        cls,
        configs: Mapping[str, list[dict[str, Any]]],
        forget_split: str = "forget10",
        *,
        source: str = "in-memory configs",
    ) -> TofuData:
        """Checked ``TofuData`` from hub config name → items (other configs are ignored)."""
        names = config_names(forget_split)
        missing = [name for name in names.values() if name not in configs]
        if missing:
            raise ValueError(f"missing TOFU config(s) {missing}; {forget_split} needs {list(names.values())}")
        return _checked(
            {field: _Config(name, list(configs[name]), f"config {name}") for field, name in names.items()},
            forget_split,
            source,
        )


@dataclasses.dataclass(frozen=True)
class _Config:
    """One config's items and where they came from: a file (with each item's line) or a named config."""

    name: str
    items: list[Any]
    where: str
    lines: list[int] | None = None

    def at(self, i: int) -> str:
        return f"{self.where}:{self.lines[i]}" if self.lines is not None else f"{self.where}, item {i}"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_items(config: _Config, field: str) -> None:
    required = REQUIRED_FIELDS[field]
    if not config.items:
        raise ValueError(f"{config.where}: no items; a TOFU config holds one JSON object per line")
    expected = NUM_PERTURBED_ANSWERS.get(field)
    for i, item in enumerate(config.items):
        if not isinstance(item, dict):
            raise ValueError(f"{config.at(i)}: an item must be a JSON object with {list(required)}, not {_short(item)}")
        for key in required:
            if key not in item:
                raise ValueError(f"{config.at(i)}: missing field {key!r}; each {config.name} item has {list(required)}")
        for key in (*required, *(k for k in OPTIONAL_FIELDS if item.get(k) is not None)):
            value = item[key]
            if key == "perturbed_answer":
                if not (isinstance(value, list) and all(isinstance(a, str) for a in value)):
                    raise ValueError(f"{config.at(i)}: field {key!r} must be a list of strings, found {_short(value)}")
            elif not isinstance(value, str):
                raise ValueError(f"{config.at(i)}: field {key!r} must be a string, found {_short(value)}")
        if expected is not None and len(item["perturbed_answer"]) != expected:
            raise ValueError(
                f"{config.at(i)}: {len(item['perturbed_answer'])} perturbed answers, expected {expected} "
                f"(every {config.name} item has {expected} in TOFU's schema)"
            )


def _check_pairing(forget: _Config, perturbed: _Config) -> None:
    rule = "the perturbed forget items must be the forget items in the same order (TOFU pairs them by index)"
    if len(perturbed.items) != len(forget.items):
        raise ValueError(
            f"{perturbed.where} has {len(perturbed.items)} items, {forget.where} {len(forget.items)}: {rule}; "
            "use both files from the same TOFU download"
        )
    for i, (item, pert) in enumerate(zip(forget.items, perturbed.items, strict=True)):
        if item["question"] != pert["question"]:
            raise ValueError(
                f"{perturbed.at(i)}: question {_short(pert['question'])} is not that of {forget.at(i)} "
                f"({_short(item['question'])}): {rule}"
            )


def _check_union(full: _Config, forget: _Config, retain: _Config) -> None:
    in_full = Counter(item["question"] for item in full.items)
    in_parts = Counter(item["question"] for item in (*forget.items, *retain.items))
    if in_full == in_parts:
        return
    problems = []
    for config, extra in ((forget, in_parts - in_full), (retain, in_parts - in_full), (full, in_full - in_parts)):
        off = [i for i, item in enumerate(config.items) if item["question"] in extra]
        if off:
            whose = "in neither forget nor retain" if config is full else f"not in {full.name}"
            problems.append(f"{len(off)} item(s) of {config.name} {whose}, the first at {config.at(off[0])}")
    raise ValueError(
        f"{full.name} ({len(full.items)} items) must be the union of {forget.name} ({len(forget.items)}) and "
        f"{retain.name} ({len(retain.items)}): {'; '.join(problems)}; use the files of one TOFU download"
    )


def _checked(configs: dict[str, _Config], forget_split: str, source: str) -> TofuData:
    for field, config in configs.items():
        _check_items(config, field)
    _check_pairing(configs["forget"], configs["forget_perturbed"])
    _check_union(configs["full"], configs["forget"], configs["retain"])
    return TofuData(forget_split, **{field: config.items for field, config in configs.items()}, source=source)


def _read_jsonl(path: Path, name: str) -> _Config:
    items, lines = [], []
    with path.open(encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            try:
                items.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(
                    f"{path}:{number}: not JSON ({err.msg}); a TOFU file holds one JSON object per line (JSON Lines)"
                ) from None
            lines.append(number)
    return _Config(name, items, str(path), lines)


def load_tofu(folder: str | os.PathLike, forget_split: str = "forget10") -> TofuData:
    """TOFU from a local folder holding ``<config>.json`` or ``<config>.jsonl`` (JSON Lines) for each of
    ``config_names(forget_split)``, such as a download of the hub dataset or a ``write_tofu_folder`` output; other
    files are ignored. Checks everything first: ``FileNotFoundError`` for missing files, ``ValueError`` naming the
    file and line of the first malformed item."""
    names = config_names(forget_split)
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no folder {folder}; it should hold <config>.json or .jsonl for {list(names.values())}; {_GET_FILES}"
        )
    paths, missing = {}, []
    for field, name in names.items():
        found = [folder / f"{name}{ext}" for ext in (".json", ".jsonl") if (folder / f"{name}{ext}").is_file()]
        if len(found) > 1:
            raise ValueError(f"{folder} holds both {name}.json and {name}.jsonl; keep one")
        if found:
            paths[field] = found[0]
        else:
            missing.append(name)
    if missing:
        raise FileNotFoundError(
            f"{folder}: missing {', '.join(f'{name}.json' for name in missing)} (or .jsonl; TOFU's {forget_split} "
            f"needs {list(names.values())}, one JSON Lines file each): {_GET_FILES}"
        )
    configs = {field: _read_jsonl(path, names[field]) for field, path in paths.items()}
    return _checked(configs, forget_split, source=f"local folder {folder.resolve().name}")


def _hub_address() -> tuple[str, int]:
    """Host and port a download connects to first: the HTTPS proxy when one is set, else the hub endpoint."""
    url = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy") or os.environ.get("HF_ENDPOINT")
    parsed = urlparse(url if url and "://" in url else f"https://{url or 'huggingface.co'}")
    return parsed.hostname or "huggingface.co", parsed.port or (80 if parsed.scheme == "http" else 443)


def _offline_reason() -> str | None:
    """Why the hub cannot be reached (offline mode set, or no TCP connection within seconds), or None."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
            return f"{var}={os.environ[var]}"
    host, port = _hub_address()
    outcome: list[OSError | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err)

    # A thread bounds the name lookup too, which the socket timeout does not cover.
    thread = threading.Thread(target=connect, daemon=True)
    thread.start()
    thread.join(_CONNECT_TIMEOUT_S + 0.5)
    if not outcome:
        return f"no answer from {host}:{port} within {_CONNECT_TIMEOUT_S:g} s"
    return None if outcome[0] is None else f"cannot connect to {host}:{port}: {outcome[0]}"


def load_tofu_from_hub(forget_split: str = "forget10", *, cache_dir: str | os.PathLike | None = None) -> TofuData:
    """TOFU from the hub dataset ``locuslab/TOFU`` through the ``datasets`` library (cached in ``cache_dir``).

    Fails within seconds, saying what to do, when ``datasets`` is not installed (``ImportError``) or the machine is
    offline (``ConnectionError``: ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set, or no connection to the hub);
    then use ``load_tofu`` on a folder of the files, or ``make_synthetic_tofu``.
    """
    names = config_names(forget_split)
    try:
        import datasets
    except ImportError:
        raise ImportError(
            f"loading TOFU from the hub needs the datasets library: pip install 'rosu-jax[hub]'; or load a folder of "
            f"the {HUB_REPO} files with load_tofu(folder)"
        ) from None
    reason = _offline_reason()
    if reason is not None:
        raise ConnectionError(
            f"this machine is offline ({reason}), so {HUB_REPO} cannot be downloaded. On a machine with internet "
            "access run write_tofu_folder(load_tofu_from_hub(...), FOLDER) or download the files of the Hugging Face "
            f"dataset {HUB_REPO}, copy the folder here and pass it to load_tofu(FOLDER); make_synthetic_tofu() is an "
            "offline stand-in"
        )
    configs = {}
    for field, name in names.items():
        rows = datasets.load_dataset(HUB_REPO, name, split="train", cache_dir=cache_dir)
        configs[field] = _Config(name, [dict(row) for row in rows], f"{HUB_REPO} config {name}")
    return _checked(configs, forget_split, source=f"hub {HUB_REPO}")


def write_tofu_folder(data: TofuData | Mapping[str, list[dict[str, Any]]], folder: str | os.PathLike) -> Path:
    """Writes each config as ``<config>.jsonl`` (JSON Lines, readable by ``load_tofu``) into ``folder``, created if
    needed; ``data`` is a ``TofuData`` or hub config name → items. Writing the data of each forget split into one
    folder gives a folder for all three. Returns the folder."""
    configs = data.configs() if isinstance(data, TofuData) else data
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in configs.items():
        text = "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items)
        (folder / f"{name}.jsonl").write_text(text, encoding="utf-8")
    return folder
