"""How much faster ``monitor.vader.FastVader`` scores text than the installed vaderSentiment.

Builds the same texts for both (sentences of ``tests/data/touchpoints_eval.jsonl`` recombined with
a seeded RNG, about 50 words each), times both in the same run with rounds alternating (best of
N each), prints texts/s and the ratio, and checks every output is identical (exit status 1 if not).

    .venv/bin/python bench/vader.py [--texts 20000] [--rounds 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: E402

from monitor.vader import FastVader  # noqa: E402

EVAL = ROOT / "tests" / "data" / "touchpoints_eval.jsonl"
WORDS_PER_TEXT = 50  # the text length the field notes' ~2,100 texts/s figure is for

Scorer = Callable[[str], dict[str, float]]


def build_texts(count: int, seed: int) -> list[str]:
    """``count`` texts of about 50 words, each a random run of eval-set sentences."""
    lines = EVAL.read_text(encoding="utf-8").splitlines()
    sentences = [
        sentence
        for line in lines
        if line.strip()
        for sentence in json.loads(line)["text"].split(". ")
        if sentence.strip()
    ]
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        words: list[str] = []
        while len(words) < WORDS_PER_TEXT:
            words.extend(rng.choice(sentences).split())
        texts.append(" ".join(words[:WORDS_PER_TEXT]))
    return texts


def timed_pass(score: Scorer, texts: list[str]) -> tuple[float, list[dict[str, float]]]:
    start = time.perf_counter()
    results = [score(text) for text in texts]
    return time.perf_counter() - start, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    texts = build_texts(args.texts, args.seed)
    scorers: dict[str, Scorer] = {
        "vaderSentiment": SentimentIntensityAnalyzer().polarity_scores,
        "FastVader": FastVader().polarity_scores,
    }
    best: dict[str, float] = {}
    results: dict[str, list[dict[str, float]]] = {}
    print(
        f"{len(texts)} texts, {sum(len(t.split()) for t in texts) / len(texts):.1f} words each, "
        f"Python {platform.python_version()}, best of {args.rounds} alternating rounds"
    )
    for round_number in range(1, args.rounds + 1):
        for name, score in scorers.items():
            seconds, results[name] = timed_pass(score, texts)
            best[name] = min(best.get(name, seconds), seconds)
            print(f"  round {round_number} {name:<15} {len(texts) / seconds:9,.0f} texts/s")

    for name in scorers:
        print(f"{name:<15} best {len(texts) / best[name]:9,.0f} texts/s")
    print(f"ratio FastVader / vaderSentiment: {best['vaderSentiment'] / best['FastVader']:.2f}x")

    # repr, not ==: -0.0 == 0.0, but only the same repr is identical output
    original, fast = results["vaderSentiment"], results["FastVader"]
    identical = sum(repr(a) == repr(b) for a, b in zip(original, fast, strict=True))
    print(f"identical outputs: {identical} of {len(texts)}")
    return 0 if identical == len(texts) else 1


if __name__ == "__main__":
    sys.exit(main())
