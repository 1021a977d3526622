"""What a mention feels and which moment of truth it is about, on cases a marketer would check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import Stemmer

from monitor import touchpoints
from monitor.config import ConfigError, parse_config
from monitor.scoring import score_and_map
from monitor.sentiment import UNSUPPORTED, score_text, split_sentences
from monitor.touchpoints import UNCLASSIFIED, load_taxonomy

TAXONOMY = load_taxonomy()
ROOT = Path(__file__).resolve().parent.parent
EVAL_TEXTS = [
    json.loads(line)["text"]
    for line in (ROOT / "tests" / "data" / "touchpoints_eval.jsonl").read_text("utf-8").splitlines()
    if line.strip()
]


def judge(text: str, rating: float | None = None, kind: str = "review") -> dict:  # type: ignore[type-arg]
    prepared = score_and_map(
        {"text": text, "language": None, "rating": rating, "kind": kind}, TAXONOMY
    )
    return {
        "label": prepared.score["label"],
        "touchpoints": {a["touchpoint"]: a["label"] for a in prepared.assignments},
        "primary": prepared.assignments[0]["touchpoint"],
        "first": prepared.score["first_impression"],
        "disagrees": prepared.score["rating_disagrees"],
        "language": prepared.row["language"],
        "sentences": [s["text"] for s in prepared.sentences],
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Dr. Patel saw me at 9 a.m. sharp. Great service!",
            ["Dr. Patel saw me at 9 a.m. sharp.", "Great service!"],
        ),
        ("Went in e.g. for a trim. Came out happy", ["Went in e.g. for a trim.", "Came out happy"]),
        ("Loved it 😍 Will be back!!!", ["Loved it 😍 Will be back!!!"]),
        ("no punctuation at all just vibes", ["no punctuation at all just vibes"]),
        ("First line\nSecond line", ["First line", "Second line"]),
        (
            "The food was great but the waiter was rude.",
            ["The food was great", "but the waiter was rude."],
        ),
        ("Good, but still", ["Good, but still"]),  # too short to judge apart
    ],
)
def test_sentences_split_where_a_reader_would(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_each_touchpoint_gets_the_feeling_of_its_own_words() -> None:
    judged = judge(
        "The bike itself is great quality but the delivery driver was rude and two days late."
    )
    assert judged["touchpoints"].get("product_quality") == "positive"
    assert judged["touchpoints"].get("delivery_installation") == "negative"


def test_negation_does_not_change_the_topic() -> None:
    assert (
        judge("The delivery was not late at all, it arrived early.")["primary"]
        == "delivery_installation"
    )
    assert judge("Parking isn't a problem, there's a big car park.")["primary"] == "location_access"


def test_inflections_and_phrases_match() -> None:
    assert judge("They delivered it a week late.")["primary"] == "delivery_installation"
    assert judge("I booked online in two minutes.")["primary"] == "website"
    assert judge("Nobody answered the phone for three days.")["primary"] == "phone_enquiry"


def test_stems_are_the_snowball_stems_however_often_words_recur(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stemmer = Stemmer.Stemmer("english")
    monkeypatch.setattr(touchpoints, "_STEMS_KEPT", 50)  # so that it forgets many times
    texts = [f"Delivered {n} parcels, the driver’s van and Sam's deliveries" for n in range(300)]
    for text in texts + texts:
        words = ["delivered", *text.split()[1:2], "parcels", "the", "driver", "van", "and"]
        expected = (*stemmer.stemWords(words), "sam", "deliveri")
        assert touchpoints.stems.__wrapped__(text) == expected
        assert len(touchpoints._STEM_OF) <= 51


@pytest.mark.parametrize(
    ("text", "touchpoint", "label"),
    [
        (
            "The parcel arrived on Thursday afternoon. Absolutely delighted!",
            "delivery_installation",
            "positive",
        ),
        (
            "Went in to return the jacket with my receipt. Utterly useless, avoid.",
            "returns_warranty",
            "negative",
        ),
        (
            "Our engineer fitted the boiler on Monday. Brilliant job, thank you!",
            "delivery_installation",
            "positive",
        ),
    ],
)
def test_a_remark_that_names_nothing_gives_the_main_touchpoint_its_feeling(
    text: str, touchpoint: str, label: str
) -> None:
    # The first sentence says what happened and feels nothing; the second says how it felt and
    # names no touchpoint, so it is read as about the one the mention is about.
    judged = judge(text)
    assert judged["primary"] == touchpoint
    assert judged["touchpoints"][touchpoint] == label


def test_too_little_evidence_is_unclassified_not_a_guess() -> None:
    judged = judge("Meh. It was fine I guess.")
    assert judged["primary"] == UNCLASSIFIED


def test_first_contact_is_flagged() -> None:
    assert judge("First time in and the welcome was lovely.")["first"] is True
    assert judge("Been coming here for years, same lovely welcome.")["first"] is False


def test_stars_that_contradict_the_words_are_flagged() -> None:
    assert (
        judge("Absolutely wonderful, the best shop in town, so friendly!", rating=0.0)["disagrees"]
        is True
    )
    assert (
        judge("Absolutely wonderful, the best shop in town, so friendly!", rating=1.0)["disagrees"]
        is False
    )


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("😍😍😍", "positive"),
        ("https://reviews.example/r/1", "neutral"),
        ("   ", "neutral"),
    ],
)
def test_odd_texts_are_scored_without_error(text: str, label: str) -> None:
    assert score_text(text).label == label


def test_another_language_is_stored_but_not_scored() -> None:
    judged = judge(
        "Service très lent et personnel désagréable, je ne reviendrai pas dans ce magasin."
    )
    assert judged["language"] == "fr"
    assert judged["label"] == UNSUPPORTED
    assert all(label == UNSUPPORTED for label in judged["touchpoints"].values())


def test_control_characters_and_a_megabyte_of_text() -> None:
    from monitor.normalise import clean_text
    from monitor.pipeline import MAX_TEXT_CHARS, prepare
    from monitor.records import MentionRecord

    assert clean_text("rude\x00 staff\x1b[31m") == "rude staff[31m"
    huge = "The staff were lovely. " * 50_000  # over a megabyte
    _, row = prepare(MentionRecord("b", "s", huge, "https://x.example/1"), TAXONOMY)
    assert len(row["text"]) == MAX_TEXT_CHARS
    assert judge(row["text"])["primary"] == "staff_attitude"


def test_a_business_can_add_rename_and_remove_touchpoints(tmp_path: Path) -> None:
    config = parse_config(
        {
            "businesses": [{"name": "Example Bakery"}],
            "touchpoints": {
                "rename": {"staff_attitude": "Our team"},
                "remove": ["advertising"],
                "add": [
                    {
                        "id": "tasting_menu",
                        "stage": "sales_process",
                        "label": "Tasting menu",
                        "phrases": {"tasting menu": 1.5},
                    }
                ],
            },
        },
        tmp_path / "b.yaml",
    )
    taxonomy = load_taxonomy(config)
    assert taxonomy.label("staff_attitude") == "Our team"
    assert "advertising" not in taxonomy.touchpoints
    sentiment = score_text("The tasting menu was superb.")
    assert taxonomy.assign(sentiment)[0].touchpoint == "tasting_menu"
    # Where its phrases are absent, the learned touchpoints stand as before.
    assert taxonomy.assign(score_text("The steak was superb."))[0].touchpoint == "product_quality"
    broken = parse_config(
        {
            "businesses": [{"name": "Example Bakery"}],
            "touchpoints": {"remove": ["no_such_touchpoint"]},
        },
        tmp_path / "b.yaml",
    )
    with pytest.raises(ConfigError, match="unknown touchpoint 'no_such_touchpoint'"):
        load_taxonomy(broken)


# A staff-or-product-knowledge tie that the hash seed used to break: sentence scores were summed
# in the order of a set of words, which follows the seed, so two scoring processes could name
# different secondary touchpoints for the same mention.
SEED_SENSITIVE = (
    "The staff are knowledgeable and genuinely kind; they helped me compare three cameras for "
    "nearly an hour. I just can't justify paying £150 more than the same model costs elsewhere, "
    "so I left without buying."
)
_JUDGE_ALL = """
import json, sys
from monitor.scoring import score_and_map_many
from monitor.touchpoints import load_taxonomy
texts = json.load(sys.stdin)
rows = [{"text": t, "language": None, "rating": None, "kind": "review"} for t in texts]
print(json.dumps([[p.score["label"], p.assignments] for p in score_and_map_many(rows, load_taxonomy())]))
"""


def test_judgements_do_not_depend_on_the_processes_hash_seed() -> None:
    texts = [SEED_SENSITIVE, *EVAL_TEXTS[:300]]
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _JUDGE_ALL],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONHASHSEED": seed},
        ).stdout
        for seed in ("0", "123", "7")
    ]
    assert len(json.loads(outputs[0])) == len(texts)
    assert outputs[1] == outputs[0]
    assert outputs[2] == outputs[0]
