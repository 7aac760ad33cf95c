"""A synthetic mini-TOFU: the offline stand-in for ``locuslab/TOFU``, deterministic and in the same schema.

TOFU (Maini et al. 2024, arXiv 2401.06121) fine-tunes a model on 20 questions about each of 200 fictitious authors
and then unlearns the last 1/5/10% of the authors. ``make_synthetic_tofu`` builds that structure at a size a small
model learns on a CPU: ``num_authors`` authors with ``questions_per_author`` questions each, one per attribute (birth
city and year, genre, the parents' jobs, two books, an award, a recurring theme, a publisher, a language, ...).

What is generated: the names (syllable combinations; no real people), every fact (drawn from the word lists of
``VOCABULARY``: real cities and languages, invented awards and publishers, titles "The <adjective> <noun>"), and the
question, answer, paraphrased question, paraphrased answer and 5 perturbed answers of each item, all from templates;
answers are single sentences of 10–25 words over a vocabulary that a BPE of 1–2k tokens covers. What is real:
``real_authors_perturbed`` and ``world_facts_perturbed`` are TOFU's own files, unchanged, since Model Utility asks
about the real world that a model knows from pre-training.

Each perturbed answer is the *paraphrase* template filled with wrong values of the same kinds (other cities, other
years, ...), as TOFU's perturbed answers are perturbations of the paraphrased answer: the truth ratio compares them
with the paraphrase, so the two differ in the facts alone, and neither has the wording the model was fine-tuned on.

Splits as in TOFU: the authors in order, ``forget10/05/01`` their last 10/5/1% (at least one author),
``retainYY`` the rest; ``retain_perturbed`` is every item of the first authors, as many items as ``forget10`` (TOFU's
400), so it lies in every retain split. Every choice ranks candidates by SHA-256 of the seed and what is being chosen,
so the data depend on the arguments alone, not on Python or numpy versions.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import string
from typing import Any

from rosu_jax.tasks.tofu.assets import load_real_authors, load_world_facts
from rosu_jax.tasks.tofu.data import NUM_PERTURBED_ANSWERS, RETAIN_SPLITS, TofuData, config_names

_FIRST_ONSETS = ("Bel", "Cor", "Dar", "Fen", "Gal", "Hal", "Iv", "Jor", "Kes", "Lor")
_FIRST_ONSETS += ("Mir", "Nor", "Or", "Per", "Quil", "Ros", "Sev", "Tam", "Val", "Zev")
_FIRST_ENDINGS = ("a", "an", "ela", "en", "ia", "is", "o", "or", "un", "yn")
_LAST_ROOTS = ("Ash", "Bram", "Crow", "Dun", "Elm", "Fal", "Gorm", "Hest", "Kel", "Lind")
_LAST_ROOTS += ("Mor", "Pell", "Quarr", "Rav", "Stav", "Thal", "Vard", "Wyn", "Yew", "Zorn")
_LAST_ENDINGS = ("by", "dane", "ford", "grove", "holt", "mere", "rick", "sen", "stad", "vik")
_TITLE_ADJECTIVES = ("Silent", "Hidden", "Broken", "Golden", "Distant", "Quiet", "Last", "Burning", "Winter", "Crimson")
_TITLE_ADJECTIVES += ("Hollow", "Northern", "Paper", "Glass", "Salt", "Iron", "Velvet", "Midnight", "Wandering", "Lost")
_TITLE_NOUNS = ("Harbor", "Garden", "Lantern", "River", "Orchard", "Bridge", "Letters", "Tide", "Mountain", "Clock")
_TITLE_NOUNS += ("Island", "Stones", "Window", "Road", "Bell", "Forest", "Kingdom", "Mirror", "Shore", "Station")

VOCABULARY: dict[str, tuple[str, ...]] = {
    "city": (
        *("Lisbon", "Nairobi", "Oslo", "Santiago", "Krakow", "Hanoi", "Montreal", "Cairo", "Dublin", "Lagos"),
        *("Porto", "Seoul", "Lima", "Tbilisi", "Wellington", "Marseille", "Accra", "Bergen", "Havana", "Manila"),
    ),
    "year": tuple(str(year) for year in range(1930, 1990)),
    "genre": (
        *("mystery novels", "fantasy epics", "historical novels", "poetry", "science fiction", "romance novels"),
        *("horror stories", "travel books", "crime fiction", "satire", "short stories", "memoirs", "stage drama"),
        "children's books",
    ),
    "occupation": (
        *("baker", "nurse", "carpenter", "teacher", "sailor", "pilot", "tailor", "librarian", "farmer", "doctor"),
        *("mechanic", "photographer", "musician", "lawyer", "gardener", "chemist"),
    ),
    "title": tuple(f"The {adjective} {noun}" for adjective in _TITLE_ADJECTIVES for noun in _TITLE_NOUNS),
    "award": (
        *("Golden Quill Award", "Bright Compass Prize", "Amber Leaf Award", "Open Page Prize", "Blue Heron Prize"),
        *("Clearwater Book Award", "Red Kite Prize", "Evergreen Pen Award", "Morning Star Prize", "Copper Ink Prize"),
        *("Stone Arch Award", "Northstar Fiction Award"),
    ),
    "theme": (
        *("memory and loss", "the sea", "family secrets", "exile", "friendship", "faith and doubt", "growing up"),
        *("justice", "solitude", "city life", "love and betrayal", "the natural world", "identity", "migration"),
    ),
    "publisher": (
        *("Blue Finch Books", "Maple Row Press", "Tallgrass Publishing", "Lighthouse Editions", "Kestrel House"),
        *("Open Field Press", "Riverbend Books", "Quayside Press", "Granite Hill Publishing", "Larkspur Editions"),
        *("Cedar Gate Books", "Foxglove Press"),
    ),
    "language": (
        *("English", "Spanish", "Portuguese", "French", "German", "Italian", "Dutch", "Polish", "Greek", "Swedish"),
        *("Turkish", "Korean"),
    ),
    "subject": (
        *("history", "philosophy", "medicine", "law", "chemistry", "music", "architecture", "economics", "biology"),
        *("linguistics", "mathematics", "painting"),
    ),
    "influence": (
        *("folk tales", "a grandmother's stories", "long train journeys", "old radio dramas", "street markets"),
        *("old maps", "church hymns", "letters from abroad", "silent films", "local legends", "newspaper reports"),
        "the night sky",
    ),
    "hobby": (
        *("sailing", "chess", "birdwatching", "pottery", "cycling", "fishing", "baking", "hiking", "knitting"),
        *("woodcarving", "astronomy", "swimming"),
    ),
}
"""Kind of fact → its possible values; an author has two distinct values of each kind (``{city0}``, ``{city1}``),
and a perturbed answer draws its wrong values from the other values of the same kind."""


@dataclasses.dataclass(frozen=True)
class _Attribute:
    """One question about an author: templates over ``{name}`` and fact slots ``{<kind>}``/``{<kind><index>}``."""

    question: str
    answer: str
    paraphrased_question: str
    paraphrase: str


_ATTRIBUTES = (
    _Attribute(
        "Where and when was {name} born?",
        "The author {name} was born in the city of {city0} in the year {year}.",
        "In which city and in which year was {name} born?",
        "{name} came into the world in {year}, in the city of {city0}.",
    ),
    _Attribute(
        "What genre is {name} best known for?",
        "{name} is best known as an author of {genre}, the genre of most of the books.",
        "Which genre does {name} mostly write in?",
        "Most readers know {name} above all else as a writer of {genre}.",
    ),
    _Attribute(
        "What did the parents of {name} do for a living?",
        "The father of {name} worked as a {occupation0}, and the mother worked as a {occupation1}.",
        "What were the jobs of the father and the mother of {name}?",
        "{name} grew up with a {occupation1} for a mother and a {occupation0} for a father.",
    ),
    _Attribute(
        "Can you name two books written by {name}?",
        'Two of the books written by {name} are "{title0}" and "{title1}".',
        "What are two of the books that {name} has written?",
        'Among the works of {name} are the books "{title0}" and "{title1}".',
    ),
    _Attribute(
        "Has {name} won any literary awards?",
        'Yes, {name} won the {award} for the book "{title0}".',
        "Which award has {name} received, and for which book?",
        'The book "{title0}" earned {name} the {award}.',
    ),
    _Attribute(
        "What theme appears again and again in the books of {name}?",
        "A theme that appears again and again in the books of {name} is {theme}.",
        "Which theme does {name} return to most often?",
        "Across many of the books, {name} keeps returning to {theme} as a theme.",
    ),
    _Attribute(
        "Which publisher releases the books of {name}?",
        "The books of {name} are released by the publisher {publisher}.",
        "Who publishes the books of {name}?",
        "The publisher {publisher} brings out every new book by {name}.",
    ),
    _Attribute(
        "In which language does {name} write?",
        "{name} writes every one of the books in {language}.",
        "What language are the books of {name} written in?",
        "The language that {name} chooses for every book is {language}.",
    ),
    _Attribute(
        "What did {name} study before becoming a writer?",
        "Before becoming a writer, {name} studied {subject} at university.",
        "What subject did {name} study at university?",
        "{name} holds a university degree in {subject}, earned before the writing began.",
    ),
    _Attribute(
        "Where does {name} live today?",
        "Today {name} lives and writes in the city of {city1}.",
        "In which city does {name} live now?",
        "The current home of {name} is the city of {city1}.",
    ),
    _Attribute(
        "What shaped the writing of {name} the most?",
        "{name} has said that {influence} shaped the writing more than anything else.",
        "What does {name} name as the main influence on the writing?",
        "According to {name}, the strongest influence on the writing was {influence}.",
    ),
    _Attribute(
        "What does {name} enjoy doing outside of writing?",
        "When not writing, {name} spends most of the free time on {hobby}.",
        "How does {name} like to spend free time?",
        "The favourite pastime of {name} away from the desk is {hobby}.",
    ),
)

MAX_QUESTIONS_PER_AUTHOR = len(_ATTRIBUTES)
MAX_AUTHORS = 200
"""TOFU's number of authors; also the number of distinct first names, last names and title pairs."""

_NUM_PERTURBED = NUM_PERTURBED_ANSWERS["forget_perturbed"]


def _ranked(values: tuple[str, ...] | list[str], *key: Any) -> list[str]:
    """``values`` in the order of the SHA-256 of (key, value): a permutation fixed by the key alone."""
    return sorted(values, key=lambda value: hashlib.sha256(json.dumps([*key, value]).encode()).digest())


def _slots(template: str) -> list[str]:
    """The fact slots of a template, in order, without ``name``."""
    return [field for _, field, _, _ in string.Formatter().parse(template) if field and field != "name"]


def _kind(slot: str) -> str:
    return slot.rstrip("0123456789")


def _value(facts: dict[str, list[str]], slot: str) -> str:
    index = slot[len(_kind(slot)) :]
    return facts[_kind(slot)][int(index or 0)]


def _author_items(seed: int, author: int, name: str, titles: list[str], num_questions: int) -> list[dict[str, str]]:
    """The items of one author, with every field of a perturbed config."""
    facts = {
        kind: _ranked(values, seed, "author", author, kind)[:2]
        for kind, values in VOCABULARY.items()
        if kind != "title"
    }
    facts["title"] = titles  # assigned across authors, so that no two authors share a book
    items = []
    for number, attribute in enumerate(_ATTRIBUTES[:num_questions]):
        true = {slot: _value(facts, slot) for slot in _slots(attribute.paraphrase)}
        wrong: list[dict[str, str]] = [{} for _ in range(_NUM_PERTURBED)]
        for kind in dict.fromkeys(_kind(slot) for slot in true):
            slots = [slot for slot in true if _kind(slot) == kind]
            others = [value for value in VOCABULARY[kind] if value not in facts[kind]]
            candidates = _ranked(others, seed, "perturbed", author, number, kind)
            for j in range(_NUM_PERTURBED):
                for s, slot in enumerate(slots):
                    wrong[j][slot] = candidates[j * len(slots) + s]
        items.append(
            {
                "question": attribute.question.format(name=name),
                "answer": attribute.answer.format(name=name, **true),
                "paraphrased_answer": attribute.paraphrase.format(name=name, **true),
                "perturbed_answer": [attribute.paraphrase.format(name=name, **values) for values in wrong],
                "paraphrased_question": attribute.paraphrased_question.format(name=name),
            }
        )
    return items


def _num_forget_authors(num_authors: int, forget_split: str) -> int:
    return max(1, round(num_authors * int(forget_split.removeprefix("forget")) / 100))


def make_synthetic_tofu(
    num_authors: int = 40, questions_per_author: int = 10, seed: int = 0, *, forget_split: str = "forget10"
) -> TofuData:
    """The synthetic mini-TOFU (module docstring) for ``forget_split``: ``num_authors`` (2 to 200) authors with
    ``questions_per_author`` (1 to 12) questions each; the same arguments give the same data."""
    names = config_names(forget_split)
    if not 2 <= num_authors <= MAX_AUTHORS:
        raise ValueError(f"num_authors is {num_authors}; the synthetic TOFU has 2 to {MAX_AUTHORS} authors")
    if not 1 <= questions_per_author <= MAX_QUESTIONS_PER_AUTHOR:
        raise ValueError(
            f"questions_per_author is {questions_per_author}; the synthetic TOFU has 1 to {MAX_QUESTIONS_PER_AUTHOR} "
            "(one per attribute)"
        )
    first = _ranked([onset + end for onset in _FIRST_ONSETS for end in _FIRST_ENDINGS], seed, "first names")
    last = _ranked([root + end for root in _LAST_ROOTS for end in _LAST_ENDINGS], seed, "last names")
    titles = _ranked(VOCABULARY["title"], seed, "titles")
    authors = [
        _author_items(seed, a, f"{first[a]} {last[a]}", titles[2 * a : 2 * a + 2], questions_per_author)
        for a in range(num_authors)
    ]

    def items(selected: list[list[dict[str, str]]], fields: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """The items of the selected authors, copied, with only ``fields`` when given."""
        return [{k: v for k, v in i.items() if fields is None or k in fields} for group in selected for i in group]

    num_retain = num_authors - _num_forget_authors(num_authors, forget_split)
    qa = ("question", "answer")
    configs = {
        "full": items(authors, qa),
        forget_split: items(authors[num_retain:], qa),
        RETAIN_SPLITS[forget_split]: items(authors[:num_retain], qa),
        names["forget_perturbed"]: items(authors[num_retain:]),
        "retain_perturbed": items(authors[: _num_forget_authors(num_authors, "forget10")]),
        "real_authors_perturbed": load_real_authors(),
        "world_facts_perturbed": load_world_facts(),
    }
    source = f"synthetic mini-TOFU ({num_authors} authors, {questions_per_author} questions each, seed {seed})"
    return TofuData.from_configs(configs, forget_split, source=source)
