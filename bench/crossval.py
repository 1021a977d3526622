"""Cross-validation of the learned weights on the training mentions: the place to choose a setting.

The test half of ``tests/data/touchpoints_eval.jsonl`` is only ever scored, and its dev half is
small (269 mentions: one mention is 0.4 points). This splits the training mentions
(``tests/data/touchpoints_train.jsonl``, which hold neither half) into K folds, fits the weights
on all folds but one with ``monitor.learning.fit``, maps the held-out fold with the default
taxonomy and those weights, and prints per fold and on average what ``bench/touchpoints.py``
prints on the test half: the primary touchpoint's macro F1 and the per-touchpoint sentiment
accuracy.

    .venv/bin/python bench/crossval.py [--folds 4] [--jobs 2] [--dev]

``--dev`` also fits on every training mention and scores the dev half. Folds are fixed (every
K-th mention), so two settings are compared on the same splits.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.touchpoints import judge, load, macro_f1, sentiment_pairs  # noqa: E402
from monitor.learning import Labelled, fit, read_labelled  # noqa: E402
from monitor.touchpoints import load_taxonomy  # noqa: E402

TRAIN = ROOT / "tests" / "data" / "touchpoints_train.jsonl"


def as_item(example: Labelled) -> dict[str, object]:
    return {
        "text": example.text,
        "source": example.source,
        "primary": example.primary,
        "touchpoints": example.touchpoints,
    }


def score(
    learn_from: list[Labelled], held_out: list[dict[str, object]]
) -> tuple[float, float, int]:
    """(macro F1, sentiment accuracy, sentiment pairs) of weights fitted on ``learn_from``."""
    judged = judge(held_out, taxonomy=load_taxonomy().with_model(fit(learn_from)))
    pairs = sentiment_pairs(judged)
    return macro_f1(judged), sum(a == b for a, b in pairs) / len(pairs), len(pairs)


def fold(examples: list[Labelled], k: int, folds: int) -> tuple[float, float, int]:
    learn_from = [e for i, e in enumerate(examples) if i % folds != k]
    held_out = [as_item(e) for i, e in enumerate(examples) if i % folds == k]
    return score(learn_from, held_out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2, help="folds fitted at once")
    parser.add_argument("--dev", action="store_true", help="also fit on all and score dev")
    args = parser.parse_args()
    examples = read_labelled([TRAIN])
    with ProcessPoolExecutor(args.jobs) as pool:
        results = list(
            pool.map(fold, [examples] * args.folds, range(args.folds), [args.folds] * args.folds)
        )
        dev = pool.submit(score, examples, load("dev")) if args.dev else None
        print(f"{len(examples)} training mentions, {args.folds} folds")
        print(f"{'fold':>4} {'macro F1':>9} {'sentiment':>10} {'pairs':>6}")
        for k, (macro, sentiment, pairs) in enumerate(results, 1):
            print(f"{k:>4} {macro:9.3f} {sentiment:10.3f} {pairs:6d}")
        print(
            f"{'mean':>4} {statistics.mean(r[0] for r in results):9.3f} "
            f"{statistics.mean(r[1] for r in results):10.3f}"
        )
        if dev is not None:
            macro, sentiment, pairs = dev.result()
            print(f"{'dev':>4} {macro:9.3f} {sentiment:10.3f} {pairs:6d}")


if __name__ == "__main__":
    main()
