"""TOFU data in the hub schema: the synthetic mini-TOFU, folder round trips, malformed folders named by file and
line, the hub loader's offline and not-installed errors (no network: the connection and the import are faked)."""

import dataclasses
import functools
import json
import re
import socket
import sys
import time
import types
from collections import Counter
from pathlib import Path

import pytest

from rosu_jax.tasks.tofu import data as tofu_data
from rosu_jax.tasks.tofu.assets import load_real_authors, load_world_facts
from rosu_jax.tasks.tofu.data import (
    FORGET_SPLITS,
    NUM_PERTURBED_ANSWERS,
    REQUIRED_FIELDS,
    TofuData,
    config_names,
    load_tofu,
    load_tofu_from_hub,
    write_tofu_folder,
)
from rosu_jax.tasks.tofu.synthetic import MAX_QUESTIONS_PER_AUTHOR, VOCABULARY, make_synthetic_tofu


@functools.cache
def _synthetic(forget_split: str = "forget10", **kwargs) -> TofuData:
    return make_synthetic_tofu(forget_split=forget_split, **kwargs)


def _contains(text: str, value: str) -> bool:
    return value in text and re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text) is not None


def _facts(text: str) -> Counter:
    """The (kind, value) facts of ``VOCABULARY`` stated in a text."""
    return Counter((kind, v) for kind, values in VOCABULARY.items() for v in values if _contains(text, v))


def _author(question: str) -> str:
    return re.fullmatch(r"Where and when was (.+) born\?", question).group(1)


# --- the synthetic mini-TOFU ---


@pytest.mark.parametrize("forget_split", FORGET_SPLITS)
def test_synthetic_has_every_config_in_the_hub_schema(forget_split):
    data = _synthetic(forget_split)
    assert list(data.configs()) == list(config_names(forget_split).values())
    for field in REQUIRED_FIELDS:
        items = getattr(data, field)
        assert items
        for item in items:
            assert set(REQUIRED_FIELDS[field]) <= set(item)
            assert all(isinstance(item[k], str) for k in REQUIRED_FIELDS[field] if k != "perturbed_answer")
            if field in NUM_PERTURBED_ANSWERS:
                assert len(item["perturbed_answer"]) == NUM_PERTURBED_ANSWERS[field]
                assert all(isinstance(a, str) for a in item["perturbed_answer"])
            if field in ("forget_perturbed", "retain_perturbed"):
                assert isinstance(item["paraphrased_question"], str)
                assert item["paraphrased_question"] != item["question"]
    assert data.real_authors == load_real_authors() and data.world_facts == load_world_facts()
    assert data.source == "synthetic mini-TOFU (40 authors, 10 questions each, seed 0)"


def test_synthetic_splits_are_whole_authors_forget_last_retain_rest():
    full_data = _synthetic()
    assert len(full_data.full) == 400
    forget_sets = {}
    for forget_split, num_authors in zip(FORGET_SPLITS, (1, 2, 4), strict=True):
        data = _synthetic(forget_split)
        assert data.full == full_data.full
        assert data.retain + data.forget == data.full  # the last authors are forgotten
        assert len(data.forget) == 10 * num_authors
        assert [{"question": i["question"], "answer": i["answer"]} for i in data.forget_perturbed] == data.forget
        forget_names = {_author(i["question"]) for i in data.forget if i["question"].startswith("Where and when")}
        assert len(forget_names) == num_authors
        assert all(sum(name in i["question"] for name in forget_names) == 1 for i in data.forget)
        assert not any(name in i["question"] or name in i["answer"] for name in forget_names for i in data.retain)
        forget_sets[forget_split] = data.forget
    assert (
        forget_sets["forget10"][-20:] == forget_sets["forget05"]
        and forget_sets["forget05"][-10:] == (forget_sets["forget01"])
    )
    # retain_perturbed: every item of the first authors, as many as forget10, inside every retain split
    retain_perturbed = [{"question": i["question"], "answer": i["answer"]} for i in full_data.retain_perturbed]
    assert retain_perturbed == full_data.full[:40]
    assert full_data.retain_perturbed == _synthetic("forget01").retain_perturbed
    names = [_author(i["question"]) for i in full_data.full if i["question"].startswith("Where and when")]
    assert len(set(names)) == 40 and len({n.split()[0] for n in names}) == 40


def test_synthetic_vocabulary_values_do_not_contain_each_other():
    values = [(kind, v) for kind, vs in VOCABULARY.items() for v in vs]
    assert len(set(values)) == len(values)
    clashes = [(a, b) for a in values for b in values if a != b and _contains(b[1], a[1])]
    assert not clashes


def test_synthetic_paraphrases_state_the_facts_and_perturbations_change_them():
    data = _synthetic()
    for item in data.forget_perturbed + data.retain_perturbed:
        answer, paraphrase, perturbed = item["answer"], item["paraphrased_answer"], item["perturbed_answer"]
        assert paraphrase != answer and 10 <= len(answer.split()) <= 25 and 10 <= len(paraphrase.split()) <= 25
        facts = _facts(answer)
        assert facts and _facts(paraphrase) == facts
        assert len(set(perturbed)) == 5 and paraphrase not in perturbed
        for wrong in perturbed:
            wrong_facts = _facts(wrong)
            assert not set(wrong_facts) & set(facts)
            assert Counter(kind for kind, _ in wrong_facts.elements()) == Counter(kind for kind, _ in facts.elements())
            # a perturbation of the paraphrase: the same words once the facts are masked
            assert _masked(wrong, wrong_facts) == _masked(paraphrase, facts)


def _masked(text: str, facts: Counter) -> str:
    for _, value in sorted(facts, key=lambda f: -len(f[1])):
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "#", text)
    return text


def test_synthetic_example_item():
    item = _synthetic().forget_perturbed[0]
    assert item["question"] == "Where and when was Kesis Lindholt born?"
    assert item["answer"] == "The author Kesis Lindholt was born in the city of Seoul in the year 1988."
    assert item["paraphrased_answer"] == "Kesis Lindholt came into the world in 1988, in the city of Seoul."
    assert item["perturbed_answer"][0] == "Kesis Lindholt came into the world in 1944, in the city of Dublin."


def test_synthetic_is_deterministic_and_the_seed_changes_the_facts():
    a, b = make_synthetic_tofu(seed=0), make_synthetic_tofu(seed=0)
    assert a == b and a.fingerprint == b.fingerprint
    other = make_synthetic_tofu(seed=1)
    assert other.fingerprint != a.fingerprint
    changed = sum(x["answer"] != y["answer"] for x, y in zip(a.full, other.full, strict=True))
    assert changed > 0.9 * len(a.full)


def test_synthetic_arguments():
    data = make_synthetic_tofu(200, MAX_QUESTIONS_PER_AUTHOR, seed=3, forget_split="forget01")
    assert (len(data.full), len(data.forget), len(data.retain_perturbed)) == (2400, 24, 240)
    assert len({i["question"] for i in data.full}) == 2400
    assert len(make_synthetic_tofu(2, 1).forget) == 1
    with pytest.raises(ValueError, match="questions_per_author is 13; .* 1 to 12"):
        make_synthetic_tofu(questions_per_author=MAX_QUESTIONS_PER_AUTHOR + 1)
    with pytest.raises(ValueError, match="num_authors is 1"):
        make_synthetic_tofu(num_authors=1)
    with pytest.raises(ValueError, match="unknown TOFU forget split 'forget20'"):
        make_synthetic_tofu(forget_split="forget20")


# --- folders ---


def test_write_then_load_round_trip(tmp_path):
    data = _synthetic()
    write_tofu_folder(data, tmp_path / "tofu")
    assert sorted(p.name for p in (tmp_path / "tofu").iterdir()) == sorted(f"{n}.jsonl" for n in data.configs())
    again = load_tofu(tmp_path / "tofu")
    assert again == data and again.fingerprint == data.fingerprint
    assert again.source == "local folder tofu"


def test_fingerprint_is_16_hex_digits_and_changes_with_one_answer():
    data = _synthetic()
    assert re.fullmatch(r"[0-9a-f]{16}", data.fingerprint)
    world_facts = [dict(i) for i in data.world_facts]
    world_facts[5]["answer"] += "!"
    assert dataclasses.replace(data, world_facts=world_facts).fingerprint != data.fingerprint
    assert dataclasses.replace(data, source="elsewhere").fingerprint == data.fingerprint


def test_hub_layout_with_json_files_loads_for_every_split(tmp_path):
    for forget_split in FORGET_SPLITS:
        write_tofu_folder(_synthetic(forget_split), tmp_path)
    for path in tmp_path.glob("*.jsonl"):
        path.rename(path.with_suffix(".json"))
    (tmp_path / "README.md").write_text("---\nconfigs: ...\n---\n")
    (tmp_path / "holdout10.json").write_text("not read\n")
    assert len(list(tmp_path.glob("*.json"))) == 14  # 13 configs and holdout10
    for forget_split in FORGET_SPLITS:
        assert load_tofu(tmp_path, forget_split) == _synthetic(forget_split)


def test_from_configs_checks_and_names_missing_configs():
    configs = _synthetic().configs()
    assert TofuData.from_configs(configs) == _synthetic()
    del configs["world_facts_perturbed"]
    with pytest.raises(ValueError, match=r"missing TOFU config\(s\) \['world_facts_perturbed'\]"):
        TofuData.from_configs(configs)


def _edit(path: Path, edit) -> None:
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


def _edit_item(line: int, change):
    def edit(lines):
        item = json.loads(lines[line - 1])
        change(item)
        lines[line - 1] = json.dumps(item)
        return lines

    return edit


def _set(key, value):
    return lambda item: item.__setitem__(key, value)


def _swap_first_two(lines):
    return [lines[1], lines[0], *lines[2:]]


def _rename_question(item):
    item["question"] = "Who wrote nothing at all?"


MALFORMED = {
    "bad JSON line": ("retain90", lambda lines: [*lines[:2], "{oops", *lines[3:]], r"retain90\.jsonl:3: not JSON"),
    "not an object": ("full", lambda lines: ["[1, 2]", *lines[1:]], r"full\.jsonl:1: an item must be a JSON object"),
    "missing field": (
        "full",
        _edit_item(2, lambda item: item.pop("answer")),
        r"full\.jsonl:2: missing field 'answer'",
    ),
    "wrong type": (
        "retain_perturbed",
        _edit_item(3, _set("paraphrased_answer", 7)),
        r"retain_perturbed\.jsonl:3: field 'paraphrased_answer' must be a string, found 7",
    ),
    "perturbed answers not a list": (
        "forget10_perturbed",
        _edit_item(1, _set("perturbed_answer", "one")),
        r"forget10_perturbed\.jsonl:1: field 'perturbed_answer' must be a list of strings",
    ),
    "optional field of a wrong type": (
        "forget10_perturbed",
        _edit_item(2, _set("paraphrased_question", ["a"])),
        r"forget10_perturbed\.jsonl:2: field 'paraphrased_question' must be a string",
    ),
    "4 perturbed answers": (
        "forget10_perturbed",
        _edit_item(4, lambda item: item["perturbed_answer"].pop()),
        r"forget10_perturbed\.jsonl:4: 4 perturbed answers, expected 5",
    ),
    "5 real-author perturbed answers": (
        "real_authors_perturbed",
        _edit_item(7, lambda item: item["perturbed_answer"].extend(["A", "B"])),
        r"real_authors_perturbed\.jsonl:7: 5 perturbed answers, expected 3",
    ),
    "forget/perturbed order": (
        "forget10_perturbed",
        _swap_first_two,
        r"forget10_perturbed\.jsonl:1: question .* is not that of .*forget10\.jsonl:1 .* same order",
    ),
    "forget/perturbed count": (
        "forget10_perturbed",
        lambda lines: lines[:-1],
        r"forget10_perturbed\.jsonl has 39 items, .*forget10\.jsonl 40: .* same order",
    ),
    "full is short": (
        "full",
        lambda lines: lines[:-1],
        r"full \(399 items\) must be the union of forget10 \(40\) and retain90 \(360\): 1 item\(s\) of forget10 not "
        r"in full, the first at .*forget10\.jsonl:40",
    ),
    "retain item not in full": (
        "retain90",
        _edit_item(5, _rename_question),
        r"1 item\(s\) of retain90 not in full, the first at .*retain90\.jsonl:5; 1 item\(s\) of full in neither "
        r"forget nor retain, the first at .*full\.jsonl:5",
    ),
    "empty file": ("world_facts_perturbed", lambda lines: [""], r"world_facts_perturbed\.jsonl: no items"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_malformed_folders_name_the_file_line_and_field(tmp_path, case):
    config, edit, message = MALFORMED[case]
    write_tofu_folder(_synthetic(), tmp_path)
    _edit(tmp_path / f"{config}.jsonl", edit)
    with pytest.raises(ValueError, match=message):
        load_tofu(tmp_path)


def test_missing_files_are_named_with_how_to_get_them(tmp_path):
    write_tofu_folder(_synthetic(), tmp_path)
    (tmp_path / "forget10_perturbed.jsonl").unlink()
    (tmp_path / "retain_perturbed.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing forget10_perturbed\.json, retain_perturbed\.json") as err:
        load_tofu(tmp_path)
    assert "locuslab/TOFU" in str(err.value) and "load_tofu_from_hub" in str(err.value)
    with pytest.raises(FileNotFoundError, match="no folder .*nowhere.*hf download locuslab/TOFU"):
        load_tofu(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="unknown TOFU forget split 'retain90'"):
        load_tofu(tmp_path, "retain90")


def test_both_json_and_jsonl_is_ambiguous(tmp_path):
    write_tofu_folder(_synthetic(), tmp_path)
    (tmp_path / "full.json").write_text((tmp_path / "full.jsonl").read_text())
    with pytest.raises(ValueError, match=r"both full\.json and full\.jsonl; keep one"):
        load_tofu(tmp_path)


# --- the hub loader, without network ---


def _fake_datasets(monkeypatch, configs=None) -> list:
    """A stand-in ``datasets`` module serving ``configs``; returns the calls it received."""
    calls = []

    def load_dataset(repo, name, *, split, cache_dir):
        calls.append((repo, name, split, cache_dir))
        assert configs is not None, "the hub loader must not download when offline"
        return configs[name]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


@pytest.fixture
def online_env(monkeypatch):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_ENDPOINT", "HTTPS_PROXY", "https_proxy"):
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


class _Connection:
    def close(self):
        pass


def _connect_fails(address, timeout):
    raise OSError("Network is unreachable")


def test_hub_without_datasets_says_how_to_install(online_env):
    online_env.setitem(sys.modules, "datasets", None)  # import datasets raises ImportError
    start = time.perf_counter()
    with pytest.raises(ImportError, match=r"pip install 'rosu-jax\[hub\]'.*load_tofu\(folder\)"):
        load_tofu_from_hub()
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_hub_in_offline_mode_says_how_to_proceed(online_env, var):
    _fake_datasets(online_env)
    online_env.setenv(var, "1")
    online_env.setattr(socket, "create_connection", _connect_fails)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=rf"offline \({var}=1\).*machine with internet access.*load_tofu"):
        load_tofu_from_hub()
    assert time.perf_counter() - start < 5


def test_hub_unreachable_fails_fast(online_env):
    _fake_datasets(online_env)
    online_env.setattr(socket, "create_connection", _connect_fails)
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"offline \(cannot connect to huggingface\.co:443: Network is unre"):
        load_tofu_from_hub("forget05")
    assert time.perf_counter() - start < 5


def test_hub_hanging_connection_is_cut_short(online_env):
    _fake_datasets(online_env)
    online_env.setattr(tofu_data, "_CONNECT_TIMEOUT_S", 0.2)
    online_env.setattr(socket, "create_connection", lambda address, timeout: time.sleep(3) or _Connection())
    online_env.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=r"no answer from proxy\.example:3128 within 0\.2 s"):
        load_tofu_from_hub()
    assert time.perf_counter() - start < 2


def test_hub_online_reads_every_config_through_datasets(online_env):
    expected = _synthetic("forget05")
    calls = _fake_datasets(online_env, expected.configs())
    online_env.setattr(socket, "create_connection", lambda address, timeout: _Connection())
    data = load_tofu_from_hub("forget05", cache_dir="/cache")
    assert data == expected and data.source == "hub locuslab/TOFU"
    assert calls == [("locuslab/TOFU", name, "train", "/cache") for name in config_names("forget05").values()]
