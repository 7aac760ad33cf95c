import json

import jinja2
import pytest

from rosu_jax.models.lm import Tokenizer, train_bpe_tokenizer


@pytest.fixture(scope="module")
def reference(fixtures):
    """What transformers produced with the fixture tokenizer (see fixtures/make_parity_fixtures.py)."""
    return json.loads((fixtures / "tokenizer" / "reference.json").read_text())


@pytest.fixture(scope="module")
def tokenizer(fixtures):
    return Tokenizer.from_folder(fixtures / "tokenizer")


def test_encode_decode_and_special_tokens_match_transformers(tokenizer, reference):
    assert tokenizer.vocab_size == reference["vocab_size"]
    ids = (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert ids == (reference["bos_token_id"], reference["eos_token_id"], reference["pad_token_id"])
    for text, with_bos, plain, decoded in zip(
        reference["samples"], reference["encoded"], reference["encoded_plain"], reference["decoded"], strict=True
    ):
        assert tokenizer.encode(text) == with_bos
        assert tokenizer.encode(text, add_special_tokens=False) == plain
        assert tokenizer.decode(with_bos) == decoded == text


def test_chat_template_renders_as_transformers(tokenizer, reference):
    messages = reference["messages"]
    assert tokenizer.apply_chat_template(messages) == reference["chat"]
    assert tokenizer.apply_chat_template(messages, add_generation_prompt=False) == reference["chat_no_prompt"]
    with pytest.raises(jinja2.exceptions.TemplateError, match="unknown role tool"):
        tokenizer.apply_chat_template([{"role": "tool", "content": "x"}])


def test_chat_template_variables_filters_and_generation_blocks(tokenizer):
    template = (
        "{% for m in messages %}{% generation %}{{ m | tojson }}{% endgeneration %}{% endfor %}"
        "{% if add_generation_prompt %}{{ eos_token }}{{ date_string }}{% endif %}"
    )
    chat = Tokenizer(tokenizer.tokenizer, chat_template=template, **tokenizer.special_tokens)
    rendered = chat.apply_chat_template([{"role": "user", "content": "<b>é</b>"}], date_string="today")
    assert rendered == '{"role": "user", "content": "<b>é</b>"}<|end_of_text|>today'  # no HTML escaping
    with pytest.raises(ValueError, match="no chat_template"):
        Tokenizer(tokenizer.tokenizer).apply_chat_template([])


def test_training_reproduces_the_fixture_tokenizer_and_is_deterministic(tokenizer, reference):
    special = reference["special_tokens"]
    trained = train_bpe_tokenizer(
        reference["texts"], reference["vocab_size"], special,
        bos_token=special[0], eos_token=special[1], pad_token=special[2],
    )  # fmt: skip
    assert trained.tokenizer.get_vocab() == tokenizer.tokenizer.get_vocab()
    again = train_bpe_tokenizer(
        reference["texts"], reference["vocab_size"], special,
        bos_token=special[0], eos_token=special[1], pad_token=special[2],
    )  # fmt: skip
    assert again.tokenizer.to_str() == trained.tokenizer.to_str()
    for text, with_bos in zip(reference["samples"], reference["encoded"], strict=True):
        assert trained.encode(text) == with_bos


def test_save_and_reload(tmp_path):
    texts = ["a small corpus of words", "words and more words"] * 20
    trained = train_bpe_tokenizer(texts, 270, chat_template="{{ bos_token }}{{ messages[0]['content'] }}")
    trained.save(tmp_path)
    loaded = Tokenizer.from_folder(tmp_path)
    assert loaded.special_tokens == trained.special_tokens
    assert (loaded.bos_token_id, loaded.eos_token_id, loaded.pad_token_id) == (0, 1, 2)
    assert loaded.encode("more words") == trained.encode("more words")
    assert loaded.encode("more words")[0] == 0
    assert loaded.apply_chat_template([{"role": "user", "content": "hi"}]) == "<s>hi"


def test_errors(tmp_path, tokenizer):
    with pytest.raises(ValueError, match="no tokenizer.json"):
        Tokenizer.from_folder(tmp_path)
    with pytest.raises(ValueError, match="not in special_tokens"):
        train_bpe_tokenizer(["x"], 300, ("<s>",))
    with pytest.raises(ValueError, match="vocab_size 100 is below"):
        train_bpe_tokenizer(["x"], 100)
    with pytest.raises(ValueError, match="'<nope>' is not in the tokenizer's vocabulary"):
        Tokenizer(tokenizer.tokenizer, eos_token="<nope>")
