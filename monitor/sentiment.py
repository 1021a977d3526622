"""Pipeline step: how a mention feels, as a whole and sentence by sentence (VADER).

Only English is scored: VADER's lexicon is English, and a confident-looking score on French
text would mislead, so other languages get the label ``unsupported-language`` and no score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from monitor.config import read_yaml
from monitor.vader import FastVader

# The thresholds VADER's authors recommend for a three-way label on the compound score.
POSITIVE_THRESHOLD = 0.05
NEGATIVE_THRESHOLD = -0.05
UNSUPPORTED = "unsupported-language"
SCORED_LANGUAGES = frozenset({"en"})
# A star rating "strongly disagrees" with the text when they sit at opposite ends: 4–5 stars
# (≥ 0.75 on the 0–1 scale) with clearly negative text, or 1–2 stars with clearly positive text.
_DISAGREEMENT_TEXT = 0.5
_HIGH_RATING, _LOW_RATING = 0.75, 0.25

# Words after which a full stop does not end a sentence.
_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "st",
        "prof",
        "sr",
        "jr",
        "mt",
        "ltd",
        "co",
        "inc",
        "vs",
        "etc",
        "approx",
        "appt",
        "apt",
        "dept",
        "est",
        "no",
        "nos",
        "tel",
        "e.g",
        "i.e",
        "a.m",
        "p.m",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
    ]
)
# End punctuation followed by space (or the end), or a line break, which always ends a sentence.
_SENTENCE_END = re.compile(r"([.!?…]+[\"')\]]*(?=\s|$)|\n+)(\s*)")
# A contrast splits one sentence into two judgements: "the food was great but the waiter was
# rude" is product (+) and staff (−). The conjunction stays with the clause it introduces.
_CONTRAST = re.compile(
    r"(,?\s+)(?=(?:but|however|although|though|whereas|except)\s)", re.IGNORECASE
)
_MIN_CLAUSE_WORDS = 3
LEXICON = Path(__file__).resolve().parent.parent / "config" / "lexicon.yaml"


@dataclass(frozen=True)
class Sentence:
    position: int
    text: str
    compound: float
    label: str


@dataclass(frozen=True)
class Sentiment:
    compound: float | None
    positive: float | None
    neutral: float | None
    negative: float | None
    label: str
    sentences: tuple[Sentence, ...]
    rating_disagrees: bool = False


def label_for(compound: float) -> str:
    if compound >= POSITIVE_THRESHOLD:
        return "positive"
    if compound <= NEGATIVE_THRESHOLD:
        return "negative"
    return "neutral"


def split_sentences(text: str) -> list[str]:
    """Sentences of a review: abbreviations (``Dr.``, ``e.g.``) and initials do not end one."""
    sentences: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end(1)
        candidate = text[start:end]
        if match.group(1)[0] == ".":
            last_word = candidate[:-1].rsplit(None, 1)[-1] if candidate[:-1].strip() else ""
            word = last_word.lower().lstrip("(\"'")
            following = text[match.end() : match.end() + 1]
            if word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha()):
                continue
            if following and following.islower():
                continue  # "approx. three weeks" – a lower-case start continues the sentence
        if candidate.strip():
            sentences.append(candidate.strip())
        start = match.end()
    rest = text[start:].strip()
    if rest:
        sentences.append(rest)
    return [clause for sentence in sentences for clause in _clauses(sentence)]


def _clauses(sentence: str) -> list[str]:
    parts = _CONTRAST.split(sentence)  # clause, separator, clause, separator, …
    if len(parts) == 1:
        return parts
    clauses = [parts[0]]
    for separator, part in zip(parts[1::2], parts[2::2], strict=True):
        # A clause too short to judge on its own ("but still", "though") stays where it was.
        if (
            len(part.split()) < _MIN_CLAUSE_WORDS + 1
            or len(clauses[-1].split()) < _MIN_CLAUSE_WORDS
        ):
            clauses[-1] = f"{clauses[-1]}{separator}{part}"
        else:
            clauses.append(part)
    return [c.strip() for c in clauses if c.strip()]


@lru_cache(maxsize=1)
def analyzer() -> FastVader:
    """One analyzer per process (building one reads the lexicon, 10–17 ms), with the domain
    words of ``config/lexicon.yaml`` added. FastVader gives vaderSentiment's exact scores,
    about three times faster (tests/test_vader_identical.py, bench/vader.py)."""
    return FastVader(extra_lexicon=domain_lexicon())


def domain_lexicon() -> dict[str, float]:
    entries = read_yaml(LEXICON.read_text(encoding="utf-8")) or {}
    return {str(word).lower(): float(valence) for word, valence in entries.items()}


def rating_disagrees(rating: float | None, compound: float | None) -> bool:
    if rating is None or compound is None:
        return False
    return (rating >= _HIGH_RATING and compound <= -_DISAGREEMENT_TEXT) or (
        rating <= _LOW_RATING and compound >= _DISAGREEMENT_TEXT
    )


def score_text(text: str, language: str = "en", rating: float | None = None) -> Sentiment:
    """VADER scores for the whole text and for each sentence."""
    if language not in SCORED_LANGUAGES:
        sentences = tuple(
            Sentence(i, s, 0.0, UNSUPPORTED) for i, s in enumerate(split_sentences(text))
        )
        return Sentiment(None, None, None, None, UNSUPPORTED, sentences)
    pieces = split_sentences(text)
    whole, compounds = analyzer().scores_with_sentences(text, pieces)
    sentences = tuple(
        Sentence(i, s, c, label_for(c))
        for i, (s, c) in enumerate(zip(pieces, compounds, strict=True))
    )
    compound = whole["compound"]
    return Sentiment(
        compound=compound,
        positive=whole["pos"],
        neutral=whole["neu"],
        negative=whole["neg"],
        label=label_for(compound),
        sentences=sentences,
        rating_disagrees=rating_disagrees(rating, compound),
    )
