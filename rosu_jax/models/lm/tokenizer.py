"""A thin tokenizer over the ``tokenizers`` library, with Hugging Face's chat templates (Jinja2), and a small
deterministic byte-level BPE trainer for offline synthetic data.

``Tokenizer.from_folder`` reads a Hugging Face tokenizer folder: ``tokenizer.json`` (vocabulary, merges,
normaliser, post-processor: what ``encode(add_special_tokens=True)`` adds, e.g. Llama's BOS), and
``tokenizer_config.json`` (special tokens, ``chat_template``; ``special_tokens_map.json`` and ``chat_template.jinja``
as newer and older transformers write them). Chat templates render as transformers' ``apply_chat_template(...,
tokenize=False)``: a sandboxed Jinja2 environment with ``trim_blocks``/``lstrip_blocks``, the loop controls, a
``tojson`` filter that does not escape HTML, ``raise_exception``, ``strftime_now``, and the special tokens
(``bos_token``, ``eos_token``, ...) as variables.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import tokenizers
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ("bos_token", "eos_token", "pad_token", "unk_token")


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}`` (marks assistant text for transformers' masks): rendered as is."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.Scope(body).set_lineno(lineno)


def _raise_exception(message: str):
    raise jinja2.exceptions.TemplateError(message)


@functools.lru_cache(maxsize=8)
def _compile_template(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


def _token_content(token: Any) -> str | None:
    # tokenizer_config.json stores a special token as a string or as a serialised AddedToken {"content": ...}.
    return token.get("content") if isinstance(token, Mapping) else token


class Tokenizer:
    """A ``tokenizers.Tokenizer`` with its special tokens and chat template.

    ``bos_token`` etc. are token strings (or None); the ``*_id`` properties look them up in the vocabulary.
    """

    def __init__(self, tokenizer: tokenizers.Tokenizer, *, chat_template: str | None = None, **special: str | None):
        unknown = set(special) - set(SPECIAL_TOKENS)
        if unknown:
            raise ValueError(f"unknown special token roles {sorted(unknown)}; the roles are {SPECIAL_TOKENS}.")
        self.tokenizer = tokenizer
        self.chat_template = chat_template
        self.special_tokens = {role: special.get(role) for role in SPECIAL_TOKENS}
        for role, token in self.special_tokens.items():
            if token is not None and tokenizer.token_to_id(token) is None:
                raise ValueError(f"{role} {token!r} is not in the tokenizer's vocabulary.")

    @classmethod
    def from_folder(cls, folder: str | Path) -> Tokenizer:
        """Read a Hugging Face tokenizer folder (see the module docstring)."""
        folder = Path(folder)
        if not (folder / "tokenizer.json").exists():
            raise ValueError(
                f"no tokenizer.json in {folder}; only 'fast' tokenizers are read (a sentencepiece-only tokenizer.model "
                "can be converted with transformers: AutoTokenizer.from_pretrained(...).save_pretrained(...))."
            )
        config: dict[str, Any] = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            if (folder / name).exists():
                config.update({k: v for k, v in json.loads((folder / name).read_text()).items() if v is not None})
        template = config.get("chat_template")
        if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
            template = {t["name"]: t["template"] for t in template}.get("default")
        if (folder / "chat_template.jinja").exists():
            template = (folder / "chat_template.jinja").read_text()
        special = {role: _token_content(config.get(role)) for role in SPECIAL_TOKENS}
        return cls(tokenizers.Tokenizer.from_file(str(folder / "tokenizer.json")), chat_template=template, **special)

    def save(self, folder: str | Path) -> None:
        """Write ``tokenizer.json`` and ``tokenizer_config.json`` (readable by ``from_folder`` and transformers)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(str(folder / "tokenizer.json"))
        config = {"tokenizer_class": "PreTrainedTokenizerFast", **self.special_tokens}
        if self.chat_template is not None:
            config["chat_template"] = self.chat_template
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")

    def _id(self, role: str) -> int | None:
        token = self.special_tokens[role]
        return None if token is None else self.tokenizer.token_to_id(token)

    @property
    def bos_token_id(self) -> int | None:
        return self._id("bos_token")

    @property
    def eos_token_id(self) -> int | None:
        return self._id("eos_token")

    @property
    def pad_token_id(self) -> int | None:
        return self._id("pad_token")

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included (every id is below it)."""
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; ``add_special_tokens`` applies the post-processor (e.g. a leading BOS). Text
        rendered by ``apply_chat_template`` already holds its special tokens: encode it with False."""
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, Any]], add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        """Render ``messages`` ([{"role": ..., "content": ...}, ...]) with the chat template, as transformers'
        ``apply_chat_template(messages, tokenize=False, add_generation_prompt=...)``. Extra ``kwargs`` become
        template variables (e.g. ``tools``, ``date_string``)."""
        if self.chat_template is None:
            raise ValueError("this tokenizer has no chat_template (tokenizer_config.json or chat_template.jinja).")
        variables = {**{k: v for k, v in self.special_tokens.items() if v is not None}, **kwargs}
        return _compile_template(self.chat_template).render(
            messages=[dict(m) for m in messages], add_generation_prompt=add_generation_prompt, **variables
        )


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    special_tokens: Sequence[str] = ("<s>", "</s>", "<pad>"),
    *,
    bos_token: str | None = "<s>",
    eos_token: str | None = "</s>",
    pad_token: str | None = "<pad>",
    chat_template: str | None = None,
) -> Tokenizer:
    """Train a byte-level BPE (GPT-2 style: every byte is a base token, so any text encodes) on ``texts``.

    ``special_tokens`` get the first ids, in order; ``bos_token``/``eos_token``/``pad_token`` name which of them
    play those roles, and ``encode(add_special_tokens=True)`` prepends the BOS token. Training is deterministic:
    the same texts give the same vocabulary and merges.
    """
    roles = {"bos_token": bos_token, "eos_token": eos_token, "pad_token": pad_token}
    missing = [token for token in roles.values() if token is not None and token not in special_tokens]
    if missing:
        raise ValueError(f"special tokens {missing} are not in special_tokens {list(special_tokens)}.")
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    if vocab_size < len(alphabet) + len(special_tokens):
        raise ValueError(
            f"vocab_size {vocab_size} is below the {len(alphabet)} byte tokens plus {len(special_tokens)} special "
            "tokens a byte-level BPE needs."
        )
    tokenizer = tokenizers.Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(special_tokens), initial_alphabet=alphabet, show_progress=False
    )
    tokenizer.train_from_iterator(texts, trainer)
    if bos_token is not None:
        bos = (bos_token, tokenizer.token_to_id(bos_token))
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B", special_tokens=[bos]
        )
    return Tokenizer(tokenizer, chat_template=chat_template, **roles)
