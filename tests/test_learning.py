"""Weights learned from labelled mentions: fitted, stored as data, applied, explained, switched off.

Most tests fit a small model on made-up words ("zorblax" is a delivery, "grotful" is bad) that
neither the phrase lists nor VADER know, so whatever maps or judges them can only have come
from the learned weights.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.config import ConfigError, TouchpointChanges
from monitor.learning import DEFAULT_MODEL, Labelled, LearnedModel, fit, load_model, read_labelled
from monitor.scoring import score_and_map
from monitor.touchpoints import (
    DEFAULT_TAXONOMY,
    UNCLASSIFIED,
    Taxonomy,
    _read_spec,
    build_taxonomy,
    load_taxonomy,
)

DATA = Path(__file__).resolve().parent / "data"

# Words no phrase list and no VADER lexicon knows, each standing for one touchpoint or feeling.
TOPICS = {
    "delivery_installation": ["zorblax", "zorblax van", "the zorblax crew"],
    "staff_attitude": ["quimby", "the quimby lady", "quimby at the desk"],
    "price_value": ["flurb", "the flurb total", "flurb for what you get"],
}
FEELINGS = {"positive": "splendiferous", "negative": "grotful"}


def made_up_examples() -> list[Labelled]:
    examples = []
    for topic, words in TOPICS.items():
        for word in words:
            for label, feeling in FEELINGS.items():
                for frame in ("{w} was {f}", "honestly {w} was {f} today", "{w}, {f} as ever"):
                    text = frame.format(w=word, f=feeling)
                    examples.append(Labelled(text, "review", topic, {topic: label}))
    for text in ("hello there", "anyone been here", "ok", "hmm hello", "anyone about", "ok then"):
        examples.append(Labelled(text, "review", UNCLASSIFIED, {}))
    return examples


@pytest.fixture(scope="module")
def model() -> LearnedModel:
    return fit(made_up_examples())


def taxonomy_with(model: LearnedModel | None, changes: TouchpointChanges | None = None) -> Taxonomy:
    taxonomy = build_taxonomy(_read_spec(DEFAULT_TAXONOMY), changes or TouchpointChanges(), "test")
    return Taxonomy(
        taxonomy.stages, taxonomy.threshold, [], model=model, phrase_weight=taxonomy.phrase_weight
    )


def judge(text: str, taxonomy: Taxonomy) -> dict[str, tuple[str, float | None]]:
    prepared = score_and_map(
        {"text": text, "language": "en", "rating": None, "kind": "review"}, taxonomy
    )
    return {a["touchpoint"]: (a["label"], a["compound"]) for a in prepared.assignments}


def test_learned_words_map_a_mention_that_no_phrase_names(model: LearnedModel) -> None:
    text = "The zorblax was grotful."
    assert list(judge(text, taxonomy_with(model))) == ["delivery_installation"]
    # Without the weights the phrase lists know nothing of it.
    assert list(judge(text, taxonomy_with(None))) == [UNCLASSIFIED]


def test_learned_feeling_reads_words_vader_does_not_know(model: LearnedModel) -> None:
    taxonomy = taxonomy_with(model)
    bad = judge("The zorblax was grotful.", taxonomy)["delivery_installation"]
    good = judge("The zorblax was splendiferous.", taxonomy)["delivery_installation"]
    assert bad[0] == "negative" and bad[1] is not None and bad[1] < 0
    assert good[0] == "positive" and good[1] is not None and good[1] > 0


def test_each_sentence_keeps_its_own_touchpoint_and_feeling(model: LearnedModel) -> None:
    judged = judge(
        "The zorblax was splendiferous. But the quimby lady was grotful.", taxonomy_with(model)
    )
    assert judged["delivery_installation"][0] == "positive"
    assert judged["staff_attitude"][0] == "negative"


def test_evidence_names_the_learned_words(model: LearnedModel) -> None:
    prepared = score_and_map(
        {"text": "The zorblax was grotful.", "language": "en", "rating": None, "kind": "review"},
        taxonomy_with(model),
    )
    terms = [t for e in prepared.assignments[0]["evidence"] for t in e["terms"]]
    assert "zorblax" in terms
    assert "the" not in terms  # a word that carries nothing is not shown as a reason


def test_a_business_can_switch_the_weights_off(tmp_path: Path) -> None:
    from monitor.config import parse_config

    config = parse_config(
        {"businesses": [{"name": "Shop", "sources": []}], "touchpoints": {"learned": False}},
        tmp_path / "shop.yaml",
    )
    assert load_taxonomy(config).model is None
    assert load_taxonomy().model is not None


def test_a_removed_touchpoint_is_never_named(model: LearnedModel) -> None:
    taxonomy = taxonomy_with(model, TouchpointChanges(remove=["delivery_installation"]))
    assert "delivery_installation" not in judge("The zorblax was grotful.", taxonomy)


def test_an_added_touchpoint_is_matched_by_its_own_phrases(model: LearnedModel) -> None:
    changes = TouchpointChanges(
        add=[
            {
                "id": "kids_corner",
                "label": "Children's play area",
                "stage": "sales_process",
                "phrases": {"play area": 1.2, "ball pit": 1.2},
            }
        ]
    )
    judged = judge("The kids loved the ball pit.", taxonomy_with(model, changes))
    assert next(iter(judged)) == "kids_corner"


@pytest.mark.parametrize("name", ["weights.npz", "weights.json"])
def test_weights_survive_their_file(model: LearnedModel, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    model.save(path)
    again = LearnedModel.read(path)
    assert again.trained_on == model.trained_on
    text = "The zorblax was splendiferous. But the quimby lady was grotful."
    assert judge(text, taxonomy_with(again)) == judge(text, taxonomy_with(model))


def test_the_npz_file_holds_exactly_the_weights_of_the_json_file(tmp_path: Path) -> None:
    """Both keep three decimals: the .npz file as whole thousandths, which must read back as
    the very floats the .json file's decimals give, or scores would differ by file."""
    shipped = load_model(DEFAULT_MODEL)
    shipped.save(tmp_path / "weights.json")
    shipped.save(tmp_path / "again.npz")
    as_text = LearnedModel.read(tmp_path / "weights.json")
    for name in ("touchpoints", "sentiment"):
        for other in (shipped, LearnedModel.read(tmp_path / "again.npz")):
            ours, theirs = getattr(other, name), getattr(as_text, name)
            assert ours.classes == theirs.classes
            assert ours.names == theirs.names
            assert (ours.bias == theirs.bias).all()
            assert (ours.matrix == theirs.matrix).all()
    # Not a rounding to nothing: the weights are as varied as three decimals allow.
    assert len(set(shipped.touchpoints.matrix.ravel().tolist())) > 1000


def test_a_bad_weights_file_is_named_in_the_error(tmp_path: Path) -> None:
    spec = _read_spec(DEFAULT_TAXONOMY)
    for content in (b"", b"not numpy at all", b"PK\x03\x04 cut short"):
        (tmp_path / "learned.npz").write_bytes(content)
        with pytest.raises(ConfigError, match=r"learned\.npz: not learned weights"):
            build_taxonomy(
                spec.model_copy(update={"learned": "learned.npz"}),
                TouchpointChanges(),
                "test",
                tmp_path,
            )


def test_monitor_learn_writes_weights_and_never_learns_from_the_test_half(
    tmp_path: Path,
) -> None:
    labelled = tmp_path / "labelled.jsonl"
    lines = [
        {
            "split": "train",
            "source": e.source,
            "text": e.text,
            "primary": e.primary,
            "touchpoints": e.touchpoints,
        }
        for e in made_up_examples()
    ]
    lines.append({**lines[0], "split": "test", "text": "kept for measuring only"})
    labelled.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    out = tmp_path / "weights.json"
    result = CliRunner().invoke(cli, ["learn", str(labelled), "--out", str(out)])
    assert result.exit_code == 0, result.output
    learned = load_model(out)
    assert learned.trained_on["mentions"] == len(lines) - 1
    assert "measuring" not in learned.touchpoints.vocabulary


def test_monitor_learn_names_the_bad_line(tmp_path: Path) -> None:
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text('{"text": "fine", "primary": "loyalty", "touchpoints": {}}\n{oops\n')
    result = CliRunner().invoke(cli, ["learn", str(labelled), "--out", str(tmp_path / "w.json")])
    assert result.exit_code == 2
    assert "labelled.jsonl:2" in result.output
    assert not (tmp_path / "w.json").exists()


def test_the_shipped_weights_were_fitted_on_the_training_file_alone() -> None:
    shipped = load_model(DEFAULT_MODEL)
    assert shipped.trained_on["files"] == ["touchpoints_train.jsonl"]
    training = read_labelled([DATA / "touchpoints_train.jsonl"])
    assert shipped.trained_on["mentions"] == len(training)
    # No training mention repeats a mention of the evaluation set, of either half.
    evaluation = {
        e.text.casefold().strip() for e in read_labelled([DATA / "touchpoints_eval.jsonl"])
    }
    assert not [e.text for e in training if e.text.casefold().strip() in evaluation]


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w']+", " ", text.casefold()).split()


def nearly_repeated(texts: list[str], others: list[str], share: float = 0.75) -> list[str]:
    """The ``texts`` that share a run of four words with one of ``others`` and at least
    ``share`` of their distinct words (Jaccard) with it: a copy with a word or two changed."""
    runs: dict[str, list[set[str]]] = {}
    for other in others:
        words = _words(other)
        for i in range(max(1, len(words) - 3)):
            runs.setdefault(" ".join(words[i : i + 4]), []).append(set(words))
    found = []
    for text in texts:
        words = _words(text)
        distinct = set(words)
        candidates = (
            other
            for i in range(max(1, len(words) - 3))
            for other in runs.get(" ".join(words[i : i + 4]), ())
        )
        if any(len(distinct & o) / len(distinct | o) >= share for o in candidates):
            found.append(text)
    return found


def test_nearly_repeated_catches_a_copy_with_a_word_changed() -> None:
    evaluation = ["Came here because my friend's husband works in the kitchen."]
    assert nearly_repeated(
        [
            "Came here because my colleague's husband works in the kitchen.",
            "The husband works in the kitchen and the wife runs the bar, lovely couple.",
        ],
        evaluation,
    ) == ["Came here because my colleague's husband works in the kitchen."]


def test_no_training_mention_nearly_repeats_an_evaluation_mention() -> None:
    training = [e.text for e in read_labelled([DATA / "touchpoints_train.jsonl"])]
    evaluation = [e.text for e in read_labelled([DATA / "touchpoints_eval.jsonl"])]
    assert nearly_repeated(training, evaluation) == []


def test_the_shipped_weights_know_every_default_touchpoint() -> None:
    taxonomy = load_taxonomy()
    assert taxonomy.model is not None
    assert set(taxonomy.touchpoints) | {UNCLASSIFIED} == set(taxonomy.model.touchpoints.classes)


def test_other_weights_can_be_swapped_in_without_touching_the_taxonomy(
    model: LearnedModel,
) -> None:
    """How bench/crossval.py scores weights fitted on part of the training mentions."""
    learned = taxonomy_with(model)
    plain = learned.with_model(None)
    text = "The zorblax came on Tuesday."
    assert plain.model is None and learned.model is model
    assert judge(text, plain) == judge(text, taxonomy_with(None))
    assert judge(text, learned) != judge(text, plain)
    assert judge(text, plain.with_model(model)) == judge(text, learned)
