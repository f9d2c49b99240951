"""The package's import graph, read from the source (what `import` statements say, not a run).

Every `import` and `from ... import` of a `newsletter` module counts, at the top of a module or
inside a function (a lazy import is still a dependency); imports under `if TYPE_CHECKING:` do not
(they never run). `from newsletter.x import y` is an edge to `newsletter.x.y` where that is a
module, else to `newsletter.x`.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

from tests.support.paths import REPO

PACKAGE = REPO / "newsletter"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache
def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


class _Imports(ast.NodeVisitor):
    def __init__(self, name: str, is_package: bool) -> None:
        self.name, self.is_package = name, is_package
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                self.visit(child)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(a.name for a in node.names if a.name.startswith("newsletter"))

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            here = self.name.split(".")
            here = here if self.is_package else here[:-1]
            base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
        if not base.startswith("newsletter"):
            return
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self.found.add(sub if sub in modules() else base)


@functools.cache
def graph() -> dict[str, frozenset[str]]:
    """Module -> the newsletter modules it imports."""
    out: dict[str, frozenset[str]] = {}
    for name, path in modules().items():
        visitor = _Imports(name, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        edges = set()
        for target in visitor.found:
            while target not in modules() and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in modules() and target != name:
                edges.add(target)
        out[name] = frozenset(edges)
    return out


def cycles() -> list[list[str]]:
    """Every group of modules that import each other, directly or not (Tarjan)."""
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(g[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return found


def longest_chain(start: str) -> list[str]:
    """The longest import chain from `start` down to a module that imports nothing more."""
    g = graph()

    @functools.cache
    def down(v: str) -> tuple[str, ...]:
        best: tuple[str, ...] = ()
        for w in sorted(g[v]):
            chain = down(w)
            if len(chain) > len(best):
                best = chain
        return (v, *best)

    return list(down(start))


def reaches(source_prefix: str, target_prefix: str) -> list[tuple[str, str]]:
    """Direct imports from modules under `source_prefix` of modules under `target_prefix`."""
    return [
        (a, b)
        for a, targets in sorted(graph().items())
        if a == source_prefix or a.startswith(source_prefix + ".")
        for b in sorted(targets)
        if b == target_prefix or b.startswith(target_prefix + ".")
    ]
