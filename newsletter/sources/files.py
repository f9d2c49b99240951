"""Paper lists written by hand or by other tools: JSON (a list), JSON Lines, or YAML (a list).

Each paper is a mapping with at least `title`; `id`, `abstract`, `authors` (a list or one
comma-separated string), `url`, `pdf_url`, `code_url`, `project_url`, `published` (ISO date or
datetime), `upvotes`, `summary`, `categories` (a list or a space-separated string),
`primary_category`, `announce_type` and `keywords` (a list, or `ai_keywords`) are read when
present. Other keys are ignored, so an export with extra columns loads as it is. A problem names
the file and the line or item.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from newsletter.errors import SourceError
from newsletter.models import Paper
from newsletter.sources.normalize import make_paper

log = logging.getLogger(__name__)

SOURCE = "file"
_YAML_SUFFIXES = (".yaml", ".yml")
_JSON_SUFFIXES = (".json", ".jsonl", ".ndjson")


def parse_papers(data: bytes | str, name: str = "papers") -> list[Paper]:
    """Parse a JSON, JSON Lines or YAML list of papers; raise SourceError naming line or item."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes) else data.lstrip("\ufeff")
    head = text.lstrip()
    if not head:
        raise SourceError(f"{name}: the file is empty; expected a list of papers")
    lower = name.lower()
    if lower.endswith(_YAML_SUFFIXES) or (
        head[0] not in "[{" and not lower.endswith(_JSON_SUFFIXES)
    ):
        return _from_yaml(text, name)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        # One object per line is JSON Lines; anything else is a broken JSON document.
        if head[0] == "{" and _first_line_is_object(head):
            return _from_json_lines(text, name)
        raise json_error(name, e) from e
    if isinstance(doc, dict):
        # `{"papers": [...]}` is a common wrapper; a lone object is a list of one.
        doc = doc["papers"] if isinstance(doc.get("papers"), list) else [doc]
    if not isinstance(doc, list):
        raise SourceError(f"{name}: expected a JSON list of papers, found {type(doc).__name__}")
    return [_paper(item, name, f"item {i}") for i, item in enumerate(doc, 1)]


def json_error(name: str, e: json.JSONDecodeError) -> SourceError:
    """`papers.json: not valid JSON at line 3 column 5: Expecting ',' delimiter` (one line)."""
    # "Unterminated string starting at" reads oddly once the position is moved to the front.
    problem = re.sub(r"\s+(?:starting )?at$", "", e.msg)
    if not e.doc[e.pos :].strip() or problem.startswith("Unterminated"):
        problem += "; the file ends early, is it complete?"
    return SourceError(f"{name}: not valid JSON at line {e.lineno} column {e.colno}: {problem}")


def _first_line_is_object(text: str) -> bool:
    try:
        return isinstance(json.loads(text.split("\n", 1)[0]), dict)
    except json.JSONDecodeError:
        return False


def _from_json_lines(text: str, name: str) -> list[Paper]:
    papers: list[Paper] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise SourceError(
                f"{name}: line {number}: not valid JSON at column {e.colno}: {e.msg}"
            ) from e
        papers.append(_paper(item, name, f"line {number}"))
    return papers


def _from_yaml(text: str, name: str) -> list[Paper]:
    import yaml  # only a YAML papers file needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and start is not None:
            problem += f" ({context} that starts at line {start.line + 1})"
        raise SourceError(f"{name}: not valid YAML{where}: {problem}") from e
    if isinstance(doc, dict) and isinstance(doc.get("papers"), list):
        doc = doc["papers"]
    if not isinstance(doc, list):
        raise SourceError(
            f"{name}: expected a list of papers (JSON, JSON Lines or YAML `- title: ...` items)"
        )
    lines = _yaml_item_lines(text, yaml)
    papers: list[Paper] = []
    for i, item in enumerate(doc):
        where = f"line {lines[i]}" if i < len(lines) else f"item {i + 1}"
        papers.append(_paper(item, name, where))
    return papers


def _yaml_item_lines(text: str, yaml: Any) -> list[int]:
    """The 1-based line where each item of the top-level YAML list starts."""
    try:
        root = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return []
    if isinstance(root, yaml.MappingNode):
        root = next((v for k, v in root.value if k.value == "papers"), None)
    if not isinstance(root, yaml.SequenceNode):
        return []
    return [node.start_mark.line + 1 for node in root.value]


def _authors(value: Any) -> Any:
    if isinstance(value, list):
        return [v.get("name", "") if isinstance(v, dict) else str(v) for v in value]
    return value


def paper_from_item(item: Any, name: str, where: str) -> Paper:
    """Build the paper of one item of a list (`where`: "line 3", "item 2"; for messages)."""
    return _paper(item, name, where)


def _paper(item: Any, name: str, where: str) -> Paper:
    if not isinstance(item, dict):
        raise SourceError(f"{name}: {where}: expected a mapping with at least `title`")
    categories = item.get("categories") or ()
    if isinstance(categories, str):
        categories = categories.split()
    primary = item.get("primary_category")
    if primary:
        categories = [primary, *(c for c in categories if c != primary)]
    try:
        return make_paper(
            item.get("title"),
            id=_text(item.get("id")),
            authors=_authors(item.get("authors")),
            abstract=item.get("abstract") or "",
            url=_text(item.get("url")),
            pdf_url=_text(item.get("pdf_url")),
            code_url=_text(item.get("code_url")),
            project_url=_text(item.get("project_url")),
            published=item.get("published"),
            upvotes=item.get("upvotes"),
            source=SOURCE,
            summary=item.get("summary"),
            categories=categories,
            announce_type=_text(item.get("announce_type")),
            keywords=_keyword_list(item.get("keywords") or item.get("ai_keywords")),
        )
    except ValueError as e:
        raise SourceError(f"{name}: {where}: {e}") from e


def _keyword_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return value.split(",")
    return list(value) if isinstance(value, list) else []


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
