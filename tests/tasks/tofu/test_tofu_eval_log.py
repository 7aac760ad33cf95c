"""TOFU's legacy evaluation logs: the published numbers from the reference logs, round trips, malformed logs,
and the shipped reference files."""

import copy
import dataclasses
import functools
import json
from pathlib import Path

import numpy as np
import pytest

from rosu_jax.tasks.tofu.assets import load_idontknow, load_real_authors, load_world_facts
from rosu_jax.tasks.tofu.eval_log import SECTIONS, SplitEval, from_legacy_log, score_logs, to_legacy_log
from rosu_jax.tasks.tofu.metrics import forget_quality, rouge_l_recall

REFERENCE = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "tofu-reference"
LOGS = ("llama2-7b_full", "llama2-7b_retain90", "llama2-7b_retain95", "llama2-7b_retain99", "phi_full", "phi_retain90")


@functools.cache
def _raw(name: str) -> dict:
    path = REFERENCE / "eval_logs" / f"{name}.json"
    if not path.is_file():
        pytest.skip("the TOFU reference logs are not present")
    return json.loads(path.read_text())


def _log(name: str) -> dict[str, SplitEval]:
    return from_legacy_log(_raw(name))


# --- the published numbers (legacy logs, ds_size 300) ---


def test_published_llama2_full_model_utility_and_forget_quality():
    scores = score_logs(_log("llama2-7b_full"), _log("llama2-7b_retain90"))
    assert round(scores["model_utility"], 4) == 0.6227
    assert scores["forget_quality"] == pytest.approx(1.83e-21, rel=0.01)
    assert scores["forget_num_items"] == scores["retain_num_items"] == 300
    assert (scores["real_authors_num_items"], scores["world_facts_num_items"]) == (100, 117)


def test_published_llama2_retain90_against_itself():
    scores = score_logs(REFERENCE / "eval_logs" / "llama2-7b_retain90.json", _raw("llama2-7b_retain90"))
    assert round(scores["model_utility"], 4) == 0.6137
    assert scores["forget_quality"] == 1.0


def test_stored_truth_ratio_is_r_in_float32_and_ks_matches_the_reference_1_over_r():
    full, retain = _log("llama2-7b_full"), _log("llama2-7b_retain90")
    for name, section in SECTIONS.items():
        stored = list(_raw("llama2-7b_full")[section]["truth_ratio"].values())
        np.testing.assert_allclose(full[name].truth_ratios, stored, rtol=5e-6)
    r_full, r_retain = full["forget"].truth_ratios, retain["forget"].truth_ratios
    assert forget_quality(r_full, r_retain) == forget_quality(1 / r_full, 1 / r_retain)


@pytest.mark.parametrize("name", LOGS)
def test_rouge_l_recall_recomputed_from_the_stored_triples_is_exact(name):
    for split in _log(name).values():
        np.testing.assert_array_equal(rouge_l_recall(split.answers, split.generations), split.rouge_l_recall)


def test_retain_log_of_another_forget_split_or_model_is_refused():
    with pytest.raises(ValueError, match=r"\(200,\) truth ratios, the unlearned model's \(300,\)"):
        score_logs(_log("llama2-7b_full"), _log("llama2-7b_retain95"))
    with pytest.raises(ValueError, match="300 of 300 forget items differ"):
        score_logs(_log("phi_full"), _log("llama2-7b_retain90"))


def test_reference_log_round_trip(tmp_path):
    original = _log("llama2-7b_full")
    path = tmp_path / "eval_log_aggregated.json"
    to_legacy_log(original, path)
    again = from_legacy_log(path)
    for name in SECTIONS:
        for field in dataclasses.fields(SplitEval):
            np.testing.assert_array_equal(getattr(again[name], field.name), getattr(original[name], field.name))
    retain = _log("llama2-7b_retain90")
    assert score_logs(again, retain) == score_logs(original, retain)
    written = json.loads(path.read_text())["eval_log_forget.json"]
    for key in ("avg_gt_loss", "average_perturb_loss", "generated_text", "num_token_perturb"):
        assert written[key] == _raw("llama2-7b_full")["eval_log_forget.json"][key]


# --- the project's own logs, and malformed ones (synthetic: no reference files needed) ---


def _split(n: int, k: int, seed: int, with_es: bool = False) -> SplitEval:
    rng = np.random.default_rng(seed)
    return SplitEval(
        prompts=[f"[INST] question {i} [/INST]" for i in range(n)],
        generations=[f"answer {i} maybe" for i in range(n)],
        answers=[f"answer {i}" for i in range(n)],
        gt_nll=rng.uniform(0, 3, n).astype(np.float32),
        paraphrase_nll=rng.uniform(0, 3, n),
        perturbed_nll=rng.uniform(0, 3, (n, k)),
        rouge_l_recall=rng.uniform(0, 1, n),
        extraction_strength=rng.uniform(0, 1, n) if with_es else None,
    )


def _splits(seed: int = 0) -> dict[str, SplitEval]:
    return {
        "retain": _split(6, 5, seed),
        "forget": _split(4, 5, seed + 1, with_es=True),
        "real_authors": _split(3, 3, seed + 2),
        "world_facts": _split(3, 3, seed + 3),
    }


def test_own_log_round_trip_keeps_extraction_strength(tmp_path):
    splits, retain = _splits(0), _splits(10)
    to_legacy_log(splits, tmp_path / "log.json")
    again = from_legacy_log(tmp_path / "log.json")
    np.testing.assert_array_equal(again["forget"].extraction_strength, splits["forget"].extraction_strength)
    assert again["retain"].gt_num_tokens is None
    scores = score_logs(tmp_path / "log.json", retain)
    assert scores == score_logs(splits, retain)
    assert scores["forget_extraction_strength"] == pytest.approx(splits["forget"].extraction_strength.mean())
    assert {f"{s}_{m}" for s in SECTIONS for m in ("probability", "rouge", "truth_ratio", "num_items")} < set(scores)


def _malformed(mutate) -> dict:
    log = copy.deepcopy(to_legacy_log(_splits()))
    mutate(log)
    return log


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda log: log.pop("eval_real_world_wo_options.json"), r"missing section\(s\) \['eval_real_world_wo_options"),
        (lambda log: log["eval_log.json"].pop("avg_gt_loss"), r"section eval_log.json: missing field\(s\) \['avg_gt"),
        (
            lambda log: log["eval_log_forget.json"]["rougeL_recall"].pop("3"),
            "field 'rougeL_recall' has 3 items, 'generated_text' 4",
        ),
        (
            lambda log: log["eval_log.json"]["average_perturb_loss"]["2"].pop(),
            r"same number of perturbed answers; item 0 has 5, item\(s\) \['2'\]",
        ),
        (lambda log: log["eval_log.json"]["generated_text"]["1"].pop(), r"generated_text of item\(s\) \['1'\]"),
    ],
)
def test_malformed_logs_say_what_is_wrong(tmp_path, mutate, message):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_malformed(mutate)))
    with pytest.raises(ValueError, match=message) as err:
        from_legacy_log(path)
    assert str(path) in str(err.value)


def test_not_json_and_inconsistent_split_eval(tmp_path):
    (tmp_path / "log.json").write_text("{")
    with pytest.raises(ValueError, match="not a JSON file"):
        from_legacy_log(tmp_path / "log.json")
    with pytest.raises(ValueError, match=r"perturbed_nll has shape \(2, 3\), expected \[n, k\], n=3"):
        SplitEval(["a"] * 3, ["b"] * 3, ["c"] * 3, np.zeros(3), np.zeros(3), np.zeros((2, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        score_logs({"forget": _split(2, 2, 0)}, _splits())


# --- shipped reference files ---


def test_shipped_reference_files():
    idk, authors, facts = load_idontknow(), load_real_authors(), load_world_facts()
    assert len(idk) == 100 and all(idk)
    assert (len(authors), len(facts)) == (100, 117)
    for item in authors + facts:
        assert set(item) == {"question", "answer", "perturbed_answer"} and len(item["perturbed_answer"]) == 3
    assert authors[0]["answer"] == "William Shakespeare"
