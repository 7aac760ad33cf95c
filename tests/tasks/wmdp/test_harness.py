"""JaxLM and the offline WMDP/MMLU tasks checked against computations by hand from a tiny decoder's logits."""

import dataclasses
import functools
import json
import socket
import time

import jax
import numpy as np
import pytest
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager

from rosu_jax.models.lm import build_decoder, tiny, train_bpe_tokenizer
from rosu_jax.tasks.wmdp import multiple_choice
from rosu_jax.tasks.wmdp.harness import JaxLM
from rosu_jax.tasks.wmdp.multiple_choice import evaluate_multiple_choice, read_rows, render_tasks

OPTIONS = {"xla_backend_optimization_level": 0}  # compiles about twice as fast on CPU
ROWS, WIDTH = 64, 128  # the one shape of the by-hand forward passes
_jit = functools.cache(jax.jit)
LETTERS = "ABCD"
WORDS = "cell virus gene protein enzyme toxin spore host vector strain plasmid culture assay dose".split()


def _question(i: int, subject: str | None = None) -> dict:
    words = WORDS[i % len(WORDS)], WORDS[(3 * i + 1) % len(WORDS)]
    row = {
        "question": f"  Which {words[0]} binds the {words[1]}? ",
        "choices": [f"the {WORDS[(i + k) % len(WORDS)]}" for k in range(4)],
        "answer": 0,
    }
    return row if subject is None else {**row, "subject": subject}


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(sock, address, *args):
        raise OSError(f"the tests never touch the network (connect to {address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def model():
    texts = [json.dumps(_question(i)) for i in range(20)] + ["Answer: A B C D", "The following are multiple choice"]
    tokenizer = train_bpe_tokenizer(texts, vocab_size=320)
    config = tiny(
        "llama",
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_heads=4,
        num_kv_heads=2,
        scan_layers=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    apply_fn, params = build_decoder(config, seed=0)
    return apply_fn, params, tokenizer


def _lm(model, **kwargs) -> JaxLM:
    return JaxLM(*model, **{"batch_size": 4, "buckets": (32, 64, 128), "compiler_options": OPTIONS, **kwargs})


def _log_probs(model, sequences: list[list[int]]) -> np.ndarray:
    """log_softmax of the logits of each sequence, by a plain ``apply_fn`` call (right-padded to one shape, so jax
    compiles it once for the whole module instead of once per length)."""
    apply_fn, params, tokenizer = model
    ids = np.full((ROWS, WIDTH), tokenizer.pad_token_id, np.int32)
    mask = np.zeros((ROWS, WIDTH), bool)
    for row, sequence in enumerate(sequences):
        ids[row, : len(sequence)], mask[row, : len(sequence)] = sequence, True
    return np.asarray(jax.nn.log_softmax(_jit(apply_fn)(params, ids, mask), axis=-1))


def _direct(model, pairs: list[tuple[list[int], list[int]]]) -> list[tuple[float, bool]]:
    """Per (context, continuation): the summed log-probability of the continuation and whether it is the argmax at
    every step."""
    out = []
    for start in range(0, len(pairs), ROWS):
        chunk = pairs[start : start + ROWS]
        logp = _log_probs(model, [context + continuation for context, continuation in chunk])
        for row, (context, continuation) in enumerate(chunk):
            steps = np.arange(len(context) - 1, len(context) + len(continuation) - 1)
            greedy = np.argmax(logp[row, steps], axis=-1) == np.asarray(continuation)
            out.append((float(np.sum(logp[row, steps, continuation])), bool(greedy.all())))
    return out


def _split(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    # HFLM's split: encode the whole string and cut at the context's own encoding.
    context_ids = tokenizer.encode(context)
    return context_ids, tokenizer.encode(context + continuation)[len(context_ids) :]


def _prompt(row: dict, about: str) -> str:
    options = "".join(f"\n{letter}. {choice}" for letter, choice in zip(LETTERS, row["choices"], strict=True))
    description = f"The following are multiple choice questions (with answers) {about}\n\n"
    return f"{description}{row['question'].strip()}{options}\nAnswer:"


def _predict(model, contexts: list[str]) -> list[int]:
    """The argmax over " A".." D" of the summed log-likelihood after each context."""
    pairs = [_split(model[2], context, f" {letter}") for context in contexts for letter in LETTERS]
    scores = np.asarray([logprob for logprob, _ in _direct(model, pairs)]).reshape(len(contexts), 4)
    top_two = np.sort(scores, axis=1)[:, -2:]
    assert np.all(top_two[:, 1] - top_two[:, 0] > 1e-4), "a near tie would make the by-hand comparison meaningless"
    return [int(i) for i in np.argmax(scores, axis=1)]


class RecordingLM(JaxLM):
    def loglikelihood(self, requests, disable_tqdm=False):
        self.seen = getattr(self, "seen", []) + [req.args for req in requests]
        return super().loglikelihood(requests, disable_tqdm)


def test_lm_eval_tasks_give_the_accuracy_computed_by_hand(model, tmp_path):
    """lm-eval's own WMDP, MMLU and topic tasks on local files score what the logits say: the exact prompt, the
    argmax of the summed log-likelihoods of " A".." D", the accuracy and MMLU's size-weighted average."""
    groups = {
        "wmdp_bio": ([_question(i) for i in range(4)], "about biology."),
        "anatomy": ([_question(i, "anatomy") for i in range(4, 8)], "about anatomy."),
        "astronomy": ([_question(i, "astronomy") for i in range(8, 10)], "about astronomy."),
        "hazard": ([_question(i) for i in range(10, 12)], "on the hazard topic."),
    }
    contexts = [_prompt(row, about) for rows, about in groups.values() for row in rows]
    predictions = iter(_predict(model, contexts))
    for rows, _ in groups.values():
        for i, row in enumerate(rows):
            predicted = next(predictions)
            row["answer"] = predicted if i != 1 else (predicted + 1) % 4  # every group gets its 2nd row wrong
    bio_file = tmp_path / "bio.jsonl"
    bio_file.write_text("".join(json.dumps(row) + "\n" for row in groups["wmdp_bio"][0]))
    lm = RecordingLM(*model, batch_size=4, buckets=(32, 64, 128), compiler_options=OPTIONS)
    result = evaluate_multiple_choice(
        lm,
        {"wmdp_bio": bio_file, "mmlu": groups["anatomy"][0] + groups["astronomy"][0], "hazard": groups["hazard"][0]},
        description={"hazard": "The following are multiple choice questions (with answers) on the hazard topic.\n\n"},
    )
    assert result == pytest.approx(
        {"wmdp_bio": 75.0, "mmlu_anatomy": 75.0, "mmlu_astronomy": 50.0, "hazard": 50.0, "mmlu": 100 * 4 / 6}
    )
    assert {context for context, _ in lm.seen} == set(contexts)
    assert sorted({continuation for _, continuation in lm.seen}) == [" A", " B", " C", " D"]
    assert evaluate_multiple_choice(lm, {"wmdp_bio": bio_file}, limit=2) == {"wmdp_bio": 50.0}


def test_loglikelihood_matches_a_direct_computation(model):
    lm = _lm(model)
    tokenizer = model[2]
    pairs = [
        ("Which virus binds the gene?\nAnswer:", " B"),
        ("Which toxin", " binds the spore host vector"),  # several continuation tokens
        ("Answer: ", "C"),  # the trailing space moves to the continuation, as in lm-eval
    ]
    got = lm.loglikelihood([Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)])
    expected = _direct(
        model,
        [
            _split(tokenizer, "Which virus binds the gene?\nAnswer:", " B"),
            _split(tokenizer, "Which toxin", " binds the spore host vector"),
            _split(tokenizer, "Answer:", " C"),
            ([tokenizer.bos_token_id], tokenizer.encode("cell", add_special_tokens=False)),
        ],
    )
    got += lm.loglikelihood([Instance("loglikelihood", {}, ("", "cell"), 0)])  # an empty context is the BOS token
    for (logprob, greedy), (want, want_greedy) in zip(got, expected, strict=True):
        assert logprob == pytest.approx(want, abs=1e-4) and greedy == want_greedy
    # The model's own two argmax tokens are greedy; with the second one replaced they are not.
    context = tokenizer.encode("Which gene")
    greedy = _greedy_tokens(model, context, 2)
    other = [greedy[0], (greedy[1] + 1) % tokenizer.vocab_size]
    results = lm._loglikelihood_tokens([(None, context, greedy), (None, context, other)])
    assert [is_greedy for _, is_greedy in results] == [True, False]


def test_loglikelihood_rolling_is_the_whole_text_when_it_fits_one_window(model):
    lm, tokenizer = _lm(model), model[2]
    text = "Which enzyme binds the plasmid culture?"
    (total,) = lm.loglikelihood_rolling([Instance("loglikelihood_rolling", {}, (text,), 0)])
    # As HFLM: the tokens (BOS included by the tokenizer) after the prefix token.
    ((want, _),) = _direct(model, [([tokenizer.bos_token_id], tokenizer.encode(text))])
    assert total == pytest.approx(want, abs=1e-4)


def _greedy_tokens(model, prompt: list[int], steps: int) -> list[int]:
    tokens = list(prompt)
    for _ in range(steps):
        tokens.append(int(np.argmax(_log_probs(model, [tokens])[0, len(tokens) - 1])))
    return tokens[len(prompt) :]


def test_generate_until_stops_at_until_strings_and_at_eos(model):
    apply_fn, params, tokenizer = model
    context = "Which strain binds the"
    greedy = _greedy_tokens(model, tokenizer.encode(context), 10)
    assert tokenizer.eos_token_id not in greedy
    full = tokenizer.decode(greedy)
    lm = _lm(model)
    requests = [
        (context, {"until": [], "max_gen_toks": 10}),
        (context, {"until": [full[4:6], full[2:8]], "max_gen_toks": 10}),  # cut at the first stop string
        (context, {"until": [], "max_gen_toks": 3}),
    ]
    got = lm.generate_until([Instance("generate_until", {}, args, i) for i, args in enumerate(requests)])
    assert got == [full, full[: full.index(full[2:8])], tokenizer.decode(greedy[:3])]
    # The same weights with a token of the greedy path (first emitted at step ``stop``) as end of sequence.
    stop = next(k for k in range(1, 10) if greedy[k] not in greedy[:k])
    eos_apply_fn, _ = build_decoder(dataclasses.replace(apply_fn.config, eos_token_id=greedy[stop]), seed=0)
    (text,) = JaxLM(
        eos_apply_fn, params, tokenizer, batch_size=2, buckets=(32,), compiler_options=OPTIONS
    ).generate_until([Instance("generate_until", {}, (context, {"until": [], "max_gen_toks": 10}), 0)])
    assert text == tokenizer.decode(greedy[: stop + 1])


def test_batches_of_one_bucket_reuse_one_program(model):
    lm = _lm(model)
    questions = [f"Which {word} binds the host?" for word in WORDS]
    calls = [questions[:4], questions[4:], [" ".join(WORDS * 2)]]  # 1 batch, 3 batches (the last partial), bucket 64
    traces = []
    for contexts in calls:
        lm.loglikelihood([Instance("loglikelihood", {}, (c, " A"), i) for i, c in enumerate(contexts)])
        traces.append(lm.num_traces)
    assert traces == [1, 1, 2]


def test_malformed_rows_and_files_are_named(model, tmp_path):
    good = json.dumps(_question(0))
    three = json.dumps({**_question(1), "choices": ["a", "b", "c"]})
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{good}\n\n{three}\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:3: 'choices' must be a list of exactly 4"):
        read_rows(path)
    path.write_text(json.dumps({**_question(1), "answer": 4}) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: 'answer' must be an integer 0-3"):
        read_rows(path)
    array = tmp_path / "array.json"
    array.write_text(f"[\n  {good},\n  {good}, \n  {json.dumps({**_question(2), 'answer': -1})}\n]\n")
    with pytest.raises(ValueError, match=r"array\.json:4: 'answer'"):
        read_rows(array)
    array.write_text(f"[{good}, {good}]")
    assert len(read_rows(array)) == 2
    path.write_text("question,choices,answer\nx,y,0\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: not valid JSON .*JSON Lines"):
        read_rows(path)
    with pytest.raises(ValueError, match=r"tasks\['hazard'\]\[1\]: 'choices'"):
        evaluate_multiple_choice(None, {"hazard": [_question(0), {**_question(1), "choices": "abcd"}]})
    with pytest.raises(ValueError, match="unknown task 'wmdp_bioo'"):
        evaluate_multiple_choice(None, {"wmdp_bioo": [_question(0)]})


def test_offline_hub_access_fails_fast_and_says_how_to_run_offline(monkeypatch, tmp_path):
    # A hub task is lm-eval's own file, included unchanged.
    assert render_tasks({"wmdp_cyber": None}, tmp_path) == ["wmdp_cyber"]
    assert TaskManager(include_path=tmp_path, include_defaults=False).all_tasks == ["wmdp_cyber"]
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(multiple_choice.socket, "create_connection", lambda *a, **k: time.sleep(30))  # no answer
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"wmdp_bio: the Hugging Face hub .* local files"):
        evaluate_multiple_choice(None, {"wmdp_bio": None})
    assert time.perf_counter() - start < 5
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="JSON Lines"):
        evaluate_multiple_choice(None, {"mmlu": None})
    assert time.perf_counter() - start < 0.5
