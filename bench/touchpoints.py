"""How well mentions are mapped and judged, on the labelled set ``tests/data/touchpoints_eval.jsonl``.

Scores the primary touchpoint (micro and macro F1, per-touchpoint precision and recall), the
sentiment label of every labelled touchpoint that the mapper also found, and the first-impression
flag. The test half is only ever scored; tune on the dev half (``--split dev``). The taxonomy is
the default one with its learned weights (``config/learned.npz``, fitted on
``tests/data/touchpoints_train.jsonl``, which holds neither half); ``--phrases-only`` scores its
phrases alone, for comparison.

    .venv/bin/python bench/touchpoints.py [--split test|dev|all] [--errors N] [--phrases-only]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.sentiment import score_text  # noqa: E402
from monitor.touchpoints import UNCLASSIFIED, Taxonomy, load_taxonomy  # noqa: E402

EVAL = ROOT / "tests" / "data" / "touchpoints_eval.jsonl"
KIND = {"review": "review", "post": "post", "employee": "employee_review"}


@dataclass
class Judged:
    item: dict[str, Any]
    primary: str
    touchpoints: dict[str, str]
    first_impression: bool | None


def load(split: str) -> list[dict[str, Any]]:
    items = [json.loads(line) for line in EVAL.read_text(encoding="utf-8").splitlines() if line]
    return [i for i in items if split == "all" or i["split"] == split]


def judge(
    items: list[dict[str, Any]], phrases_only: bool = False, taxonomy: Taxonomy | None = None
) -> list[Judged]:
    """The mapper's judgement of each labelled mention (with ``taxonomy``, or the default one)."""
    taxonomy = taxonomy or load_taxonomy(phrases_only=phrases_only)
    judged = []
    for item in items:
        sentiment = score_text(item["text"], "en")
        assignments = taxonomy.assign(sentiment, KIND[item["source"]])
        first = getattr(taxonomy, "is_first_impression", None)
        judged.append(
            Judged(
                item=item,
                primary=assignments[0].touchpoint,
                touchpoints={a.touchpoint: a.label for a in assignments},
                first_impression=first(sentiment) if first else None,
            )
        )
    return judged


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def macro_f1(judged: list[Judged]) -> float:
    """The primary touchpoint's F1, averaged over the touchpoints of the gold labels."""
    gold = Counter(j.item["primary"] for j in judged)
    predicted = Counter(j.primary for j in judged)
    hits = Counter(j.primary for j in judged if j.primary == j.item["primary"])
    f1s = [f1(hits[t] / predicted[t] if predicted[t] else 0.0, hits[t] / gold[t]) for t in gold]
    return sum(f1s) / len(f1s)


def sentiment_pairs(judged: list[Judged]) -> list[tuple[str, str]]:
    """(gold label, judged label) of the sentiment toward each labelled touchpoint that the
    mapper also found."""
    return [
        (label, j.touchpoints[tp])
        for j in judged
        for tp, label in j.item["touchpoints"].items()
        if tp in j.touchpoints and tp != UNCLASSIFIED
    ]


def report(judged: list[Judged], errors: int) -> None:
    gold = Counter(j.item["primary"] for j in judged)
    predicted = Counter(j.primary for j in judged)
    hits = Counter(j.primary for j in judged if j.primary == j.item["primary"])
    labels = sorted(set(gold) | set(predicted))
    print(f"{'touchpoint':24} {'gold':>5} {'pred':>5} {'prec':>6} {'recall':>6} {'f1':>6}")
    for label in labels:
        p = hits[label] / predicted[label] if predicted[label] else 0.0
        r = hits[label] / gold[label] if gold[label] else 0.0
        print(
            f"{label:24} {gold[label]:5d} {predicted[label]:5d} {p:6.2f} {r:6.2f} {f1(p, r):6.2f}"
        )
    micro = sum(hits.values()) / len(judged)
    macro = macro_f1(judged)
    print(
        f"\nprimary touchpoint: micro F1 {micro:.3f} (= accuracy), macro F1 {macro:.3f} over {len(gold)} touchpoints, {len(judged)} mentions"
    )
    pairs = sentiment_pairs(judged)
    correct = sum(1 for gold_label, got in pairs if gold_label == got)
    print(
        f"per-touchpoint sentiment: accuracy {correct / len(pairs):.3f} over {len(pairs)} matched (touchpoint, label) pairs"
    )
    overall = [
        (j.item["touchpoints"][j.item["primary"]], j.touchpoints.get(j.primary))
        for j in judged
        if j.primary == j.item["primary"]
    ]
    print(
        f"primary-touchpoint sentiment (when the primary is right): accuracy {sum(a == b for a, b in overall) / max(1, len(overall)):.3f} over {len(overall)}"
    )
    if judged[0].first_impression is not None:
        tp = sum(1 for j in judged if j.first_impression and j.item["first_impression"])
        fp = sum(1 for j in judged if j.first_impression and not j.item["first_impression"])
        fn = sum(1 for j in judged if not j.first_impression and j.item["first_impression"])
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        print(f"first impression: precision {p:.2f}, recall {r:.2f}, F1 {f1(p, r):.3f}")
    if errors:
        print("\nsome primary-touchpoint errors:")
        for j in [j for j in judged if j.primary != j.item["primary"]][:errors]:
            print(f"  gold {j.item['primary']:22} got {j.primary:22} | {j.item['text'][:110]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["test", "dev", "all"], default="test")
    parser.add_argument("--errors", type=int, default=0, help="print this many mapping errors")
    parser.add_argument(
        "--phrases-only",
        action="store_true",
        help="the taxonomy's phrases without the learned weights (VADER's feeling)",
    )
    args = parser.parse_args()
    items = load(args.split)
    print(f"split: {args.split}")
    report(judge(items, args.phrases_only), args.errors)


if __name__ == "__main__":
    main()
