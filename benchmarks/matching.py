"""Per-question cost of triage + matching, on the shipped content and on a synthetic 30× library,
next to a plain rapidfuzz extractOne over all example questions measured in the same run.

    python benchmarks/matching.py [--repeat 3] [--factor 30]

Prints p50/p99 latencies, the ratio to the plain scan, how the p50 grows from the shipped library to
the large one, and the memory the large library takes.
Targets (issue #7): p99 ≤ 2 ms at 30×, and p50 at 30× ≤ 1.5× the p50 of the shipped library.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import random
import statistics
import time
import tracemalloc
from dataclasses import replace
from pathlib import Path

from rapidfuzz import fuzz, process

from zjcare_guide.content import DEFAULT_CONTENT_DIR, load_library
from zjcare_guide.evaluation import load_golden
from zjcare_guide.guide import Guide
from zjcare_guide.matching import Matcher
from zjcare_guide.model import Article

GOLDEN = Path(__file__).resolve().parent.parent / "tests" / "golden" / "questions.yaml"


def synthetic(articles: list[Article], factor: int, seed: int = 7) -> list[Article]:
    """`factor` copies of every article; copies get new ids and new characters in every question, so
    the vocabulary and the posting lists grow as a larger real library's would."""
    rng = random.Random(seed)

    def noise() -> str:
        return "".join(chr(rng.randint(0x4E00, 0x9FA5)) for _ in range(2))

    out = list(articles)
    for k in range(1, factor):
        for a in articles:
            out.append(replace(
                a, id=f"{a.id}-x{k}", title=f"{a.title}{noise()}",
                questions=tuple(f"{noise()}{q}{noise()}" for q in a.questions),
                keywords=tuple(f"{kw}{noise()}" for kw in a.keywords),
            ))
    return out


def percentiles(samples: list[float]) -> tuple[float, float]:
    s = sorted(samples)
    return statistics.median(s), s[min(len(s) - 1, int(len(s) * 0.99))]


def time_each(fn, queries: list[str], repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples: list[float] = []
    for _ in range(repeat):
        for q in queries:
            t0 = time.perf_counter()
            fn(q)
            samples.append((time.perf_counter() - t0) * 1000)
    return samples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--factor", type=int, default=30)
    args = ap.parse_args()

    library = load_library(DEFAULT_CONTENT_DIR, dt.date.today())
    golden = load_golden(GOLDEN)
    queries = [str(c["q"]) for group in golden.values() for c in group]
    base = list(library.articles.values())

    gc.collect()
    tracemalloc.start()
    big_articles = synthetic(base, args.factor)
    big_matcher = Matcher(big_articles, library.normaliser)
    big_mem = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    # As the bot does once the library is loaded (bot/heap.py): the index is not walked by the
    # garbage collector while questions are answered.
    gc.collect()
    gc.freeze()

    print(f"queries: {len(queries)} golden messages × {args.repeat} repeats")
    medians: list[float] = []
    for label, articles, matcher in (("shipped", base, None), (f"{args.factor}×", big_articles, big_matcher)):
        guide = Guide(library)
        if matcher is not None:
            guide.matcher = matcher
        normalised = [library.normaliser.compact(q) for a in articles for q in a.questions]
        def plain(q: str, choices: list[str] = normalised) -> object:
            return process.extractOne(library.normaliser.compact(q), choices, scorer=fuzz.WRatio)

        for q in queries[:20]:  # warm caches for both sides alike
            guide.decide(q)
            plain(q)
        ours = time_each(guide.decide, queries, args.repeat)
        scan = time_each(plain, queries, args.repeat)
        o50, o99 = percentiles(ours)
        s50, s99 = percentiles(scan)
        medians.append(o50)
        print(f"[{label}] {len(articles)} articles, {len(normalised)} example questions")
        print(f"  triage+matching  p50 {o50:.3f} ms  p99 {o99:.3f} ms  mean {statistics.fmean(ours):.3f} ms")
        print(f"  plain extractOne p50 {s50:.3f} ms  p99 {s99:.3f} ms  mean {statistics.fmean(scan):.3f} ms")
        print(f"  plain / ours: p50 {s50 / o50:.1f}×  mean {statistics.fmean(scan) / statistics.fmean(ours):.1f}×")
    print(f"p50 at {args.factor}× / p50 shipped: {medians[1] / medians[0]:.2f}× (target ≤ 1.5×)")
    print(f"memory of the {args.factor}× articles + index (tracemalloc): {big_mem:.1f} MB")


if __name__ == "__main__":
    main()
