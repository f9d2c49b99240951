"""Papers labelled by hand with the topic a reader expects: the input of `topics eval/suggest`.

A labelled file is JSON Lines, or a JSON list (or `{"papers": [...]}`), of papers with the fields
`newsletter papers` reads, each with a `topic`: a topic of the config, or "Other". A problem names
the file and the line or item.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from newsletter.errors import SourceError
from newsletter.models import OTHER, Labelled
from newsletter.sources.files import paper_from_item


def read_labelled(path: str | Path, topics: Sequence[str]) -> list[Labelled]:
    """Read a labelled file; every `topic` must be one of `topics` or Other."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as e:
        raise SourceError(f"{name}: cannot read ({e.strerror}); give a labelled JSONL file") from e
    known = {t.casefold(): t for t in [*topics, OTHER]}
    out: list[Labelled] = []
    for where, item in _items(text, name):
        if not isinstance(item, dict):
            raise SourceError(f"{name}: {where}: expected an object with `title` and `topic`")
        label = item.get("topic")
        if not isinstance(label, str) or not label.strip():
            raise SourceError(
                f"{name}: {where}: no `topic`; give each paper the topic you expect (or {OTHER})"
            )
        topic = known.get(label.strip().casefold())
        if topic is None:
            raise SourceError(
                f"{name}: {where}: topic '{label}' is not in the config; use one of "
                + ", ".join(f"'{t}'" for t in [*topics, OTHER])
            )
        out.append(Labelled(paper_from_item(item, name, where), topic))
    if not out:
        raise SourceError(f"{name}: no labelled papers; expected one JSON object per line")
    return out


def _items(text: str, name: str) -> list[tuple[str, Any]]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((f"line {number}", json.loads(line)))
                except json.JSONDecodeError as e:
                    raise SourceError(
                        f"{name}: line {number}: not valid JSON at column {e.colno}: {e.msg}"
                    ) from e
        return rows
    if isinstance(doc, dict):
        if not isinstance(doc.get("papers"), list):
            return [("line 1", doc)]  # JSON Lines of one line
        doc = doc["papers"]
    if not isinstance(doc, list):
        raise SourceError(f"{name}: expected JSON Lines or a JSON list of labelled papers")
    return [(f"item {i}", item) for i, item in enumerate(doc, 1)]
