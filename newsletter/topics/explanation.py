"""Say in words why a paper went to its topic: the keywords, their weights, the runner-up."""

from __future__ import annotations

from collections.abc import Sequence

from newsletter.models import OTHER, Assignment, Hit, Paper


def _describe_hits(hits: Sequence[Hit], limit: int = 5) -> str:
    """`"agent" in title, abstract x2 (weight 1.31, +3.40); ...`: one entry per keyword."""
    keywords: dict[str, list[Hit]] = {}
    for h in hits:
        keywords.setdefault(h.keyword, []).append(h)
    shown = []
    for keyword, found in keywords.items():
        where = ", ".join(h.field + (f" x{h.count}" if h.count > 1 else "") for h in found)
        where = "the text (learned)" if where == "learned" else where
        gain = sum(h.gain for h in found)
        shown.append(f'"{keyword}" in {where} (weight {found[0].weight:.2f}, +{gain:.2f})')
    if len(shown) > limit:
        more = len(shown) - limit
        shown = shown[:limit] + [f"{more} more keyword" + ("s" if more > 1 else "")]
    return "; ".join(shown)


def _breadth_note(assignment: Assignment) -> str | None:
    best = next((s for s in assignment.scores if s.topic == assignment.topic), None)
    if best is None or abs(best.breadth - 1.0) < 0.05:
        return None
    common = "common" if best.breadth > 1 else "rare"
    total = sum(h.gain for h in best.hits)
    return (
        f"   hits add up to {total:.2f}, divided by {best.breadth:.2f}: the breadth of the"
        f" topic, whose keywords are {common} in papers at large"
    )


def explain(paper: Paper, assignment: Assignment) -> str:
    """Say in words why a paper went where it went, and what came second."""
    lines = [f"{paper.id}: {paper.title}"]
    if assignment.topic != OTHER:
        lines.append(f"-> {assignment.topic} (score {assignment.score:.2f})")
        lines.append(f"   because of {_describe_hits(assignment.hits)}")
        note = _breadth_note(assignment)
        if note:
            lines.append(note)
        if len(assignment.topics) > 1:
            lines.append(f"   also listed under {', '.join(assignment.topics[1:])}")
    elif assignment.scores:
        lines.append(f"-> {OTHER}: no topic that matched has the hits min_score asks for")
    else:
        lines.append(f"-> {OTHER}: no keyword of any topic appears")
    ru = assignment.runner_up
    if ru is not None:
        label = "closest topic" if assignment.topic == OTHER else "runner-up"
        lines.append(
            f"   {label}: {ru.topic} (score {ru.score:.2f}) from {_describe_hits(ru.hits)}"
        )
    elif assignment.topic != OTHER:
        lines.append("   runner-up: none (no other topic matched)")
    for s in assignment.scores:
        if s.excluded_by is not None:
            lines.append(f'   ruled out: {s.topic} (excluded by "{s.excluded_by}")')
        elif s.missing_require:
            lines.append(f"   ruled out: {s.topic} (none of its required words appear)")
    return "\n".join(lines)
