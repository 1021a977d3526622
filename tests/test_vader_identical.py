"""FastVader gives exactly what the installed vaderSentiment gives: same keys, same floats."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    NEGATE,
    SPECIAL_CASES,
    SentimentIntensityAnalyzer,
)

from monitor.sentiment import split_sentences
from monitor.vader import FastVader

EVAL = Path(__file__).resolve().parent / "data" / "touchpoints_eval.jsonl"
TRAIN = EVAL.with_name("touchpoints_train.jsonl")

ORIGINAL = SentimentIntensityAnalyzer()
FAST = FastVader()

# No example database: these tests must not leave files in the working tree, and a failure prints
# the falsifying text anyway.
PROPERTY = settings(
    max_examples=500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def assert_identical(
    text: str, fast: FastVader = FAST, original: SentimentIntensityAnalyzer = ORIGINAL
) -> None:
    expected = original.polarity_scores(text)
    actual = fast.polarity_scores(text)
    # repr as well as ==: -0.0 == 0.0 and 1 == 1.0, but neither is identical output
    assert actual == expected, text
    assert repr(actual) == repr(expected), text
    assert repr(fast.compound(text)) == repr(expected["compound"]), text


def mismatches(
    texts: list[str], fast: FastVader = FAST, original: SentimentIntensityAnalyzer = ORIGINAL
) -> list[tuple[str, dict[str, float], dict[str, float]]]:
    """Every text whose scores differ, with both results, so a failure shows all of them at once."""
    found = []
    for text in texts:
        expected = original.polarity_scores(text)
        actual = fast.polarity_scores(text)
        if repr(actual) != repr(expected) or repr(fast.compound(text)) != repr(
            expected["compound"]
        ):
            found.append((text, expected, actual))
    return found


def eval_texts() -> list[str]:
    lines = EVAL.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def test_every_eval_text_scores_identically() -> None:
    texts = eval_texts()
    assert len(texts) > 500
    assert mismatches(texts) == []


def test_every_eval_sentence_scores_identically() -> None:
    sentences = [sentence for text in eval_texts() for sentence in text.split(". ")]
    assert len(sentences) > len(eval_texts())
    assert mismatches(sentences) == []


HARD_CASES = [
    # negations
    "not bad",
    "Not bad at all",
    "no problems",
    "No problems whatsoever, no issues",
    "no no good",
    "no good or bad",
    "no funny nor kind",
    "never good",
    "Sentiment analysis has never been good.",
    "Sentiment analysis has never been this good!",
    "never so happy",
    "it is so good",
    "isn't great",
    "it isnt great",
    "The staff weren't helpful and didn't care",
    "I can't say it's good",
    "nothing good came of it",
    "rarely helpful, seldom polite, despite the great reviews",
    "uh-uh, not happy",
    # boosters and dampeners
    "very good",
    "extremely bad",
    "extremely very really good",
    "VERY good service",
    "very GOOD service",
    "The book was only kind of good.",
    "kind of a good day",
    "it was kind of sort of good",
    "it was sort of good",
    "it was just enough good",
    "kinda sux! But I'll get by, lol",
    "barely adequate and hardly helpful",
    # capitals and punctuation
    "GREAT",
    "The service was GREAT",
    "GREAT SERVICE",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "great!!!",
    "great!!!!!!!!",
    "great???",
    "great??",
    "great?",
    "terrible?????",
    "Today SUX!",
    # contrastive "but"
    "good but bad",
    "good but good but bad",
    "bad but good but good but bad",
    "great great but great",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "but",
    "BUT it was fine",
    "good good good but",
    "nice but okay",
    "love but (-: and =]",
    # idioms and special cases
    "that was the bomb",
    "The food was the bomb",
    "our new manager is the bomb",
    "it just does not cut the mustard",
    "yeah right, great service",
    "oh yeah right",
    "that policy is the kiss of death for us",
    "a cake to die for",
    "the shit, honestly the best",
    "With VADER, sentiment analysis is the shit!",
    "On the other hand, VADER is quite bad ass",
    "VADER is such a badass!",
    "wait at the bus stop happily",
    "beating heart of the city",
    # "least"
    "the least helpful staff",
    "at least it was good",
    "the very least good option",
    "least good",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "At least it isn't a horrible book.",
    # "without doubt"
    "without doubt, excellent idea",
    "Without a doubt, an excellent idea.",
    "without any doubt excellent",
    "without excellent",
    # emoji, emoticons
    "😍",
    "💩",
    "👍",
    "love it 😍😍",
    "😍good",
    "terrible💩 service",
    "👍🏽 great job",
    "👍🏿👍🏻",
    "🇬🇧 and 🇺🇸 stores are great",
    "👨‍👩‍👧 family day was fun",
    "❤️ it",
    "☺️ fine",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "🔛 and 🆙",
    "tab\t😍 and newline\n😍",
    ":)",
    ":(",
    "great :)",
    "awful :(",
    "Make sure you :) or :D today!",
    ":D",
    "XD",
    "o_O what",
    # degenerate input
    "",
    " ",
    "   \t\n  ",
    "!!!",
    "???",
    "...",
    "?!?!",
    "!?",
    ".,;:'\"-",
    "a",
    "ok!",
    # non-ASCII letters, control characters, URLs
    "Très bien, le service était excellent",
    "ΣΟΦΟΣ and good",
    "İstanbul was GREAT",
    "Straße closed, terrible",
    "ǅ good",
    "good\x00bad\x07awful",
    "great\u200bservice",
    "lovely\u00a0staff\u2028and\u3000nice",
    "see https://example.com/great-service?good=1&bad=2 for details",
    "http://bad.example/awful!!! is not good",
    "email me at happy@example.com, great",
]


@pytest.mark.parametrize("text", HARD_CASES)
def test_hand_picked_hard_case_scores_identically(text: str) -> None:
    assert_identical(text)


class ByPositionButAnalyzer(SentimentIntensityAnalyzer):
    """Upstream with the "but" rule applied by position, as one would naively re-implement it."""

    @staticmethod
    def _but_check(words_and_emoticons: list[str], sentiments: list[float]) -> list[float]:
        lowered = [word.lower() for word in words_and_emoticons]
        if "but" not in lowered:
            return sentiments
        but_index = lowered.index("but")
        return [
            score * 0.5 if i < but_index else score * 1.5 if i > but_index else score
            for i, score in enumerate(sentiments)
        ]


@pytest.mark.parametrize("text", ["nice but okay", "Nice staff, but the room was okay!"])
def test_but_rule_finds_scores_by_value_like_upstream(text: str) -> None:
    # "nice" (1.8) is halved to 0.9 before "but"; upstream then looks up "okay" (0.9) by value,
    # finds nice's position and halves that again, leaving "okay" unweighted. A by-position rule
    # scores these texts differently, so they prove FastVader copies the lookup.
    assert ByPositionButAnalyzer().polarity_scores(text) != ORIGINAL.polarity_scores(text)
    assert_identical(text)


def test_very_long_text_scores_identically() -> None:
    # 20,000 words. Upstream re-lower-cases the whole text for every sentiment word, so a long
    # text dense with them takes it minutes; sentiment words are sparse here to keep it quick.
    rng = random.Random(20_000)
    filler = [
        word
        for text in eval_texts()
        for word in text.split()
        if word.lower().strip(".,!?;:'\"()") not in ORIGINAL.lexicon
        and word.lower() not in BOOSTER_DICT
        and word.lower() not in NEGATE
    ]
    words = [rng.choice(filler) for _ in range(20_000)]
    seeds = ["not good", "very bad", "GREAT", "but", "the bomb", "least helpful", "😍", ":)"]
    for position in rng.sample(range(20_000), 40):
        words[position] = rng.choice(seeds)
    text = " ".join(words)
    assert len(text.split()) >= 20_000
    assert_identical(text)
    assert_identical(text + "!!!")


def test_long_natural_text_scores_identically() -> None:
    text = " ".join(eval_texts())[:15_000]
    assert_identical(text)


@settings(PROPERTY, max_examples=1000)
@given(st.text())
def test_any_text_scores_identically(text: str) -> None:
    assert_identical(text)


# Words that make VADER's rules fire, to build sentences random text would rarely produce.
RULE_WORDS = sorted(
    set(NEGATE)
    | set(BOOSTER_DICT)
    | {word for phrase in SPECIAL_CASES for word in phrase.split()}
    | {"no", "or", "nor", "but", "least", "at", "very", "never", "so", "this", "without", "doubt"}
    | {"kind", "of", "cut", "the", "mustard", "yeah", "right", "kiss", "death"}
)
LEXICON_WORDS = sorted(ORIGINAL.lexicon)
EMOJIS = sorted(ORIGINAL.emojis)
MARKS = ["!", "?", "!!!", "???", ".", ",", "...", ":)", ":(", ":D", "-", "'", '"']


# Built once: hypothesis labels a sampled_from by walking all its elements, so creating these
# inside the composite for every word made the test spend its time there.
WORDS = st.one_of(
    st.sampled_from(LEXICON_WORDS),
    st.sampled_from(RULE_WORDS),
    st.sampled_from(EMOJIS),
    st.sampled_from(MARKS),
)
CASES = st.sampled_from(["as is", "upper", "title"])
BEFORE = st.sampled_from(["", "", "", '"', "(", "#"])
AFTER = st.sampled_from(["", "", "", ",", ".", "!", "?", "!!", ")", "😍"])
SEPARATOR = st.sampled_from([" ", " ", " ", "  ", "\t", "\n", ""])


@st.composite
def styled_word(draw: st.DrawFn) -> str:
    word = draw(WORDS)
    case = draw(CASES)
    if case == "upper":
        word = word.upper()
    elif case == "title":
        word = word.title()
    before = draw(BEFORE)
    after = draw(AFTER)
    return before + word + after


@st.composite
def sentence(draw: st.DrawFn) -> str:
    words = draw(st.lists(styled_word(), max_size=30))
    separators = draw(
        st.lists(
            SEPARATOR,
            min_size=len(words),
            max_size=len(words),
        )
    )
    return "".join(word + separator for word, separator in zip(words, separators, strict=True))


@PROPERTY
@given(sentence())
def test_rule_heavy_sentence_scores_identically(text: str) -> None:
    assert_identical(text)


DOMAIN_LEXICON: Mapping[str, float] = {
    "no-show": -2.0,
    "refund": -0.5,
    "problems": 0.8,  # an override of a shipped entry
    "least": 1.0,  # a lexicon "least" switches off upstream's "least" rule
    "but": 0.4,  # scored as a word and still the contrastive "but"
    "so": 1.5,  # a booster that is also a lexicon word stops boosting its neighbour
    "not": -0.3,  # a negator that is a lexicon word no longer negates
    "kind": -1,  # an int valence, as an update() with ints would store
    "Comcast": -3.0,  # capitals: never matches, in either implementation
}

DOMAIN_TEXTS = [
    "no problems at all",
    "the driver was a no-show, asked for a refund",
    "the least helpful staff",
    "good but bad",
    "so good",
    "not good",
    "kind of good",
    "a kind person",
    "Comcast was awful",
    "comcast was awful",
    "REFUND please, no problems",
]


def test_extra_lexicon_matches_updating_the_original_lexicon() -> None:
    original = SentimentIntensityAnalyzer()
    original.lexicon.update(DOMAIN_LEXICON)
    fast = FastVader(extra_lexicon=DOMAIN_LEXICON)
    texts = DOMAIN_TEXTS + HARD_CASES + eval_texts()
    assert mismatches(texts, fast, original) == []
    # and the extension changes something, so the comparison above is not vacuous
    assert fast.polarity_scores("no problems at all") != FAST.polarity_scores("no problems at all")


def test_extra_lexicon_does_not_leak_into_other_analyzers() -> None:
    FastVader(extra_lexicon={"refund": -3.0})
    assert repr(FastVader().polarity_scores("refund")) == repr(ORIGINAL.polarity_scores("refund"))


@settings(max_examples=80, deadline=None, database=None)
@given(
    st.dictionaries(
        st.sampled_from(RULE_WORDS + LEXICON_WORDS[:200] + ["refund", "no-show"]),
        st.floats(min_value=-4, max_value=4, allow_nan=False),
        max_size=8,
    ),
    st.lists(sentence(), min_size=1, max_size=5),
)
def test_any_extra_lexicon_matches_updating_the_original(
    extra: dict[str, float], texts: list[str]
) -> None:
    original = SentimentIntensityAnalyzer()
    original.lexicon.update(extra)
    assert mismatches(texts, FastVader(extra_lexicon=extra), original) == []


# --------------------------------------------------------------------------- a text and its
# sentences at once: the whole text takes its tokens from its sentences when they tile it


def text_and_sentences_mismatches(
    texts: list[str], split: Callable[[str], list[str]] = split_sentences
) -> list[tuple[str, object, object]]:
    """Every text where scoring it with its sentences at once differs from upstream scoring the
    text and then each sentence alone."""
    found = []
    for text in texts:
        sentences = split(text)
        expected = (
            ORIGINAL.polarity_scores(text),
            [ORIGINAL.polarity_scores(s)["compound"] for s in sentences],
        )
        actual = FAST.scores_with_sentences(text, sentences)
        if repr(actual) != repr(expected):
            found.append((text, expected, actual))
    return found


def test_eval_and_training_texts_score_with_their_sentences_identically() -> None:
    texts = eval_texts() + [
        json.loads(line)["text"]
        for line in TRAIN.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    assert len(texts) > 10_000
    assert text_and_sentences_mismatches(texts) == []


def test_hard_cases_score_with_their_sentences_identically() -> None:
    # Words that look past a sentence's edge: "kind of", "no", idioms, "least", boosters,
    # capitals in one sentence and not in another, "but" in one sentence of several.
    edges = [
        "It was kind. Of course we paid. Never so happy!",
        "I said no. Good service though. At least. Helpful staff.",
        "Total kiss. Of death for the shop. The bomb. Really GREAT but awful.",
        "GREAT SERVICE. the staff were rude. I LOVED IT but never again.",
        "no\ngood\nbad. very\nnice",
        "Nice place, but the staff were rude and slow. Great, but pricey!!! Why?? Sad.",
        "ok, but fine. meh , but good",
        "Loved it 😍. Hated the wait 😡 but 👍",
    ]
    texts = HARD_CASES + edges + [" ".join(HARD_CASES), ". ".join(HARD_CASES)]
    assert text_and_sentences_mismatches(texts) == []


def test_sentences_that_do_not_tile_the_text_score_identically() -> None:
    # Sentences from elsewhere, or missing the text's commas, cannot lend their tokens.
    def elsewhere(_: str) -> list[str]:
        return ["Not bad at all", "GREAT", "kind of good"]

    texts = ["The food was great, but the staff were rude.", "NOT bad but GREAT", ""]
    assert text_and_sentences_mismatches(texts, elsewhere) == []
    assert text_and_sentences_mismatches(texts, lambda text: [text.replace(",", "")]) == []


@PROPERTY
@given(st.lists(sentence(), max_size=6), st.sampled_from([" ", ". ", "! ", "\n", ", but "]))
def test_rule_heavy_text_scores_with_its_sentences_identically(
    pieces: list[str], joint: str
) -> None:
    assert text_and_sentences_mismatches([joint.join(pieces)]) == []
