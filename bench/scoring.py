"""Scoring and mapping throughput against raw VADER, on the same texts, in the same run.

Baseline: vaderSentiment's ``polarity_scores`` on each whole text (one process) — the least a
sentiment step can do. Ours: the pipeline's whole judgement step, ``score_and_map_many`` (VADER
on the text and on each sentence, touchpoints per sentence, first-impression flag) on batches of
500 texts, in one process and across all cores with one scoring process per core, as the scoring
pass runs. Memory is sampled as texts stream through, to show it stays flat.

Measured twice: as ``monitor score`` runs, where each mention's language was stored when it was
collected (worked out here before the clocks start, as collecting would have), and with the
language detected inside the judgement too, as for a mention stored without one.

    .venv/bin/python bench/scoring.py [--texts 100000]
"""

from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import platform
import random
import re
import resource
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer  # noqa: E402

from monitor.normalise import detect_language  # noqa: E402
from monitor.scoring import (  # noqa: E402
    SCORE_BATCH,
    freeze_long_lived,
    long_lived_frozen,
    score_and_map_many,
)
from monitor.touchpoints import Taxonomy, load_taxonomy  # noqa: E402

_taxonomy: Taxonomy | None = None
# Per chunk, the language collecting stored for each text; None: left to be detected.
_languages: list[list[str]] | None = None


def _start_scorer(languages: list[list[str]] | None) -> None:
    global _taxonomy, _languages
    _taxonomy, _languages = load_taxonomy(), languages
    score_and_map_many([row(WARM_UP)], _taxonomy)  # as the one-process measurement warms up
    freeze_long_lived()  # as the scoring pass does, for this scoring process's lifetime


def score_chunk(index: int) -> int:
    """Runs in a scoring process: makes chunk ``index`` of the texts itself, as a scoring
    process reads its own batch from the database, and judges it; returns how many it judged
    (the judgements stay there)."""
    assert _taxonomy is not None
    texts = chunk(index)
    stored = _languages[index] if _languages is not None else [None] * len(texts)
    rows = [row(text, language) for text, language in zip(texts, stored, strict=True)]
    return len(score_and_map_many(rows, _taxonomy))


def _pid_once_warm(_: int) -> int:
    """Runs in a scoring process; takes long enough that every process gets one."""
    time.sleep(0.2)
    return os.getpid()


EVAL = ROOT / "tests" / "data" / "touchpoints_eval.jsonl"
BATCH = SCORE_BATCH


@lru_cache(maxsize=1)
def _mentions() -> list[str]:
    lines = EVAL.read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["text"] for line in lines if line]


_END = re.compile(r"([.!?])(\s|$)")


def chunk(index: int, seed: int = 11) -> list[str]:
    """Texts ``index`` × BATCH … of the benchmark: review-like texts of 2–4 labelled mentions
    joined (about 40–80 words). Each chunk is made from its own seed, so any process can make
    any chunk and every measurement sees the same texts.

    Every sentence gets a random order number ("… order 48213."), neutral to VADER, so no two
    sentences are the same: the pipeline's per-sentence caches get no help a real crawl would
    not give them."""
    pool = _mentions()
    rng = random.Random(seed * 1_000_003 + index)
    made = []
    for _ in range(BATCH):
        text = " ".join(rng.sample(pool, rng.randint(2, 4)))
        made.append(
            _END.sub(lambda m: f" order {rng.randint(1, 10**6)}{m.group(1)}{m.group(2)}", text)
        )
    return made


def stored_languages(count: int) -> list[list[str]]:
    """Per chunk, the language collecting stores for each of the first ``count`` texts."""
    return [[detect_language(text) for text in chunk(index)] for index in range(count // BATCH)]


def texts(count: int) -> Iterator[str]:
    """The benchmark's first ``count`` texts, made chunk by chunk as they are needed."""
    for index in range(-(-count // BATCH)):
        yield from chunk(index)[: count - index * BATCH]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def baseline(count: int) -> float:
    analyzer = SentimentIntensityAnalyzer()
    started = time.perf_counter()
    for text in texts(count):
        analyzer.polarity_scores(text)
    return count / (time.perf_counter() - started)


def ours_one_process(
    count: int, languages: list[list[str]] | None
) -> tuple[float, list[tuple[int, float]]]:
    taxonomy = load_taxonomy()
    score_and_map_many([row(WARM_UP)], taxonomy)
    samples = []
    batch: list[dict[str, object]] = []
    stored = itertools.chain.from_iterable(languages or ())
    with long_lived_frozen():  # as the scoring pass does
        started = time.perf_counter()
        for n, text in enumerate(texts(count), start=1):
            batch.append(row(text, next(stored, None)))
            if len(batch) == BATCH or n == count:
                score_and_map_many(batch, taxonomy)
                batch = []
            if n % (count // 5) == 0:
                samples.append((n, rss_mb()))
    return count / (time.perf_counter() - started), samples


# Loads everything a text can need (the language identifier too) before the clock starts, as
# the baseline's analyser is built before its clock starts.
WARM_UP = "Le service était excellent et le personnel très aimable, nous reviendrons bientôt."


def row(text: str, language: str | None = None) -> dict[str, object]:
    """A mention as the scoring pass reads it (``language`` None: to be detected)."""
    return {"text": text, "language": language, "rating": None, "kind": "review"}


def ours_all_cores(count: int, processes: int, languages: list[list[str]] | None) -> float:
    """Each scoring process makes and judges whole chunks of the texts (``count`` a multiple of
    BATCH), as each process of the scoring pass reads and judges its own batches."""
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_scorer,
        initargs=(languages,),
    )
    # Every process has loaded the weights (its initializer) before the clock starts.
    while len(set(pool.map(_pid_once_warm, range(processes)))) < processes:
        pass
    started = time.perf_counter()
    judged = sum(pool.map(score_chunk, range(count // BATCH)))
    rate = judged / (time.perf_counter() - started)
    pool.shutdown()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=100_000)
    args = parser.parse_args()
    count = args.texts - args.texts % BATCH
    cores = os.cpu_count() or 1
    print("Scoring benchmark (bench/scoring.py): our judgement step vs raw VADER, same texts")
    print(f"command: .venv/bin/python bench/scoring.py --texts {count}")
    print(
        f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; python {platform.python_version()}; CPUs {cores}; load {os.getloadavg()[0]:.2f}"
    )
    languages = stored_languages(count)
    raw = baseline(count)
    print(f"raw VADER (vaderSentiment, whole text, 1 process): {raw:8.0f} texts/s")
    for stored, how in ((languages, "language stored"), (None, "language detected too")):
        single, samples = ours_one_process(count, stored)
        print(
            f"ours, 1 process, {how} (VADER on text and sentences + touchpoints): {single:8.0f} texts/s = {single / raw:.2f}× raw VADER"
        )
        print(
            "  max RSS as texts stream through: "
            + ", ".join(f"{n:,} texts {mb:.0f} MB" for n, mb in samples)
        )
        parallel = ours_all_cores(count, cores, stored)
        print(
            f"ours, {cores} processes, {how} (one scoring process per core): {parallel:8.0f} texts/s = {parallel / raw:.2f}× raw VADER"
        )


if __name__ == "__main__":
    main()
