"""Pipeline step: which moment of truth each sentence of a mention is about.

The taxonomy is data (``config/touchpoints.yaml``); this module loads it, applies a business's own
changes, and matches stemmed phrases sentence by sentence so that "the bike was great but the
delivery was late" gives product quality (+) and delivery (−), each with its evidence.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, cast

import numpy as np
import Stemmer
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from monitor.config import (
    DEFAULT_TAXONOMY,
    Config,
    ConfigError,
    TouchpointChanges,
    read_yaml,
)
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
# ... and must be this much more probable than "unclassified": a near tie with "about nothing"
# ("Meh. It was fine I guess.": product quality 0.36, unclassified 0.35) is a guess. On
# cross-validation over the training mentions 0.05 costs 0.0005 of macro F1 (bench/RESULTS.md).
MIN_MARGIN = 0.05
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


# A phrase of the taxonomy: (its place in the taxonomy's order, its stems, touchpoint id, weight,
# the phrase, is it a negative cue)
_Phrase = tuple[int, tuple[str, ...], str, float, str, bool]


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


@lru_cache(maxsize=8192)
def stems(text: str) -> tuple[str, ...]:
    """The Snowball stems of the words of ``text`` ("delivered", "delivering" → "deliv").

    Cached: a sentence is stemmed once for its touchpoints and once for first contact."""
    words = _TOKEN.findall(text.lower().replace("’", "'"))
    found: list[str | None] = list(map(_STEM_OF.get, words))
    if None in found:
        if len(_STEM_OF) > _STEMS_KEPT:
            _STEM_OF.clear()  # new words (numbers, names, typos) never stop coming
        stemmer = _stemmer()
        found = [
            stem
            if stem is not None
            else _STEM_OF.setdefault(word, stemmer.stemWord(word.removesuffix("'s")))
            for stem, word in zip(found, words, strict=True)
        ]
    return cast(tuple[str, ...], tuple(found))


# Word → its stem, for the words seen lately: a dict lookup is half the cost of asking the
# stemmer again, and most words of a mention have been seen before.
_STEM_OF: dict[str, str] = {}
_STEMS_KEPT = 200_000


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
        self.phrase_weight = phrase_weight
        # first stem → the stemmed phrases starting with it
        self._first_contact: dict[str, list[tuple[str, ...]]] = {}
        for phrase in first_impression:
            stemmed = stems(phrase)
            if stemmed:
                self._first_contact.setdefault(stemmed[0], []).append(stemmed)
        self.touchpoints = {t.id: t for s in self.stages for t in s.touchpoints}
        # Phrases by their first stem (one-word phrases) or first two stems (longer ones):
        # [_Phrase], in the order given.
        self._words: dict[str, list[_Phrase]] = {}
        self._starts: dict[tuple[str, ...], list[_Phrase]] = {}
        self._starters: set[str] = set()  # the first stems of all phrases
        order = itertools.count()
        for touchpoint in self.touchpoints.values():
            for phrase, weight in touchpoint.phrases.items():
                self._add(next(order), phrase, touchpoint.id, weight, is_cue=False)
            for cue in touchpoint.negative_cues:
                self._add(next(order), cue, touchpoint.id, 0.0, is_cue=True)
        # With learned weights: the touchpoints a customer's mention can be about, and the
        # column of the weights that scores each. One the weights do not know scores as
        # "unclassified" (plus its phrases).
        self._candidates = [t for t in self.touchpoints if t != EMPLOYEE_TOUCHPOINT]
        self._candidates.append(UNCLASSIFIED)
        self._position = {t: i for i, t in enumerate(self._candidates)}
        self._use(model)

    def with_model(self, model: LearnedModel | None) -> Taxonomy:
        """This taxonomy with other learned weights (or none)."""
        other = copy.copy(self)
        other._use(model)
        return other

    def _use(self, model: LearnedModel | None) -> None:
        self.model = model
        if model is not None:
            known = model.touchpoints.index
            baseline = known.get(UNCLASSIFIED, 0)
            self._columns = np.array([known.get(t, baseline) for t in self._candidates])
            self._unknown = np.array([t not in known for t in self._candidates])
            self._learned = np.array([t in known and t != UNCLASSIFIED for t in self._candidates])
            self._floor_missing = UNCLASSIFIED not in known

    def _add(
        self, order: int, phrase: str, touchpoint: str, weight: float, *, is_cue: bool
    ) -> None:
        key = tuple(stems(phrase))
        if not key:
            return
        entry = (order, key, touchpoint, weight, phrase, is_cue)
        self._starters.add(key[0])
        if len(key) == 1:
            self._words.setdefault(key[0], []).append(entry)
        else:
            self._starts.setdefault(key[:2], []).append(entry)

    def is_first_impression(self, sentiment: Sentiment) -> bool:
        """Does the mention describe a first contact ("first visit", "never been before" …)?"""
        first_words = self._first_contact.keys()
        for sentence in sentiment.sentences:
            words = stems(sentence.text)
            if first_words.isdisjoint(words):
                continue
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
        return self._match(stems(text))

    def _match(self, words: tuple[str, ...]) -> dict[str, tuple[float, list[str]]]:
        scores: dict[str, float] = {}
        terms: dict[str, list[str]] = {}
        vetoed: set[str] = set()
        single, starts, starters = self._words, self._starts, self._starters
        for i, word in enumerate(words):
            if word not in starters:
                continue
            found = single.get(word, [])
            longer = starts.get(words[i : i + 2])
            if longer:
                # In the taxonomy's order (each entry's first item, unique), as one list gave them.
                found = sorted([*found, *(e for e in longer if words[i : i + len(e[1])] == e[1])])
            for _order, _key, touchpoint, weight, phrase, is_cue in found:
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
        return self.assign_many([sentiment], [kind])[0]

    def assign_many(
        self, sentiments: Sequence[Sentiment], kinds: Sequence[str]
    ) -> list[list[Assignment]]:
        """``assign`` for each of many mentions. With learned weights the arithmetic of the
        whole batch is done in a few array operations, which is most of the cost of a mention."""
        if self.model is not None:
            return self._assign_learned(sentiments, kinds, self.model)
        return [self._assign_phrases(s, k) for s, k in zip(sentiments, kinds, strict=True)]

    def _is_employee(self, kind: str) -> bool:
        return kind.startswith("employee") and EMPLOYEE_TOUCHPOINT in self.touchpoints

    def _assign_phrases(self, sentiment: Sentiment, kind: str) -> list[Assignment]:
        """Phrases alone: each touchpoint's summed phrase weights; VADER's feeling."""
        if self._is_employee(kind):
            return [
                self._assignment(
                    EMPLOYEE_TOUCHPOINT,
                    0,
                    1.0,
                    sentiment.sentences,
                    _employee_evidence(kind),
                    sentiment.compound,
                )
            ]
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
            return [
                Assignment(
                    UNCLASSIFIED, 0, 0.0, sentiment.compound, sentiment.label, _no_evidence()
                )
            ]
        return assignments

    def _assign_learned(
        self, sentiments: Sequence[Sentiment], kinds: Sequence[str], model: LearnedModel
    ) -> list[list[Assignment]]:
        """The learned weights plus ``phrase_weight`` × the phrase score, per touchpoint.

        The mention's words pick the primary touchpoint (the most probable of all, and
        "unclassified" when that is "unclassified", below MIN_PROBABILITY, or not MIN_MARGIN
        more probable than "unclassified"); each sentence's own words pick the touchpoint it
        is behind, which makes the secondary ones. A
        touchpoint the weights do not know (a business's own) scores as "unclassified" plus
        its phrases, so its phrases alone decide whether it is named; where they match, it
        starts level with the strongest touchpoint the weights know.

        Done for a batch of mentions in three array steps: the touchpoint scores of every
        mention and sentence, the evidence words, and the feelings.
        """
        learned, position = model.touchpoints, self._position
        # Each mention's plan: (touchpoint, confidence, its sentences, evidence) per assignment.
        plans: list[list[_Plan]] = []
        # Per mention, per sentence: rows of the sentiment weights.
        feeling_rows: list[list[list[int]]] = []
        decided: list[_Decided] = []  # mentions the weights decide
        groups: list[list[int]] = []  # touchpoint-weight rows: per mention, then per sentence
        for sentiment, kind in zip(sentiments, kinds, strict=True):
            words = [stems(s.text) for s in sentiment.sentences]
            rows = [model.sentence_rows(w) for w in words]
            feeling_rows.append([r for _, r in rows])
            everything = list(range(len(words)))
            if self._is_employee(kind):
                plans.append([(EMPLOYEE_TOUCHPOINT, 1.0, everything, _employee_evidence(kind))])
            elif not words:
                plans.append([(UNCLASSIFIED, 0.0, everything, _no_evidence())])
            else:
                touchpoint_rows = [r for r, _ in rows]
                decided.append(
                    _Decided(len(plans), len(groups), sentiment, [*map(self._match, words)])
                )
                groups.append(sorted(set().union(*touchpoint_rows)))
                groups.extend(touchpoint_rows)
                plans.append([])
        # (mention, touchpoint, sentence, the assignment's evidence): each sentence's evidence
        pairs: list[tuple[_Decided, str, int, list[dict[str, Any]]]] = []
        if decided:
            # Learned scores of every candidate, for each mention as a whole, then its sentences.
            table = learned.sums(groups)[:, self._columns]
            if self._floor_missing:  # no "unclassified" class to stand in for unknown ones
                table[:, self._unknown] = 0.0
            # Where a phrase of a touchpoint the weights do not know matches, that touchpoint
            # starts level with the strongest one they do know, so its phrases decide: "the
            # tasting menu was superb" is the business's own "tasting menu", not the product
            # quality the learned words would say.
            strongest = (
                table[:, self._learned].max(axis=1)
                if self._unknown.any() and self._learned.any()
                else None
            )
            # Plus the phrases, the opening sentence's counting OPENING_WEIGHT times for the
            # mention; where a phrase matched, "unclassified" is not an answer.
            for mention in decided:
                start, phrase_matched = mention.start, False
                for i, (sentence, found) in enumerate(
                    zip(mention.sentiment.sentences, mention.matched, strict=True)
                ):
                    weight = OPENING_WEIGHT if sentence.position == 0 else 1.0
                    for touchpoint, (score, _terms) in found.items():
                        column = position.get(touchpoint)
                        if column is not None:
                            if strongest is not None and self._unknown[column]:
                                for row in (start, start + 1 + i):
                                    table[row, column] = max(table[row, column], strongest[row])
                            table[start + 1 + i, column] += self.phrase_weight * score
                            table[start, column] += self.phrase_weight * score * weight
                            phrase_matched = True
                if phrase_matched:
                    table[start, position[UNCLASSIFIED]] = -np.inf
            probabilities = np.exp(table - table.max(axis=1, keepdims=True))
            probabilities /= probabilities.sum(axis=1, keepdims=True)
            scores, chances = table.tolist(), probabilities.tolist()
            for mention in decided:
                plan = self._decide(mention, scores, chances)
                plans[mention.plan] = plan
                pairs.extend(
                    (mention, t, i, evidence)
                    for t, _, behind, evidence in plan
                    if t != UNCLASSIFIED
                    for i in behind
                )
            # Evidence: the phrases matched, then the learned words that carried each sentence most.
            carried = learned.strongest(
                [groups[m.start + 1 + i] for m, _, i, _ in pairs],
                [learned.index.get(t) for _, t, _, _ in pairs],
            )
            for (mention, touchpoint, i, evidence), learned_words in zip(
                pairs, carried, strict=True
            ):
                sentence = mention.sentiment.sentences[i]
                phrases = mention.matched[i].get(touchpoint, (0.0, []))[1]
                evidence.append(
                    {
                        "sentence": sentence.position,
                        "text": sentence.text,
                        "terms": list(dict.fromkeys([*phrases, *learned_words])),
                    }
                )
        # The feeling of each assignment, from its own sentences' words and VADER together.
        feelings = iter(
            _learned_feelings(
                model,
                [
                    [(sentiment.sentences[i], rows[i]) for i in _felt(plan, rank, len(rows))]
                    for sentiment, rows, plan in zip(sentiments, feeling_rows, plans, strict=True)
                    for rank in range(len(plan))
                ],
            )
        )
        results = []
        for plan in plans:
            assignments = []
            for rank, (touchpoint, confidence, _behind, evidence) in enumerate(plan):
                polarity, label = next(feelings) or (None, UNSUPPORTED)  # None: another language
                assignments.append(
                    Assignment(touchpoint, rank, confidence, polarity, label, evidence)
                )
            results.append(assignments)
        return results

    def _decide(
        self, mention: _Decided, scores: list[list[float]], chances: list[list[float]]
    ) -> list[_Plan]:
        """A mention's touchpoints from the scores (and their probabilities) of its table rows."""
        candidates, position, start = self._candidates, self._position, mention.start
        whole = chances[start]
        # A sentence with matched phrases is behind the strongest of their touchpoints (the
        # learned weights decide between them); one without is behind the touchpoint its words
        # point to, when they point clearly enough.
        behind: dict[str, list[int]] = {}
        for i, found in enumerate(mention.matched):
            columns = [position[t] for t in found if t in position]
            if columns:
                column = max(columns, key=scores[start + 1 + i].__getitem__)
            else:
                sentence = chances[start + 1 + i]
                column = max(range(len(sentence)), key=sentence.__getitem__)
                if sentence[column] < MIN_SENTENCE_PROBABILITY:
                    continue
            behind.setdefault(candidates[column], []).append(i)
        top = max(range(len(whole)), key=whole.__getitem__)
        primary = candidates[top]
        count = len(mention.matched)
        floor = whole[position[UNCLASSIFIED]]  # every taxonomy's last candidate
        if (
            primary == UNCLASSIFIED
            or whole[top] < MIN_PROBABILITY
            or whole[top] - floor < MIN_MARGIN
        ):
            return [(UNCLASSIFIED, 0.0, list(range(count)), _no_evidence())]
        if primary not in behind:  # no sentence alone says it, all of them together do
            behind[primary] = [
                i for i in range(count) if not any(i in v for v in behind.values())
            ] or list(range(count))
        order = [
            primary,
            *sorted(
                (t for t in behind if t not in (primary, UNCLASSIFIED)),
                key=lambda t: -whole[position[t]],
            ),
        ]
        plan: list[_Plan] = []
        for touchpoint in order:
            # How sure the judgement is: for the mention as a whole, or for the sentence that
            # says it most clearly (a secondary touchpoint is rarely likely for the whole).
            column = position[touchpoint]
            confidence = max(
                whole[column], *(chances[start + 1 + i][column] for i in behind[touchpoint])
            )
            plan.append((touchpoint, round(confidence, 3), behind[touchpoint], []))
        return plan

    def _assignment(
        self,
        touchpoint: str,
        rank: int,
        confidence: float,
        sentences: Sequence[Sentence],
        evidence: list[dict[str, Any]],
        whole: float | None = None,
    ) -> Assignment:
        """Without learned weights, a touchpoint's feeling is VADER's for its own sentences; and
        where their VADER says nothing either way (a plain "waited 45 minutes past my
        appointment"), the mention's overall VADER compound stands in, as a reader would take
        it from the context."""
        scored = [s for s in sentences if s.label != UNSUPPORTED]
        if not scored:
            return Assignment(touchpoint, rank, confidence, None, UNSUPPORTED, evidence)
        compound = round(sum(s.compound for s in scored) / len(scored), 4)
        if whole is not None and label_for(compound) == "neutral":
            compound = round(whole, 4)
        return Assignment(touchpoint, rank, confidence, compound, label_for(compound), evidence)


# An assignment as decided, before its feeling: (touchpoint, confidence, the indexes of the
# sentences behind it, evidence).
_Plan = tuple[str, float, list[int], list[dict[str, Any]]]


@dataclass
class _Decided:
    """A mention whose touchpoints the learned weights decide, and where its rows are."""

    plan: int
    """Its index in the batch."""
    start: int
    """Its row in the batch's table; its sentences' rows follow."""
    sentiment: Sentiment
    matched: list[dict[str, tuple[float, list[str]]]]
    """Each sentence's phrase matches."""


def _employee_evidence(kind: str) -> list[dict[str, Any]]:
    return [{"sentence": None, "text": None, "terms": [f"source kind: {kind}"]}]


def _no_evidence() -> list[dict[str, Any]]:
    return [{"sentence": None, "text": None, "terms": []}]


def _felt(plan: Sequence[_Plan], rank: int, count: int) -> list[int]:
    """The sentences (of ``count``) whose feeling the assignment of ``rank`` in ``plan`` takes:
    those behind it; for the primary, also those behind no touchpoint of the mention. A remark
    that names nothing ("Never again.") is read as about what the mention is mainly about, as
    the weights were fitted: every sentence of a mention counted for one of its touchpoints."""
    behind = plan[rank][2]
    if rank != 0:
        return behind
    named = {i for _, _, sentences, _ in plan for i in sentences}
    return sorted({*behind, *(i for i in range(count) if i not in named)})


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
        raw = read_yaml(path.read_text(encoding="utf-8"))
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
