"""Pipeline step: which moment of truth each sentence of a mention is about.

The taxonomy is data (``config/touchpoints.yaml``); this module loads it, applies a business's own
changes, and matches stemmed phrases sentence by sentence so that "the bike was great but the
delivery was late" gives product quality (+) and delivery (−), each with its evidence.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import Stemmer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.config import DEFAULT_TAXONOMY, Config, ConfigError, TouchpointChanges
from monitor.learning import LearnedModel, load_model
from monitor.sentiment import UNSUPPORTED, Sentence, Sentiment, label_for

UNCLASSIFIED = "unclassified"
EMPLOYEE_TOUCHPOINT = "employee_experience"
# Below this confidence the evidence is too thin to name a touchpoint: "unclassified" is more
# honest than a guess.
MIN_CONFIDENCE = 0.35
# People open with what a mention is about ("Delivery was a shambles. Staff were nice though."):
# evidence in the first sentence counts half as much again when choosing the primary touchpoint
# (dev half of the evaluation set: macro F1 0.572 → 0.598).
OPENING_WEIGHT = 1.5
# With learned weights: a touchpoint needs this probability (softmax over all touchpoints and
# "unclassified") to be named for the mention, and a sentence needs this much to be counted
# behind a secondary touchpoint.
MIN_PROBABILITY = 0.1
MIN_SENTENCE_PROBABILITY = 0.4
_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TouchpointSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    label: str
    description: str = ""
    phrases: dict[str, float]
    negative_cues: list[str] = []
    stage: str | None = None


class StageSpec(_Strict):
    id: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    label: str
    touchpoints: list[TouchpointSpec]


class TaxonomySpec(_Strict):
    version: int = 1
    threshold: Annotated[float, Field(gt=0)] = 1.0
    learned: str | None = None
    phrase_weight: Annotated[float, Field(ge=0)] = 0.5
    stages: Annotated[list[StageSpec], Field(min_length=1)]
    first_impression: list[str] = []


@dataclass(frozen=True)
class Touchpoint:
    id: str
    label: str
    stage: str
    description: str
    phrases: dict[str, float]
    negative_cues: tuple[str, ...]


@dataclass(frozen=True)
class Stage:
    id: str
    label: str
    touchpoints: tuple[Touchpoint, ...]


@dataclass(frozen=True)
class Assignment:
    touchpoint: str
    rank: int
    """0 for the primary touchpoint, 1, 2 … for secondary ones."""
    confidence: float
    compound: float | None
    label: str
    evidence: list[dict[str, Any]] = field(default_factory=list)


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=8192)
def stems(text: str) -> tuple[str, ...]:
    """The Snowball stems of the words of ``text`` ("delivered", "delivering" → "deliv").

    Cached: a sentence is stemmed once for its touchpoints and once for first contact."""
    words = [w.replace("’", "'").removesuffix("'s") for w in _TOKEN.findall(text.lower())]
    return tuple(_stemmer().stemWords(words))


class Taxonomy:
    """The stages and touchpoints a business is measured on, and the phrase matcher they imply."""

    def __init__(
        self,
        stages: Sequence[Stage],
        threshold: float,
        first_impression: Sequence[str] = (),
        model: LearnedModel | None = None,
        phrase_weight: float = 0.5,
    ) -> None:
        self.stages = tuple(stages)
        self.threshold = threshold
        self.model = model
        self.phrase_weight = phrase_weight
        # first stem → the stemmed phrases starting with it
        self._first_contact: dict[str, list[tuple[str, ...]]] = {}
        for phrase in first_impression:
            stemmed = stems(phrase)
            if stemmed:
                self._first_contact.setdefault(stemmed[0], []).append(stemmed)
        self.touchpoints = {t.id: t for s in self.stages for t in s.touchpoints}
        # first stem → [(stems of the phrase, touchpoint id, weight, phrase, is_cue)]
        self._index: dict[str, list[tuple[tuple[str, ...], str, float, str, bool]]] = {}
        for touchpoint in self.touchpoints.values():
            for phrase, weight in touchpoint.phrases.items():
                self._add(phrase, touchpoint.id, weight, is_cue=False)
            for cue in touchpoint.negative_cues:
                self._add(cue, touchpoint.id, 0.0, is_cue=True)
        # With learned weights: the touchpoints a customer's mention can be about, and the
        # column of the weights that scores each. One the weights do not know scores as
        # "unclassified" (plus its phrases).
        self._candidates = [t for t in self.touchpoints if t != EMPLOYEE_TOUCHPOINT]
        self._candidates.append(UNCLASSIFIED)
        self._position = {t: i for i, t in enumerate(self._candidates)}
        if model is not None:
            known = model.touchpoints.index
            baseline = known.get(UNCLASSIFIED, 0)
            self._columns = np.array([known.get(t, baseline) for t in self._candidates])
            self._unknown = np.array([t not in known for t in self._candidates])
            self._floor_missing = UNCLASSIFIED not in known

    def _add(self, phrase: str, touchpoint: str, weight: float, *, is_cue: bool) -> None:
        key = tuple(stems(phrase))
        if key:
            self._index.setdefault(key[0], []).append((key, touchpoint, weight, phrase, is_cue))

    def is_first_impression(self, sentiment: Sentiment) -> bool:
        """Does the mention describe a first contact ("first visit", "never been before" …)?"""
        for sentence in sentiment.sentences:
            words = stems(sentence.text)
            for i, word in enumerate(words):
                for phrase in self._first_contact.get(word, ()):
                    if words[i : i + len(phrase)] == phrase:
                        return True
        return False

    def label(self, touchpoint_id: str) -> str:
        if touchpoint_id == UNCLASSIFIED:
            return "Unclassified"
        found = self.touchpoints.get(touchpoint_id)
        return found.label if found else touchpoint_id

    def stage_of(self, touchpoint_id: str) -> str | None:
        found = self.touchpoints.get(touchpoint_id)
        return found.stage if found else None

    def match_sentence(self, text: str) -> dict[str, tuple[float, list[str]]]:
        """Touchpoint → (summed weight, matched phrases) for one sentence, cues applied."""
        words = stems(text)
        scores: dict[str, float] = {}
        terms: dict[str, list[str]] = {}
        vetoed: set[str] = set()
        for i, word in enumerate(words):
            for key, touchpoint, weight, phrase, is_cue in self._index.get(word, ()):
                if words[i : i + len(key)] != key:
                    continue
                if is_cue:
                    vetoed.add(touchpoint)
                elif phrase not in terms.setdefault(touchpoint, []):
                    terms[touchpoint].append(phrase)
                    scores[touchpoint] = scores.get(touchpoint, 0.0) + weight
        return {
            t: (score, terms[t])
            for t, score in scores.items()
            if t not in vetoed and score >= self.threshold
        }

    def assign(self, sentiment: Sentiment, kind: str = "review") -> list[Assignment]:
        """Primary and secondary touchpoints of a mention, from its scored sentences."""
        if kind.startswith("employee") and EMPLOYEE_TOUCHPOINT in self.touchpoints:
            evidence = [{"sentence": None, "text": None, "terms": [f"source kind: {kind}"]}]
            return [
                self._assignment(
                    EMPLOYEE_TOUCHPOINT, 0, 1.0, sentiment.sentences, evidence, sentiment.compound
                )
            ]
        if self.model is not None:
            return self._assign_learned(sentiment, self.model)
        totals: dict[str, float] = {}
        behind: dict[str, list[Sentence]] = {}
        evidence_for: dict[str, list[dict[str, Any]]] = {}
        for sentence in sentiment.sentences:
            for touchpoint, (score, terms) in self.match_sentence(sentence.text).items():
                if touchpoint == EMPLOYEE_TOUCHPOINT:
                    continue  # employee experience comes from job boards, not customer wording
                weight = OPENING_WEIGHT if sentence.position == 0 else 1.0
                totals[touchpoint] = totals.get(touchpoint, 0.0) + score * weight
                behind.setdefault(touchpoint, []).append(sentence)
                evidence_for.setdefault(touchpoint, []).append(
                    {"sentence": sentence.position, "text": sentence.text, "terms": terms}
                )
        ranked = sorted(totals, key=lambda t: (-totals[t], t))
        grand_total = sum(totals.values())
        assignments: list[Assignment] = []
        for touchpoint in ranked:
            confidence = _confidence(totals[touchpoint], grand_total, self.threshold)
            if confidence < MIN_CONFIDENCE:
                continue
            assignments.append(
                self._assignment(
                    touchpoint,
                    len(assignments),
                    confidence,
                    behind[touchpoint],
                    evidence_for[touchpoint],
                    sentiment.compound,
                )
            )
        if not assignments:
            return [self._unclassified(sentiment)]
        return assignments

    def _assign_learned(self, sentiment: Sentiment, model: LearnedModel) -> list[Assignment]:
        """The learned weights plus ``phrase_weight`` × the phrase score, per touchpoint.

        The mention's words pick the primary touchpoint (the most probable of all, and
        "unclassified" when that is "unclassified" or below MIN_PROBABILITY); each sentence's
        own words pick the touchpoint it is behind, which makes the secondary ones. A
        touchpoint the weights do not know (a business's own) scores as "unclassified" plus
        its phrases, so its phrases alone decide whether it is named.
        """
        if not sentiment.sentences:
            return [self._unclassified(sentiment)]
        candidates = self._candidates
        learned = model.touchpoints
        matched = [self.match_sentence(s.text) for s in sentiment.sentences]
        both = [model.sentence_rows(stems(s.text)) for s in sentiment.sentences]
        rows = [touchpoint_rows for touchpoint_rows, _ in both]
        # Learned scores of every candidate: for the whole mention (first row), then each sentence.
        table = learned.sums([sorted(set().union(*rows)), *rows])[:, self._columns]
        if self._floor_missing:  # no "unclassified" class to stand in for unknown touchpoints
            table[:, self._unknown] = 0.0
        whole_scores, sentence_scores = table[0], table[1:]
        # Plus the phrases, the opening sentence's counting OPENING_WEIGHT times for the mention.
        position = self._position
        phrase_matched = False
        for i, (sentence, found) in enumerate(zip(sentiment.sentences, matched, strict=True)):
            weight = OPENING_WEIGHT if sentence.position == 0 else 1.0
            for touchpoint, (score, _terms) in found.items():
                column = position.get(touchpoint)
                if column is not None:
                    sentence_scores[i, column] += self.phrase_weight * score
                    whole_scores[column] += self.phrase_weight * score * weight
                    phrase_matched = True
        # A matched phrase is evidence: where there is one, "unclassified" is not an answer.
        if phrase_matched:
            table[0, position[UNCLASSIFIED]] = -np.inf
        probabilities = np.exp(table - table.max(axis=1, keepdims=True))
        probabilities /= probabilities.sum(axis=1, keepdims=True)
        whole = probabilities[0]
        # A sentence with matched phrases is behind the strongest of their touchpoints (the
        # learned weights decide between them); one without is behind the touchpoint its words
        # point to, when they point clearly enough.
        behind: dict[str, list[int]] = {}
        for i, found in enumerate(matched):
            columns = [position[t] for t in found if t in position]
            if columns:
                column = max(columns, key=lambda c: sentence_scores[i, c])
            else:
                column = int(probabilities[i + 1].argmax())
                if probabilities[i + 1, column] < MIN_SENTENCE_PROBABILITY:
                    continue
            behind.setdefault(candidates[column], []).append(i)
        primary = candidates[int(np.argmax(whole))]
        if primary == UNCLASSIFIED or whole.max() < MIN_PROBABILITY:
            return [self._unclassified(sentiment)]
        if primary not in behind:  # no sentence alone says it, all of them together do
            behind[primary] = [
                i for i in range(len(rows)) if not any(i in v for v in behind.values())
            ] or list(range(len(rows)))
        order = [
            primary,
            *sorted(
                (t for t in behind if t not in (primary, UNCLASSIFIED)),
                key=lambda t: -whole[position[t]],
            ),
        ]
        # Evidence: the phrases matched, then the learned words that carried each sentence most.
        pairs = [(t, i) for t in order for i in behind[t]]
        carried = learned.strongest(
            [rows[i] for _, i in pairs], [learned.index.get(t) for t, _ in pairs]
        )
        terms = {
            pair: list(dict.fromkeys([*matched[pair[1]].get(pair[0], (0.0, []))[1], *words]))
            for pair, words in zip(pairs, carried, strict=True)
        }
        feelings = _learned_feelings(
            model, [[(sentiment.sentences[i], both[i][1]) for i in behind[t]] for t in order]
        )
        assignments = []
        for rank, (touchpoint, feeling) in enumerate(zip(order, feelings, strict=True)):
            evidence = [
                {
                    "sentence": sentiment.sentences[i].position,
                    "text": sentiment.sentences[i].text,
                    "terms": terms[touchpoint, i],
                }
                for i in behind[touchpoint]
            ]
            # How sure the judgement is: for the mention as a whole, or for the sentence that
            # says it most clearly (a secondary touchpoint is rarely likely for the whole).
            column = position[touchpoint]
            confidence = round(
                max(
                    float(whole[column]),
                    *(float(probabilities[i + 1, column]) for i in behind[touchpoint]),
                ),
                3,
            )
            polarity, label = feeling or (None, UNSUPPORTED)  # None: another language
            assignments.append(Assignment(touchpoint, rank, confidence, polarity, label, evidence))
        return assignments

    def _assignment(
        self,
        touchpoint: str,
        rank: int,
        confidence: float,
        sentences: Sequence[Sentence],
        evidence: list[dict[str, Any]],
        whole: float | None = None,
    ) -> Assignment:
        """The touchpoint's feeling is that of its own sentences. With learned weights it is
        read from their words and VADER compound together; without, it is VADER's, and where
        their VADER says nothing either way (a plain "waited 45 minutes past my
        appointment"), the mention's overall VADER compound stands in, as a reader would take
        it from the context."""
        if self.model is not None:
            model = self.model
            (feeling,) = _learned_feelings(
                model, [[(s, model.sentence_rows(stems(s.text))[1]) for s in sentences]]
            )
            polarity, label = feeling or (None, UNSUPPORTED)
            return Assignment(touchpoint, rank, confidence, polarity, label, evidence)
        scored = [s for s in sentences if s.label != UNSUPPORTED]
        if not scored:
            return Assignment(touchpoint, rank, confidence, None, UNSUPPORTED, evidence)
        compound = round(sum(s.compound for s in scored) / len(scored), 4)
        if whole is not None and label_for(compound) == "neutral":
            compound = round(whole, 4)
        return Assignment(touchpoint, rank, confidence, compound, label_for(compound), evidence)

    def _unclassified(self, sentiment: Sentiment) -> Assignment:
        evidence: list[dict[str, Any]] = [{"sentence": None, "text": None, "terms": []}]
        if self.model is None:  # the mention's own VADER score
            return Assignment(UNCLASSIFIED, 0, 0.0, sentiment.compound, sentiment.label, evidence)
        return self._assignment(UNCLASSIFIED, 0, 0.0, sentiment.sentences, evidence)


def _learned_feelings(
    model: LearnedModel, groups: Sequence[Sequence[tuple[Sentence, Sequence[int]]]]
) -> list[tuple[float, str] | None]:
    """The feeling (polarity, label) of each group of sentences, given with their
    sentiment-weight rows, from their words and mean VADER compound together; None for a group
    with no sentence in a scored language."""
    scored = [[(s, r) for s, r in group if s.label != UNSUPPORTED] for group in groups]
    present = [group for group in scored if group]
    feelings = iter(
        model.feelings(
            [sorted({row for _, rows in group for row in rows}) for group in present],
            [sum(s.compound for s, _ in group) / len(group) for group in present],
        )
    )
    return [next(feelings) if group else None for group in scored]


def _confidence(score: float, grand_total: float, threshold: float) -> float:
    """Strength of the evidence (saturating in the summed weight) times its share of all evidence."""
    strength = 1.0 - math.exp(-score / threshold)
    share = score / grand_total if grand_total else 0.0
    return round(strength * (0.5 + 0.5 * share), 3)


def _read_spec(path: Path) -> TaxonomySpec:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such taxonomy file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return TaxonomySpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None


def build_taxonomy(
    spec: TaxonomySpec,
    changes: TouchpointChanges,
    origin: str,
    spec_dir: Path = DEFAULT_TAXONOMY.parent,
) -> Taxonomy:
    """The default taxonomy with a business's additions, renames and removals applied."""
    known = {t.id for s in spec.stages for t in s.touchpoints}
    for touchpoint_id in [*changes.rename, *changes.remove]:
        if touchpoint_id not in known:
            raise ConfigError(
                f"{origin}: touchpoints: unknown touchpoint {touchpoint_id!r} "
                f"(expected one of: {', '.join(sorted(known))})"
            )
    stage_ids = [s.id for s in spec.stages]
    added: dict[str, list[TouchpointSpec]] = {}
    for i, item in enumerate(changes.add):
        try:
            extra = TouchpointSpec.model_validate(item)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(f"{origin}: touchpoints.add[{i}]: {problems}") from None
        if extra.stage not in stage_ids:
            raise ConfigError(
                f"{origin}: touchpoints.add[{i}].stage: {extra.stage!r} is not a stage "
                f"(expected one of: {', '.join(stage_ids)})"
            )
        if extra.id in known:
            raise ConfigError(f"{origin}: touchpoints.add[{i}].id: {extra.id!r} already exists")
        added.setdefault(extra.stage, []).append(extra)
    stages = []
    for stage in spec.stages:
        members = [
            Touchpoint(
                id=t.id,
                label=changes.rename.get(t.id, t.label),
                stage=stage.id,
                description=t.description,
                phrases=dict(t.phrases),
                negative_cues=tuple(t.negative_cues),
            )
            for t in [*stage.touchpoints, *added.get(stage.id, [])]
            if t.id not in changes.remove
        ]
        stages.append(Stage(stage.id, stage.label, tuple(members)))
    model = None
    if spec.learned and changes.learned:
        try:
            model = load_model(spec_dir / spec.learned)
        except FileNotFoundError:
            raise ConfigError(
                f"{origin}: learned: no such file {spec_dir / spec.learned}"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{spec_dir / spec.learned}: not learned weights ({exc})") from None
    return Taxonomy(stages, spec.threshold, spec.first_impression, model, spec.phrase_weight)


def load_taxonomy(config: Config | None = None, phrases_only: bool = False) -> Taxonomy:
    """The taxonomy a config asks for: its own file or the default, with its changes applied
    (``phrases_only``: without its learned weights, whatever the config says)."""
    changes = config.touchpoints if config else TouchpointChanges()
    if phrases_only:
        changes = changes.model_copy(update={"learned": False})
    path = DEFAULT_TAXONOMY
    if config is not None and changes.taxonomy:
        path = config.resolve(changes.taxonomy)
    origin = str(config.path) if config and config.path else str(path)
    return build_taxonomy(_read_spec(path), changes, origin, path.parent)
