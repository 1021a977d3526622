"""Weights learned from labelled mentions: which touchpoint a text is about, and how it feels.

The phrase lists of ``config/touchpoints.yaml`` catch what their authors thought of; customers
say the same things in many more ways ("sat there 40 minutes before anyone came over" is about
waiting without a single listed phrase). ``monitor learn`` fits two linear models on labelled
mentions (scikit-learn's logistic regression) and writes their weights as data,
``config/learned.npz`` (numpy arrays; a ``.json`` file of the same weights is read and written
too, for people who want to read them):

- **touchpoints**: a weight per touchpoint for every stemmed word and word pair ("deliv",
  "sat there") that the labelled mentions taught it. A sentence's evidence for a touchpoint is
  its bias plus the weights of its words; the taxonomy's phrase score is added on top (see
  ``monitor.touchpoints``), so hand-written phrases still count, and a business's own
  touchpoints, which the model has never seen, are matched by their phrases alone.
- **sentiment**: the feeling of the sentences behind one touchpoint, from their words *and*
  their VADER compound: VADER reads "waited 45 minutes" as neutral, people do not.

Scoring needs only these weights (numpy); fitting them needs scikit-learn (the ``learn`` extra).
Every number is inspectable: the evidence stored with each assignment names the words that
carried it.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import zipfile
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from monitor.sentiment import NEGATIVE_THRESHOLD, POSITIVE_THRESHOLD, score_text

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "config" / "learned.npz"
SENTIMENTS = ("negative", "neutral", "positive")
FORMAT_VERSION = 1
# VADER's compound enters the sentiment model as these features, scaled so that L2
# regularisation does not drown one number among thousands of word features.
_VADER_SCALE = 3.0
_VADER_FEATURES = ("vader:compound", "vader:positive", "vader:negative", "vader:neutral")
# Weights are kept to three decimals in either file: in the .npz file as whole thousandths
# (integers), which read back as exactly the floats the .json file's decimals give.
_DECIMALS = 3
_THOUSANDTHS = 10**_DECIMALS
# Weights smaller than this (in every class) are left out of the file: they barely move a
# decision and would double its size.
_PRUNE_BELOW = 0.05
# A learned word is shown as evidence for a touchpoint when its weight for it is at least this.
_EVIDENCE_WEIGHT = 0.5
# A word or word pair must occur in this many labelled mentions to get a weight: one seen once
# teaches little and most pairs are seen once.
_MIN_MENTIONS = 2


def features(words: Sequence[str]) -> set[str]:
    """Stemmed words and adjacent word pairs of one sentence."""
    found = set(words)
    found.update(map(" ".join, itertools.pairwise(words)))
    return found


def vader_columns(compounds: Sequence[float]) -> Any:
    """VADER compounds as the sentiment model's features, one row each, in the order of
    ``_VADER_FEATURES``: the compound, its positive part, its negative part, and whether VADER
    calls it neutral."""
    c = np.asarray(compounds, dtype=np.float64)
    neutral = (c > NEGATIVE_THRESHOLD) & (c < POSITIVE_THRESHOLD)
    return _VADER_SCALE * np.column_stack([c, np.maximum(c, 0.0), np.minimum(c, 0.0), neutral])


class LinearModel:
    """Class scores as bias + the sum of the weights of the features present (softmax on top)."""

    def __init__(
        self, classes: Sequence[str], bias: Sequence[float], names: Sequence[str], weights: Any
    ) -> None:
        """``weights``: one row per feature of ``names``, one column per class."""
        self.classes = tuple(classes)
        self.index = {c: i for i, c in enumerate(self.classes)}
        self.bias = np.asarray(bias, dtype=np.float64)
        self.names = list(names)
        self.vocabulary = {feature: i for i, feature in enumerate(self.names)}
        # One row per feature, and a last row of zeros: every group of rows summed by
        # ``sums`` gets it, so an empty group needs no special case.
        self.zero = len(self.names)
        self.matrix = np.zeros((self.zero + 1, len(self.classes)))
        self.matrix[: self.zero] = np.asarray(weights, dtype=np.float64).reshape(
            self.zero, len(self.classes)
        )

    @classmethod
    def from_weights(
        cls, classes: Sequence[str], bias: Sequence[float], weights: dict[str, Sequence[float]]
    ) -> LinearModel:
        """From feature → its weight for each class."""
        return cls(classes, bias, list(weights), list(weights.values()))

    def rows(self, present: Iterable[str]) -> list[int]:
        """The rows of the weight matrix of the features ``present`` that have weights."""
        vocabulary = self.vocabulary
        return [vocabulary[f] for f in present if f in vocabulary]

    def sums(self, groups: Sequence[Sequence[int]]) -> Any:
        """Bias + summed rows, for each group of rows at once: an array of groups × classes."""
        flat: list[int] = []
        starts = []
        for group in groups:
            starts.append(len(flat))
            flat.extend(group)
            flat.append(self.zero)
        return self.bias + np.add.reduceat(self.matrix[flat], starts, axis=0)

    def scores(self, present: Iterable[str]) -> Any:
        """Bias + weights of the binary features ``present``."""
        return self.sums([self.rows(present)])[0]

    def strongest(
        self,
        groups: Sequence[Sequence[int]],
        columns: Sequence[int | None],
        top: int = 4,
        least: float = _EVIDENCE_WEIGHT,
    ) -> list[list[str]]:
        """For each group of rows, the features that pushed hardest towards its class column
        (None: no class of ours): the evidence shown to people, so only those of weight
        ``least`` or more ("the", "was" carry a little)."""
        flat_rows = [
            r for group, c in zip(groups, columns, strict=True) if c is not None for r in group
        ]
        flat_columns = [
            c for group, c in zip(groups, columns, strict=True) if c is not None for _ in group
        ]
        weights = self.matrix[flat_rows, flat_columns].tolist() if flat_rows else []
        found: list[list[str]] = []
        at = 0
        for group, column in zip(groups, columns, strict=True):
            if column is None:
                found.append([])
                continue
            ranked = sorted(zip(weights[at : at + len(group)], group, strict=True), reverse=True)
            at += len(group)
            found.append([self.names[row] for weight, row in ranked[:top] if weight >= least])
        return found

    def to_json(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "bias": [round(float(b), _DECIMALS) for b in self.bias],
            "weights": {
                feature: [round(w, _DECIMALS) for w in self.matrix[row].tolist()]
                for feature, row in self.vocabulary.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LinearModel:
        return cls.from_weights(data["classes"], data["bias"], data["weights"])

    def to_arrays(self, prefix: str) -> dict[str, Any]:
        """The arrays of the .npz file, named ``prefix``_…: the weights as whole thousandths."""
        weights = np.rint(self.matrix[: self.zero] * _THOUSANDTHS)
        largest = float(np.abs(weights).max()) if weights.size else 0.0
        return {
            f"{prefix}_classes": _joined(self.classes),
            f"{prefix}_bias": np.round(self.bias, _DECIMALS),
            f"{prefix}_names": _joined(self.names),
            f"{prefix}_thousandths": weights.astype(
                np.int16 if largest <= np.iinfo(np.int16).max else np.int32
            ),
        }

    @classmethod
    def from_arrays(cls, arrays: Any, prefix: str) -> LinearModel:
        return cls(
            _split(arrays[f"{prefix}_classes"]),
            arrays[f"{prefix}_bias"],
            _split(arrays[f"{prefix}_names"]),
            arrays[f"{prefix}_thousandths"] / _THOUSANDTHS,
        )


def _joined(strings: Sequence[str]) -> Any:
    """Strings as one array of UTF-8 bytes, a line each: a fraction of the size and load time of
    a numpy string array (whose every item is as long as the longest)."""
    if any("\n" in s for s in strings):
        raise ValueError("a feature name holds a line break")
    return np.frombuffer("\n".join(strings).encode("utf-8"), dtype=np.uint8)


def _split(data: Any) -> list[str]:
    text = data.tobytes().decode("utf-8")
    return text.split("\n") if text else []


@dataclass
class LearnedModel:
    touchpoints: LinearModel
    sentiment: LinearModel
    trained_on: dict[str, Any]

    def __post_init__(self) -> None:
        zero_t, zero_s = self.touchpoints.zero, self.sentiment.zero
        # The sentiment weights of the VADER features, in the order of ``vader_columns``.
        self._vader_weights = self.sentiment.matrix[
            [self.sentiment.vocabulary.get(f, zero_s) for f in _VADER_FEATURES]
        ]
        # feature → (row of the touchpoint weights, row of the sentiment weights), either one
        # the zero row where that model has no weight for it: one lookup serves both. Words are
        # looked up by themselves, word pairs by their first word and then their second (no
        # joining, no tuples).
        self._word_rows: dict[str, tuple[int, int]] = {}
        self._pair_rows: dict[str, dict[str, tuple[int, int]]] = {}
        for f in {*self.touchpoints.vocabulary, *self.sentiment.vocabulary}:
            rows = (
                self.touchpoints.vocabulary.get(f, zero_t),
                self.sentiment.vocabulary.get(f, zero_s),
            )
            if " " in f:
                first, second = f.split(" ")
                self._pair_rows.setdefault(first, {})[second] = rows
            else:
                self._word_rows[f] = rows

    def sentence_rows(self, words: Sequence[str]) -> tuple[list[int], list[int]]:
        """Rows of the touchpoint weights and of the sentiment weights for one sentence's stems
        (those of its ``features``)."""
        # In the order the words and pairs first occur, each once: the sums then add the same
        # rows in the same order in every process, whatever its hash seed.
        found = [r for r in map(self._word_rows.get, dict.fromkeys(words)) if r is not None]
        pair_rows = self._pair_rows
        pairs = [
            rows
            for first, second in itertools.pairwise(words)
            if (following := pair_rows.get(first)) is not None
            and (rows := following.get(second)) is not None
        ]
        found += dict.fromkeys(pairs)
        return [t for t, _ in found], [s for _, s in found]

    def feelings(
        self, groups: Sequence[Sequence[int]], compounds: Sequence[float]
    ) -> list[tuple[float, str]]:
        """(polarity −1 … +1 = P(positive) − P(negative), label) for each group of sentences,
        given by its sentiment-weight rows and its sentences' mean VADER compound."""
        if not groups:
            return []
        model = self.sentiment
        scores = model.sums(groups) + vader_columns(compounds) @ self._vader_weights
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        probabilities = (scores / scores.sum(axis=1, keepdims=True)).tolist()
        positive, negative = model.index["positive"], model.index["negative"]
        return [
            (round(p[positive] - p[negative], 4), model.classes[p.index(max(p))])
            for p in probabilities
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "trained_on": self.trained_on,
            "touchpoints": self.touchpoints.to_json(),
            "sentiment": self.sentiment.to_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedModel:
        _check_format(data.get("format"))
        return cls(
            LinearModel.from_json(data["touchpoints"]),
            LinearModel.from_json(data["sentiment"]),
            data.get("trained_on", {}),
        )

    def save(self, path: Path) -> None:
        """Write the weights to ``path``: a .json file, else numpy's .npz."""
        if path.suffix == ".json":
            text = json.dumps(self.to_json(), separators=(",", ":")) + "\n"
            path.write_text(text, encoding="utf-8")
            return
        with path.open("wb") as out:  # as named: savez would add .npz to any other name
            np.savez_compressed(
                out,
                format=np.array(FORMAT_VERSION),
                trained_on=_joined([json.dumps(self.trained_on)]),
                **self.touchpoints.to_arrays("touchpoints"),
                **self.sentiment.to_arrays("sentiment"),
            )

    @classmethod
    def read(cls, path: Path) -> LearnedModel:
        """The weights ``save`` wrote. The .npz file loads in a tenth of the time of the .json
        one: every scoring process, every worker and every command that judges pays it."""
        if path.suffix == ".json":
            return cls.from_json(json.loads(path.read_text(encoding="utf-8")))
        try:
            arrays = np.load(path, allow_pickle=False)
        except (zipfile.BadZipFile, EOFError) as exc:  # numpy's own complaints are ValueErrors
            raise ValueError(f"not a numpy .npz file ({exc or 'empty'})") from None
        with arrays:
            _check_format(int(arrays["format"]))
            return cls(
                LinearModel.from_arrays(arrays, "touchpoints"),
                LinearModel.from_arrays(arrays, "sentiment"),
                json.loads(_split(arrays["trained_on"])[0]),
            )


def _check_format(found: Any) -> None:
    if found != FORMAT_VERSION:
        raise ValueError(f"learned weights of format {found!r}, expected {FORMAT_VERSION}")


@lru_cache(maxsize=4)
def load_model(path: Path = DEFAULT_MODEL) -> LearnedModel:
    return LearnedModel.read(path)


# --------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class Labelled:
    """One labelled mention, as in ``tests/data/touchpoints_*.jsonl``."""

    text: str
    source: str
    primary: str
    touchpoints: dict[str, str]
    split: str | None = None


def read_labelled(paths: Sequence[Path]) -> list[Labelled]:
    """Labelled mentions from JSON-lines files."""
    found = []
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                found.append(
                    Labelled(
                        text=str(item["text"]),
                        source=str(item.get("source", "review")),
                        primary=str(item["primary"]),
                        touchpoints={str(k): str(v) for k, v in item["touchpoints"].items()},
                        split=item.get("split"),
                    )
                )
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ValueError(f"{path}:{number}: not a labelled mention ({exc})") from None
    return found


def _sentence_words(text: str) -> list[tuple[tuple[str, ...], float]]:
    """(stems, VADER compound) of every sentence of ``text``."""
    from monitor.touchpoints import stems  # which imports this module

    return [(stems(s.text), s.compound) for s in score_text(text, "en").sentences]


def fit(
    examples: Sequence[Labelled],
    regularisation: float = 1.0,
    sentiment_regularisation: float = 1.0,
    sources: Sequence[Path] = (),
) -> LearnedModel:
    """Fit both models on ``examples`` (needs scikit-learn)."""
    try:
        from sklearn.feature_extraction import DictVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise RuntimeError(
            "fitting weights needs scikit-learn: pip install 'monitor[learn]'"
        ) from None

    parsed = [_sentence_words(e.text) for e in examples]

    # Touchpoints: one row per mention, its words and word pairs, labelled with its primary.
    present = [set().union(*(features(w) for w, _ in sentences)) for sentences in parsed]
    seen = Counter(f for found in present for f in found)
    common = {f for f, count in seen.items() if count >= _MIN_MENTIONS}
    rows = [dict.fromkeys(found & common, 1.0) for found in present]
    vectoriser = DictVectorizer()
    matrix = vectoriser.fit_transform(rows)
    classifier = LogisticRegression(C=regularisation, max_iter=5000)
    classifier.fit(matrix, [e.primary for e in examples])
    touchpoints = _linear(classifier, vectoriser.get_feature_names_out())

    # Sentiment: one row per labelled touchpoint, from the sentences behind it: all of them
    # when the mention is about one touchpoint; otherwise those whose best touchpoint it is.
    sentiment_rows, labels = [], []
    for example, sentences in zip(examples, parsed, strict=True):
        behind: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        if len(example.touchpoints) == 1:
            behind[next(iter(example.touchpoints))] = sentences
        else:
            for words, compound in sentences:
                scores = touchpoints.scores(features(words))
                order = np.argsort(-scores)
                for column in order:
                    best = touchpoints.classes[int(column)]
                    if best in example.touchpoints:
                        behind.setdefault(best, []).append((words, compound))
                        break
        for touchpoint, label in example.touchpoints.items():
            chosen = behind.get(touchpoint)
            if not chosen or label not in SENTIMENTS:
                continue
            row: dict[str, float] = dict.fromkeys(
                set().union(*(features(w) for w, _ in chosen)) & common, 1.0
            )
            mean = sum(c for _, c in chosen) / len(chosen)
            row.update(zip(_VADER_FEATURES, vader_columns([mean])[0].tolist(), strict=True))
            sentiment_rows.append(row)
            labels.append(label)
    sentiment_vectoriser = DictVectorizer()
    sentiment_matrix = sentiment_vectoriser.fit_transform(sentiment_rows)
    sentiment_classifier = LogisticRegression(C=sentiment_regularisation, max_iter=5000)
    sentiment_classifier.fit(sentiment_matrix, labels)
    sentiment = _linear(
        sentiment_classifier, sentiment_vectoriser.get_feature_names_out(), keep=_VADER_FEATURES
    )

    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.read_bytes())
    trained_on = {
        "files": [path.name for path in sources],
        "sha256": digest.hexdigest()[:16],
        "mentions": len(examples),
        "touchpoint_rows": len(rows),
        "sentiment_rows": len(sentiment_rows),
        "regularisation": regularisation,
        "sentiment_regularisation": sentiment_regularisation,
    }
    return LearnedModel(touchpoints, sentiment, trained_on)


def _linear(classifier: Any, names: Sequence[str], keep: Sequence[str] = ()) -> LinearModel:
    coefficients, bias = classifier.coef_, classifier.intercept_
    classes = [str(c) for c in classifier.classes_]
    if coefficients.shape[0] == 1:  # two classes: scikit-learn keeps one row, for the second
        coefficients = np.vstack([-coefficients[0], coefficients[0]])
        bias = np.array([-bias[0], bias[0]])
    weights = {
        str(name): coefficients[:, column].tolist()
        for column, name in enumerate(names)
        if name in keep or float(np.abs(coefficients[:, column]).max()) >= _PRUNE_BELOW
    }
    return LinearModel.from_weights(classes, bias.tolist(), weights)
