"""Sentiment step of the pipeline: VADER polarity scores, about three times faster than upstream.

A faithful re-implementation of ``SentimentIntensityAnalyzer.polarity_scores`` from vaderSentiment
3.3.2 (C.J. Hutto, MIT licence), reading the lexicon and emoji files shipped with that package.
"""

from __future__ import annotations

import math
import string
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources

from vaderSentiment.vaderSentiment import BOOSTER_DICT, C_INCR, N_SCALAR, NEGATE, SPECIAL_CASES

# The rule tables come from the installed package itself, so they cannot drift from the upstream
# whose output the tests compare against.
_BOOSTERS: dict[str, float] = dict(BOOSTER_DICT)
_SPECIAL_CASES: dict[str, float] = dict(SPECIAL_CASES)
_NEGATIONS: frozenset[str] = frozenset(NEGATE)
_PUNCTUATION = string.punctuation

_PACKAGE = "vaderSentiment"
_LEXICON_FILE = "vader_lexicon.txt"
_EMOJI_FILE = "emoji_utf8_lexicon.txt"

# Upstream multiplies a booster's effect by these when it sits two or three words before the word.
_DAMPING_TWO_BACK = 0.95
_DAMPING_THREE_BACK = 0.9
# Upstream's weights for contrastive "but": what comes before counts half, what follows 1.5 times.
_BEFORE_BUT = 0.5
_AFTER_BUT = 1.5


def _read_table(filename: str) -> list[tuple[str, str]]:
    """The first two tab-separated fields of each line of one of the package's data files."""
    # Decode the bytes ourselves as upstream's codecs.open does: no newline translation, so lines
    # split exactly where upstream splits them (the emoji file has CRLF endings).
    content = resources.files(_PACKAGE).joinpath(filename).read_bytes().decode("utf-8")
    rows = []
    for line in content.rstrip("\n").split("\n"):
        if not line:
            continue
        key, value = line.strip().split("\t")[0:2]
        rows.append((key, value))
    return rows


@lru_cache(maxsize=1)
def _shipped_lexicon() -> dict[str, float]:
    """Word → valence as upstream's ``make_lex_dict`` builds it (read once per process)."""
    # Keys are kept verbatim: upstream never lower-cases them, so its 14 mixed-case keys (":D",
    # "O_o") can never match a lower-cased token; lowering them would make them match.
    return {word: float(measure) for word, measure in _read_table(_LEXICON_FILE)}


@lru_cache(maxsize=1)
def _single_character_emojis() -> dict[str, str]:
    """Emoji → description, only for the emojis upstream can ever replace."""
    # Upstream tests each character of the text against its emoji dict, so only one-character keys
    # can match; a multi-codepoint emoji (👍🏽, flags) is replaced piece by piece, or not at all.
    return {emoji: text for emoji, text in _read_table(_EMOJI_FILE) if len(emoji) == 1}


def _is_negation(word_lower: str) -> bool:
    # Upstream lower-cases the already lower-cased word again; str.lower is idempotent (checked for
    # every code point), so one lower() is enough for identical output.
    return word_lower in _NEGATIONS or "n't" in word_lower


def _tokens(raw: list[str]) -> list[str]:
    """The whitespace-separated pieces of a text with surrounding punctuation removed, as
    upstream's SentiText."""
    # When stripping leaves two characters or fewer upstream keeps the raw token, so that
    # emoticons such as ":)" survive (and "ok!" keeps its "!"): identical output.
    return [token if len(stripped := token.strip(_PUNCTUATION)) <= 2 else stripped for token in raw]


def _booster_scalar(token: str, token_lower: str, valence: float, is_cap_diff: bool) -> float:
    """How much a booster or dampener before a sentiment word moves its valence (upstream's
    ``scalar_inc_dec``)."""
    scalar = 0.0
    if token_lower in _BOOSTERS:
        scalar = _BOOSTERS[token_lower]
        if valence < 0:
            scalar *= -1
        # a booster in capitals among lower-case words pushes further
        if token.isupper() and is_cap_diff:
            if valence > 0:
                scalar += C_INCR
            else:
                scalar -= C_INCR
    return scalar


def _negation_check(valence: float, lowered: list[str], distance: int, i: int) -> float:
    """Flip or strengthen the valence for a negator (or "never so") ``distance`` words back."""
    if distance == 1:
        if _is_negation(lowered[i - 1]):
            valence = valence * N_SCALAR
    elif distance == 2:
        if lowered[i - 2] == "never" and lowered[i - 1] in ("so", "this"):
            valence = valence * 1.25
        elif lowered[i - 2] == "without" and lowered[i - 1] == "doubt":
            pass
        elif _is_negation(lowered[i - 2]):
            valence = valence * N_SCALAR
    else:
        # Upstream writes `a and b or c`, which groups as `(a and b) or c`: any "so"/"this" right
        # before the word boosts it here even without "never": identical output.
        if (lowered[i - 3] == "never" and lowered[i - 2] in ("so", "this")) or lowered[i - 1] in (
            "so",
            "this",
        ):
            valence = valence * 1.25
        elif lowered[i - 3] == "without" and (
            lowered[i - 2] == "doubt" or lowered[i - 1] == "doubt"
        ):
            pass
        elif _is_negation(lowered[i - 3]):
            valence = valence * N_SCALAR
    return valence


def _special_idioms_check(valence: float, lowered: list[str], i: int) -> float:
    """Idioms around the word ("the bomb", "yeah right") and two-word dampeners ("kind of")."""
    # Only reached three words in (i > 2), so the negative indices upstream would allow never occur.
    one_zero = f"{lowered[i - 1]} {lowered[i]}"
    two_one_zero = f"{lowered[i - 2]} {lowered[i - 1]} {lowered[i]}"
    two_one = f"{lowered[i - 2]} {lowered[i - 1]}"
    three_two_one = f"{lowered[i - 3]} {lowered[i - 2]} {lowered[i - 1]}"
    three_two = f"{lowered[i - 3]} {lowered[i - 2]}"
    for sequence in (one_zero, two_one_zero, two_one, three_two_one, three_two):
        if sequence in _SPECIAL_CASES:
            valence = _SPECIAL_CASES[sequence]
            break
    # An idiom starting at the word overrides one ending at it, in upstream's order.
    if len(lowered) - 1 > i:
        zero_one = f"{lowered[i]} {lowered[i + 1]}"
        if zero_one in _SPECIAL_CASES:
            valence = _SPECIAL_CASES[zero_one]
    if len(lowered) - 1 > i + 1:
        zero_one_two = f"{lowered[i]} {lowered[i + 1]} {lowered[i + 2]}"
        if zero_one_two in _SPECIAL_CASES:
            valence = _SPECIAL_CASES[zero_one_two]
    for n_gram in (three_two_one, three_two, two_one):
        if n_gram in _BOOSTERS:
            valence = valence + _BOOSTERS[n_gram]
    return valence


def _but_check(sentiments: list[float], but_index: int) -> None:
    """Halve the scores before the first "but" and weigh those after it 1.5 times, in place."""
    # Upstream finds each score's position by value (list.index) while rewriting the list, so a
    # score equal to an earlier one rescales that earlier position again (and its own position is
    # left alone): copied literally for identical output.
    for sentiment in sentiments:
        position = sentiments.index(sentiment)
        if position < but_index:
            sentiments[position] = sentiment * _BEFORE_BUT
        elif position > but_index:
            sentiments[position] = sentiment * _AFTER_BUT


def _punctuation_emphasis(text: str) -> float:
    # Upstream's empirically derived boosts: 0.292 per "!" (at most 4), and for two or more "?"
    # 0.18 each up to three, 0.96 beyond.
    exclamation_boost = min(text.count("!"), 4) * 0.292
    question_count = text.count("?")
    question_boost: float = 0
    if question_count > 1:
        question_boost = question_count * 0.18 if question_count <= 3 else 0.96
    return exclamation_boost + question_boost


def _normalize(score: float, alpha: float = 15) -> float:
    """Map a sum of valences into [-1, 1]; alpha approximates the largest expected sum."""
    norm_score = score / math.sqrt((score * score) + alpha)
    if norm_score < -1.0:
        return -1.0
    if norm_score > 1.0:
        return 1.0
    return norm_score


def _compound(sentiments: list[float], amplifier: float) -> float:
    """The compound score, unrounded: the summed valence, pushed further from zero by the text's
    "!" and "?" (``amplifier``), normalised to −1 … +1."""
    sum_s = float(sum(sentiments))
    if sum_s > 0:
        sum_s += amplifier
    elif sum_s < 0:
        sum_s -= amplifier
    return _normalize(sum_s)


def _score_valence(sentiments: list[float], text: str) -> dict[str, float]:
    """The four numbers upstream returns, computed with the same float operations in order."""
    if not sentiments:
        return {"neg": 0.0, "neu": 0.0, "pos": 0.0, "compound": 0.0}
    amplifier = _punctuation_emphasis(text)
    compound = _compound(sentiments, amplifier)

    # Summed in upstream's order, over the positive and the negative scores alone (most words
    # score 0); the +1 / -1 compensate for neutral words, which count 1 each.
    positives = [score for score in sentiments if score > 0]
    negatives = [score for score in sentiments if score < 0]
    neu_count = len(sentiments) - len(positives) - len(negatives)  # valences are never NaN
    pos_sum = 0.0
    for score in positives:
        pos_sum += float(score) + 1
    neg_sum = 0.0
    for score in negatives:
        neg_sum += float(score) - 1
    if pos_sum > math.fabs(neg_sum):
        pos_sum += amplifier
    elif pos_sum < math.fabs(neg_sum):
        neg_sum -= amplifier

    total = pos_sum + math.fabs(neg_sum) + neu_count
    return {
        "neg": round(math.fabs(neg_sum / total), 3),
        "neu": round(math.fabs(neu_count / total), 3),
        "pos": round(math.fabs(pos_sum / total), 3),
        "compound": round(compound, 4),
    }


class FastVader:
    """VADER's ``polarity_scores`` with identical output, doing the per-text work only once.

    ``extra_lexicon`` adds or overrides entries (lower-case word → valence) exactly as
    ``analyzer.lexicon.update(extra_lexicon)`` would on upstream's analyzer. Like upstream, a key
    with capitals never matches, because tokens are lower-cased before lookup.
    """

    def __init__(self, extra_lexicon: Mapping[str, float] | None = None) -> None:
        lexicon = dict(_shipped_lexicon())
        if extra_lexicon is not None:
            lexicon.update(extra_lexicon)
        self._lexicon = lexicon
        self._emojis = _single_character_emojis()
        self._emoji_set = frozenset(self._emojis)
        # No emoji key is ASCII in 3.3.2; checked rather than assumed, so pure-ASCII text (most
        # of what we score) can skip the emoji pass without even a set lookup per character.
        self._ascii_text_has_no_emoji = not any(emoji.isascii() for emoji in self._emojis)

    def polarity_scores(self, text: str) -> dict[str, float]:
        """Negative, neutral and positive proportions and the compound score in [-1, 1]."""
        return self._scores(_Analysed(self._replace_emojis(text).strip()))

    def compound(self, text: str) -> float:
        """``polarity_scores(text)["compound"]`` alone, without working out the proportions."""
        return self._compound(_Analysed(self._replace_emojis(text).strip()))

    def scores_with_sentences(
        self, text: str, sentences: Sequence[str]
    ) -> tuple[dict[str, float], list[float]]:
        """``polarity_scores(text)`` and the ``compound`` of each of its ``sentences``, identical
        to asking for each alone. When the sentences are the text cut at whitespace (as
        ``split_sentences`` cuts it), the text's tokens are theirs and are not made again."""
        parts = [_Analysed(self._replace_emojis(s).strip()) for s in sentences]
        whole = _Analysed(self._replace_emojis(text).strip(), parts)
        return self._scores(whole), [self._compound(part) for part in parts]

    def _scores(self, text: _Analysed) -> dict[str, float]:
        return _score_valence(self._valences(text), text.text)

    def _compound(self, text: _Analysed) -> float:
        sentiments = self._valences(text)
        if not sentiments:
            return 0.0
        return round(_compound(sentiments, _punctuation_emphasis(text.text)), 4)

    def _valences(self, text: _Analysed) -> list[float]:
        """The valence of every token of ``text`` after VADER's rules."""
        tokens, lowered, is_cap_diff = text.tokens, text.lowered, text.is_cap_diff
        lexicon = self._lexicon
        last = len(tokens) - 1

        sentiments: list[float] = []
        append = sentiments.append
        for i, word in enumerate(lowered):
            # Upstream tests boosters and "kind of" before the lexicon; the tests have no side
            # effects, so asking first about the lexicon (which most words are not in) is the same.
            if (
                word not in lexicon
                or word in _BOOSTERS
                or (word == "kind" and i < last and lowered[i + 1] == "of")
            ):
                # Upstream appends the integer 0 for these; kept, although 0 and 0.0 score alike.
                append(0)
            else:
                append(self._word_valence(i, tokens, lowered, is_cap_diff))

        if "but" in lowered:
            _but_check(sentiments, lowered.index("but"))
        return sentiments

    def _replace_emojis(self, text: str) -> str:
        """Each emoji replaced by its description, as upstream does before tokenising."""
        if self._ascii_text_has_no_emoji and text.isascii():
            return text
        # A set test in C; a regex character class of 1,200 emojis was slower than upstream's loop.
        if self._emoji_set.isdisjoint(text):
            return text
        parts = []
        # Upstream puts a space before a description unless it starts the text or follows a
        # literal " " (other whitespace, or another emoji, still gets one), and never one after
        # it, so "😍good" becomes "smiling face with heart-eyesgood": identical output.
        previous = " "
        for character in text:
            description = self._emojis.get(character)
            if description is None:
                parts.append(character)
            else:
                if previous != " ":
                    parts.append(" ")
                parts.append(description)
            previous = character
        return "".join(parts)

    def _word_valence(
        self, i: int, tokens: list[str], lowered: list[str], is_cap_diff: bool
    ) -> float:
        """The valence of lexicon word ``i`` after upstream's rules for the words around it."""
        lexicon = self._lexicon
        word = lowered[i]
        valence = lexicon[word]

        # "no" right before another lexicon word negates that word instead of counting itself.
        if word == "no" and i != len(lowered) - 1 and lowered[i + 1] in lexicon:
            valence = 0.0
        if (
            (i > 0 and lowered[i - 1] == "no")
            or (i > 1 and lowered[i - 2] == "no")
            or (i > 2 and lowered[i - 3] == "no" and lowered[i - 1] in ("or", "nor"))
        ):
            valence = lexicon[word] * N_SCALAR

        # a word in capitals among lower-case words is emphasised
        if tokens[i].isupper() and is_cap_diff:
            if valence > 0:
                valence += C_INCR
            else:
                valence -= C_INCR

        for distance in (1, 2, 3):
            # Upstream only looks at a preceding word that is not itself in the lexicon, and runs
            # the negation and idiom rules only then too: identical output.
            if i < distance or lowered[i - distance] in lexicon:
                continue
            scalar = _booster_scalar(
                tokens[i - distance], lowered[i - distance], valence, is_cap_diff
            )
            if distance == 2 and scalar != 0:
                scalar = scalar * _DAMPING_TWO_BACK
            if distance == 3 and scalar != 0:
                scalar = scalar * _DAMPING_THREE_BACK
            valence = valence + scalar
            valence = _negation_check(valence, lowered, distance, i)
            if distance == 3:
                valence = _special_idioms_check(valence, lowered, i)

        return self._least_check(valence, lowered, i)

    def _least_check(self, valence: float, lowered: list[str], i: int) -> float:
        """A "least" before the word negates it, unless it reads "at least" or "very least"."""
        # Upstream skips this when "least" is itself a lexicon word (possible via extra_lexicon).
        if i > 1 and lowered[i - 1] not in self._lexicon and lowered[i - 1] == "least":
            if lowered[i - 2] != "at" and lowered[i - 2] != "very":
                valence = valence * N_SCALAR
        elif i > 0 and lowered[i - 1] not in self._lexicon and lowered[i - 1] == "least":
            valence = valence * N_SCALAR
        return valence


class _Analysed:
    """A text (emojis replaced, stripped) as VADER reads it: its tokens, lower-cased, and
    whether capitals signal emphasis in it (some but not all tokens in capitals).

    Given ``tiles`` whose whitespace-separated pieces are, in order, exactly the text's, the
    tokens are theirs, made per piece, rather than made again."""

    __slots__ = ("capitals", "is_cap_diff", "lowered", "raw", "text", "tokens")

    tokens: list[str]
    lowered: list[str]
    capitals: int

    def __init__(self, text: str, tiles: Sequence[_Analysed] = ()) -> None:
        self.text = text
        self.raw = text.split()
        if tiles and self.raw == [raw for tile in tiles for raw in tile.raw]:
            self.tokens = [token for tile in tiles for token in tile.tokens]
            self.lowered = [word for tile in tiles for word in tile.lowered]
            self.capitals = sum(tile.capitals for tile in tiles)
        else:
            self.tokens = _tokens(self.raw)
            self.lowered = [token.lower() for token in self.tokens]
            self.capitals = sum(map(str.isupper, self.tokens))
        self.is_cap_diff = 0 < len(self.tokens) - self.capitals < len(self.tokens)
