"""Help that reads in a terminal, and a README command reference that says what --help says."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from newsletter.cli.main import cli
from tests.support.paths import REPO

WIDTH = 80  # a plain terminal


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command path, groups included (`()` is `newsletter` itself)."""
    found = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found.extend(commands(command, (*path, name)))
        else:
            found.append((*path, name))
    return found


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = cli
    for name in path:
        assert isinstance(command, click.Group)
        command = command.commands[name]
    return command


def leaves() -> list[tuple[str, ...]]:
    return [p for p in commands() if not isinstance(command_at(p), click.Group)]


def help_text(path: tuple[str, ...]) -> str:
    result = CliRunner().invoke(
        cli, [*path, "--help"], prog_name="newsletter", terminal_width=WIDTH
    )
    assert result.exit_code == 0, result.output
    return result.output


def long_options(command: click.Command) -> set[str]:
    names = set()
    for param in command.params:
        if isinstance(param, click.Option):
            names.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("--"))
    return names - {"--help"}


def readme_reference() -> dict[str, str]:
    """`newsletter ...` heading -> its section text, from the README's command reference."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    reference = readme.split("\n## Command reference\n", 1)[1].split("\n## ", 1)[0]
    sections = re.split(r"^### ", reference, flags=re.M)
    out = {"": sections[0]}  # the introduction: the options of `newsletter` itself
    for section in sections[1:]:
        heading = re.match(r"`newsletter ((?:[a-z]+ ?)+)", section)
        assert heading, f"a command reference heading is not `newsletter COMMAND ...`: {section!r}"
        out[heading.group(1).strip()] = section
    return out


def options_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z]", text)) - {"--help"}


@pytest.mark.parametrize("path", commands(), ids=lambda p: " ".join(p) or "newsletter")
def test_every_option_has_help_and_every_command_has_examples(path: tuple[str, ...]) -> None:
    command = command_at(path)
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.help, f"newsletter {' '.join(path)} {param.opts[0]} has no help"
    text = help_text(path)
    examples = text.split("Examples:", 1)
    assert len(examples) == 2, f"no examples in `newsletter {' '.join(path)} --help`"
    lines = [line.strip() for line in examples[1].splitlines() if line.strip()]
    assert lines and all(line.startswith("newsletter ") for line in lines), lines
    prefix = " ".join(("newsletter", *path))
    assert any(line.startswith(prefix) for line in lines), lines


def test_the_command_list_shows_every_summary_whole_on_one_line() -> None:
    for path in commands():
        command = command_at(path)
        if not isinstance(command, click.Group):
            continue
        listing = help_text(path).split("Commands:", 1)[1].split("Examples:", 1)[0]
        assert "..." not in listing
        rows = [line for line in listing.splitlines() if line.strip()]
        assert len(rows) == len(command.commands), rows  # one line per command, none wrapped
        for name, sub in command.commands.items():
            summary = sub.get_short_help_str(limit=1000)
            assert summary.endswith("."), f"{name}: {summary!r} is not a whole sentence"
            assert any(re.fullmatch(rf"  {name} +{re.escape(summary)}", r) for r in rows), rows


def test_the_readme_command_reference_lists_each_command_and_its_options() -> None:
    reference = readme_reference()
    documented = set(reference) - {""}
    expected = {" ".join(p) for p in leaves()}
    assert documented == expected, (
        f"in the README only: {sorted(documented - expected)}; "
        f"in the CLI only: {sorted(expected - documented)}"
    )
    for path in [(), *leaves()]:
        section = reference[" ".join(path)]
        in_help = long_options(command_at(path))
        in_readme = options_in(section)
        name = " ".join(("newsletter", *path))
        assert in_help <= in_readme, f"{name}: not in the README: {sorted(in_help - in_readme)}"
        assert in_readme <= in_help, f"{name}: not in --help: {sorted(in_readme - in_help)}"
        for option in in_help:  # and `--help` lists each of them
            assert option in help_text(path)
