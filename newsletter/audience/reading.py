"""Read a subscribers file as a stream of entries: YAML (libyaml's events) or CSV (csv module).

Nothing is held but the entry being read: a list of a million people reads in flat memory. The
YAML parser is libyaml's C parser; its events are put together here one entry at a time, into
the same nodes PyYAML's composer would build (with their line numbers, and anchors kept for
aliases), so every entry is checked exactly as before and a problem names its line.
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Callable, Iterator
from typing import IO, Any

import yaml

from newsletter.errors import SubscribersError

NULL = "tag:yaml.org,2002:null"
_STR = "tag:yaml.org,2002:str"
_NULLS = frozenset(("", "~", "null", "Null", "NULL"))  # YAML 1.1's plain null scalars
CSV_COLUMNS = ("email", "name", "topics", "format")
_SHAPE = "expected a list of entries like `- email: alice@example.org`"


def yaml_entries(
    stream: IO[str], label: str, loader: Callable[[IO[str]], Any]
) -> Iterator[yaml.Node]:
    """Yield each top-level entry of a subscribers YAML file as a node (a list of entries, or
    `subscribers:` holding one); a file that is not YAML stops with the line it breaks on."""
    parser = loader(stream)
    try:
        yield from _document(parser, label)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f": line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SubscribersError(f"{label}{where}: not valid YAML ({problem}); fix the file") from e
    finally:
        parser.dispose()


def _document(parser: Any, label: str) -> Iterator[yaml.Node]:
    parser.get_event()  # StreamStart
    if isinstance(parser.peek_event(), yaml.StreamEndEvent):
        return  # an empty file, or only comments
    parser.get_event()  # DocumentStart
    anchors: dict[str, yaml.Node] = {}
    root = parser.get_event()
    if isinstance(root, yaml.MappingStartEvent):
        key = parser.get_event()
        if not isinstance(key, yaml.ScalarEvent) or key.value != "subscribers":
            raise SubscribersError(f"{label}: {_SHAPE}")
        root = parser.get_event()
        if isinstance(root, yaml.SequenceStartEvent):
            yield from _sequence(parser, anchors)
        elif not (isinstance(root, yaml.ScalarEvent) and _tag(root) == NULL):
            raise SubscribersError(f"{label}: {_SHAPE}")
        if not isinstance(parser.get_event(), yaml.MappingEndEvent):
            raise SubscribersError(f"{label}: {_SHAPE}")
    elif isinstance(root, yaml.SequenceStartEvent):
        yield from _sequence(parser, anchors)
    elif not (isinstance(root, yaml.ScalarEvent) and _tag(root) == NULL):
        raise SubscribersError(f"{label}: {_SHAPE}")
    parser.get_event()  # DocumentEnd
    if not isinstance(parser.peek_event(), yaml.StreamEndEvent):
        parser.get_event()
        raise SubscribersError(f"{label}: expected one YAML document, not several")


def _sequence(parser: Any, anchors: dict[str, yaml.Node]) -> Iterator[yaml.Node]:
    while not isinstance(parser.peek_event(), yaml.SequenceEndEvent):
        yield _node(parser, parser.get_event(), anchors)
    parser.get_event()


def _node(parser: Any, event: Any, anchors: dict[str, yaml.Node]) -> Any:
    """The node an event starts, as PyYAML's composer makes it (tags resolved for null only)."""
    node: yaml.Node
    start: Any = event.start_mark  # libyaml's marks, which PyYAML's own nodes take alike
    if isinstance(event, yaml.ScalarEvent):
        node = yaml.ScalarNode(_tag(event), event.value, start, event.end_mark)  # type: ignore[arg-type]
    elif isinstance(event, yaml.AliasEvent):
        if event.anchor not in anchors:
            raise yaml.composer.ComposerError(
                None, None, f"found undefined alias {event.anchor!r}", start
            )
        return anchors[event.anchor]
    elif isinstance(event, yaml.SequenceStartEvent):
        items: list[yaml.Node] = []
        node = yaml.SequenceNode(event.tag or "", items, start, None)
        while not isinstance(parser.peek_event(), yaml.SequenceEndEvent):
            items.append(_node(parser, parser.get_event(), anchors))
        node.end_mark = parser.get_event().end_mark
    else:  # MappingStartEvent
        pairs: list[tuple[yaml.Node, yaml.Node]] = []
        node = yaml.MappingNode(event.tag or "", pairs, start, None)
        while not isinstance(parser.peek_event(), yaml.MappingEndEvent):
            key = _node(parser, parser.get_event(), anchors)
            pairs.append((key, _node(parser, parser.get_event(), anchors)))
        node.end_mark = parser.get_event().end_mark
    if event.anchor is not None:
        anchors[event.anchor] = node
    return node


def _tag(event: Any) -> str:
    if event.tag and event.tag != "!":
        return str(event.tag)
    return NULL if event.implicit[0] and event.value in _NULLS else _STR


Row = tuple[int, dict[str, str]]  # the line a row starts on, its cells by column


def csv_rows(stream: IO[str], label: str) -> Iterator[Row | str]:
    """Yield `email,name,topics,format` rows, or a problem line for a row that cannot be read."""
    reader = csv.reader(stream)
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if unknown or "email" not in header:
        what = f"unknown column '{unknown[0]}'" if unknown else "no `email` column"
        close = difflib.get_close_matches(unknown[0], CSV_COLUMNS, n=1) if unknown else []
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise SubscribersError(
            f"{label}: line 1: {what}{hint}; the header is {','.join(CSV_COLUMNS)}"
        )
    line = reader.line_num + 1
    for row in reader:
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            yield f"{label}: line {start}: {len(row)} cells but the header has {len(header)}"
            continue
        yield start, dict(zip(header, row, strict=False))  # a short row leaves cells empty


def csv_topics(cells: dict[str, str], line: int) -> list[tuple[str, int]] | None:
    """The topics cell, split on `;` or `|`; None when it is empty (every topic)."""
    raw = cells.get("topics", "").strip()
    return [(t, line) for t in re.split(r"[;|]", raw)] if raw else None
