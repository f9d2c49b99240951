"""The shape of the package: one sub-package per stage, data walking forward, no import cycle."""

from __future__ import annotations

import pytest

from tests.support import imports

STAGES = ("config", "sources", "topics", "render", "delivery", "store", "audience")
APPS = ("job", "schedule", "web", "preview", "cli")


def test_the_package_reads_as_the_pipeline() -> None:
    flat = sorted(p.name for p in imports.PACKAGE.glob("*.py"))
    assert len(flat) <= 12, flat
    packages = sorted(p.parent.name for p in imports.PACKAGE.glob("*/__init__.py"))
    assert packages == sorted([*STAGES, "web", "preview", "cli"])
    for name in packages:
        init = imports.modules()[f"newsletter.{name}"].read_text(encoding="utf-8")
        assert init.startswith('"""'), f"newsletter/{name}/__init__.py says what the stage does"


def test_no_import_cycle() -> None:
    assert imports.cycles() == []


def test_the_import_graph_is_at_most_ten_modules_deep() -> None:
    chain = imports.longest_chain("newsletter.__main__")
    assert len(chain) <= 10, " -> ".join(chain)


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_never_imports_the_orchestrator_or_an_application(stage: str) -> None:
    for app in APPS:
        assert imports.reaches(f"newsletter.{stage}", f"newsletter.{app}") == []


@pytest.mark.parametrize(
    ("later", "earlier"),
    [
        ("delivery", "render"),  # delivery gets rendered variants, it never renders
        ("delivery", "topics"),
        ("render", "delivery"),
        ("render", "store"),
        ("topics", "render"),
        ("sources", "topics"),
        ("store", "delivery"),
    ],
)
def test_stages_do_not_reach_across(later: str, earlier: str) -> None:
    assert imports.reaches(f"newsletter.{later}", f"newsletter.{earlier}") == []


def test_the_graph_sees_lazy_imports_and_skips_type_only_ones() -> None:
    # `cli.main` imports the job inside a command; `job` imports `Config` only for types
    assert "newsletter.job" in imports.graph()["newsletter.cli.main"]
    assert "newsletter.config" not in imports.graph()["newsletter.job"]
