"""Rebuild the document-frequency table the keyword weights start from.

    python scripts/build_document_frequencies.py [SOURCE...] [--min-df 1] [--out PATH]

SOURCE is anything `newsletter papers` reads (a Daily Papers page, an API or arXiv response, a
JSON/JSONL/YAML list of papers). Only titles and abstracts are read; any other field (ids,
categories, labels) is ignored, and a paper found in two sources counts once. With no SOURCE the
script rebuilds the bundled table, byte for byte, from the recorded source responses in the
repository (`BUNDLED_SOURCES`: the Daily Papers API, the arXiv API and the arXiv listing feeds,
223 papers). The Daily Papers page (the quick-start sample) is left out on purpose: a run on it
counts its papers as the batch, and counting them in the table as well would count them twice.

Build a table from your own papers (an export of past issues, a feed you keep) with

    python scripts/build_document_frequencies.py my-papers.jsonl --out my-table.tsv.gz

Never build it from labelled evaluation data: the weights would then be tuned to the papers they
are measured on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsletter.resources import document_frequencies_path  # noqa: E402
from newsletter.sources import read_source  # noqa: E402
from newsletter.topics.specificity import DocumentFrequencies  # noqa: E402

SAMPLES = REPO / "tests" / "data" / "samples"
BUNDLED_SOURCES = [
    SAMPLES / "hf-daily-papers-api.json",
    SAMPLES / "arxiv-api-query.xml",
    SAMPLES / "arxiv-atom-feed-cs.AI.xml",
    SAMPLES / "arxiv-rss-cs.AI.xml",
    SAMPLES / "arxiv-rss-multi-announce-types.xml",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="*", metavar="SOURCE", type=Path)
    parser.add_argument("--min-df", type=int, default=1, help="keep terms in this many papers")
    parser.add_argument("--out", type=Path, default=document_frequencies_path())
    args = parser.parse_args()
    seen: set[str] = set()
    texts: list[str] = []
    for source in args.sources or BUNDLED_SOURCES:
        papers = read_source(str(source))
        fresh = [p for p in papers if p.id not in seen]
        seen.update(p.id for p in fresh)
        texts.extend(f"{p.title}\n{p.abstract}" for p in fresh)
        print(f"{source.name}: {len(fresh)} papers ({len(papers) - len(fresh)} seen before)")
    table = DocumentFrequencies.count(texts, min_df=args.min_df)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.write(args.out)
    size = args.out.stat().st_size
    print(f"{table.docs} papers, {len(table.counts)} terms, {size / 1024:.0f} KiB -> {args.out}")


if __name__ == "__main__":
    main()
