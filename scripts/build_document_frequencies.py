"""Rebuild the document-frequency table the keyword weights start from.

    python scripts/build_document_frequencies.py SOURCE... [--min-df 3] [--out PATH]

SOURCE is anything `newsletter papers` reads (a Daily Papers page, an API or arXiv response, a
JSON/JSONL/YAML list of papers). Only titles and abstracts are read; any other field (ids,
categories, labels) is ignored. The bundled table was built with

    python scripts/build_document_frequencies.py tests/data/samples/daily-papers-page.txt \\
        tests/data/samples/hf-daily-papers-api.json tests/data/samples/arxiv-api-query.xml \\
        tests/data/samples/arxiv-atom-feed-cs.AI.xml ../shared/eval/arxiv-labeled.jsonl

(the last file: 3,739 arXiv abstracts from 66 categories, not part of the repository).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from newsletter.resources import document_frequencies_path  # noqa: E402
from newsletter.sources import read_source  # noqa: E402
from newsletter.topics.specificity import DocumentFrequencies  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", metavar="SOURCE")
    parser.add_argument("--min-df", type=int, default=3, help="keep terms in this many papers")
    parser.add_argument("--out", type=Path, default=document_frequencies_path())
    args = parser.parse_args()
    seen: set[str] = set()
    texts: list[str] = []
    for source in args.sources:
        papers = read_source(source)
        fresh = [p for p in papers if p.id not in seen]
        seen.update(p.id for p in fresh)
        texts.extend(f"{p.title}\n{p.abstract}" for p in fresh)
        print(f"{source}: {len(fresh)} papers ({len(papers) - len(fresh)} seen before)")
    table = DocumentFrequencies.count(texts, min_df=args.min_df)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.write(args.out)
    size = args.out.stat().st_size
    print(f"{table.docs} papers, {len(table.counts)} terms, {size / 1024:.0f} KiB -> {args.out}")


if __name__ == "__main__":
    main()
