"""Render an issue into the email: Jinja2 → MJML (mjml-python) → premailer, plus a text twin.

One render per topic selection (a "variant"); per-subscriber links stay placeholders that
delivery fills into the finished HTML and text. The HTML is kept under `size_budget_kb` (Gmail
clips longer messages): summaries shorten first, then sections are capped with "+N more" links.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
import mjml

from newsletter import resources
from newsletter.errors import RenderError
from newsletter.models import (
    PREFERENCES_PLACEHOLDER,
    UNSUBSCRIBE_PLACEHOLDER,
    Issue,
    RenderedEmail,
    Section,
)
from newsletter.render.blurbs import tidy_text, wrap
from newsletter.render.context import Plan, build_context, sample_issue
from newsletter.render.fitting import Pass, fit
from newsletter.render.validate import INSTALL_HINT, find_validator, validate_mjml

if TYPE_CHECKING:
    from newsletter.config.stages import RenderSettings

log = logging.getLogger(__name__)

HTML_TEMPLATE = "email.mjml"
TEXT_TEMPLATE = "email.txt"
TEMPLATE_NAMES = (
    HTML_TEMPLATE,
    "header.mjml",
    "top.mjml",
    "section.mjml",
    "paper.mjml",
    "footer.mjml",
    TEXT_TEMPLATE,
)


# -- construction, once per process ---------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _environment(dirs: tuple[Path, ...]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(d)) for d in dirs]),
        # Jinja's default escapes only .html/.xml; the MJML is HTML too, the text twin is not.
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml", "html", "xml"), default_for_string=False, default=False
        ),
        undefined=jinja2.StrictUndefined,  # a typo in a user's template fails loudly
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap
    return env


def environment(config: RenderSettings) -> jinja2.Environment:
    """Return the cached Jinja environment for this config's template folders."""
    return _environment(tuple(resources.template_dirs(config.templates_dir)))


@functools.lru_cache(maxsize=1)
def _premailer() -> Any:
    # imported on first use: 250 ms that commands which never render (papers, topics) skip
    from premailer import Premailer

    # Never fetch anything; keep @media and the !important the responsive rules need.
    return Premailer(
        base_url=None,
        allow_network=False,
        allow_loading_external_files=False,
        disable_link_rewrites=True,
        keep_style_tags=True,
        strip_important=False,
        disable_validation=True,
        cssutils_logging_level=logging.CRITICAL,
    )


# -- the three stages -----------------------------------------------------------------------------


def _jinja(env: jinja2.Environment, name: str, context: dict[str, Any]) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateSyntaxError as e:
        raise RenderError(
            f"{e.filename or e.name or name}:{e.lineno}: {e.message}; fix the template"
        ) from e
    except jinja2.TemplateError as e:
        where = _template_frame(e) or name
        raise RenderError(f"{where}: {e}; fix the template") from e


def _template_frame(error: BaseException) -> str | None:
    """Return `file:line` of the innermost template frame of a render error's traceback."""
    tb, found = error.__traceback__, None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith((".mjml", ".txt", ".html")):
            found = f"{filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return found


def compile_mjml(source: str, name: str = HTML_TEMPLATE) -> str:
    """Compile MJML to HTML; raise RenderError naming the template."""
    try:
        return mjml.mjml2html(source, disable_comments=True, fonts={})
    except Exception as e:  # mjml-python raises bare ValueError/RuntimeError
        raise RenderError(f"{name}: MJML does not compile ({e}); fix the template") from e


def inline_css(html: str) -> str:
    """Inline the CSS with premailer, keeping @media rules and Outlook conditional comments."""
    try:
        out = _premailer().transform(html, pretty_print=False)
    except Exception as e:  # lxml / cssutils errors on markup a template produced
        raise RenderError(f"{HTML_TEMPLATE}: premailer cannot inline the CSS ({e})") from e
    # lxml drops a lower-case doctype it does not recognise; clients need it for standards mode.
    if not out.lstrip().lower().startswith("<!doctype"):
        out = "<!doctype html>\n" + out
    return out


# -- one variant ----------------------------------------------------------------------------------


def _select(issue: Issue, topics: frozenset[str] | None) -> tuple[Section, ...]:
    if topics is None:
        return issue.sections
    wanted = {t.casefold() for t in topics}
    return tuple(s for s in issue.sections if s.topic.casefold() in wanted)


def _render_pass(
    env: jinja2.Environment,
    issue: Issue,
    sections: Sequence[Section],
    config: RenderSettings,
    plan: Plan,
) -> Pass:
    t0 = time.perf_counter()
    context = build_context(issue, sections, config, plan, _links())
    source = _jinja(env, HTML_TEMPLATE, context)
    t1 = time.perf_counter()
    compiled = compile_mjml(source)
    t2 = time.perf_counter()
    html = inline_css(compiled)
    t3 = time.perf_counter()
    seconds = {"template": t1 - t0, "mjml": t2 - t1, "premailer": t3 - t2}
    return Pass(plan, html, len(html.encode("utf-8")), seconds)


def _links() -> dict[str, str]:
    return {"unsubscribe": UNSUBSCRIBE_PLACEHOLDER, "preferences": PREFERENCES_PLACEHOLDER}


def render_issue(
    issue: Issue, config: RenderSettings, *, topics: frozenset[str] | None = None
) -> RenderedEmail:
    """Render one variant (the sections in `topics`, all when None) as HTML and text."""
    started = time.perf_counter()
    env = environment(config)
    sections = _select(issue, topics)
    passes: list[Pass] = []

    def attempt(plan: Plan) -> Pass:
        passes.append(_render_pass(env, issue, sections, config, plan))
        return passes[-1]

    chosen = fit(attempt, sections, config)
    context = build_context(issue, sections, config, chosen.plan, _links())
    t0 = time.perf_counter()
    text = _text(env, context)
    text_seconds = time.perf_counter() - t0
    stage = {k: sum(p.seconds[k] for p in passes) for k in ("template", "mjml", "premailer")}
    log.debug(
        "render %s: %d pass(es), template %.0f ms, MJML %.0f ms, premailer %.0f ms, "
        "text %.0f ms, total %.0f ms, HTML %.1f KB",
        issue.id,
        len(passes),
        stage["template"] * 1000,
        stage["mjml"] * 1000,
        stage["premailer"] * 1000,
        text_seconds * 1000,
        (time.perf_counter() - started) * 1000,
        chosen.size / 1000,
    )
    counts = context["counts"]
    return RenderedEmail(
        subject=context["subject"],
        html=chosen.html,
        text=text,
        preheader=context["preheader"],
        size_bytes=chosen.size,
        web_only=counts["web_only"],
        papers_shown=counts["shown"],
        topics=tuple(s.topic for s in sections),
    )


def _text(env: jinja2.Environment, context: dict[str, Any]) -> str:
    return tidy_text(_jinja(env, TEXT_TEMPLATE, context))


# -- checking templates ---------------------------------------------------------------------------


def check_templates(config: RenderSettings, *, validate: bool = True) -> list[str]:
    """Compile every template and render a small issue through all stages; return problems.

    With `validate`, the reference MJML validator also checks the markup where it is installed.
    """
    problems: list[str] = []
    dirs = resources.template_dirs(config.templates_dir)
    if config.templates_dir is not None:
        user_dir = dirs[0]
        if not user_dir.is_dir():
            return [f"templates_dir: {user_dir}: no such folder"]
        for path in sorted(user_dir.iterdir()):
            if path.is_file() and path.name not in TEMPLATE_NAMES and not path.name.startswith("."):
                problems.append(
                    f"{path}: replaces no template (known: {', '.join(TEMPLATE_NAMES)}); rename it"
                )
    env = _environment(tuple(dirs))
    for name in TEMPLATE_NAMES:
        try:
            env.get_template(name)
        except jinja2.TemplateSyntaxError as e:
            problems.append(f"{e.filename or name}:{e.lineno}: {e.message}")
        except jinja2.TemplateNotFound:
            problems.append(f"{name}: template missing from {', '.join(map(str, dirs))}")
    if problems:
        return problems
    issue = sample_issue(config)
    context = build_context(
        issue, issue.sections, config, Plan(config.summary_chars, (2, 1)), _links()
    )
    try:
        source = _jinja(env, HTML_TEMPLATE, context)
        _text(env, context)
    except RenderError as e:  # names the template file and line already
        return [str(e)]
    # MJML reports a line of the assembled email, not of a partial: say which files are the user's.
    where = _overrides(dirs) if config.templates_dir is not None else ""
    try:
        inline_css(compile_mjml(source))
    except RenderError as e:
        return [f"{e}{where}"]
    if validate:
        validator = find_validator()
        if validator is None:
            log.info("reference MJML validator not installed (%s); skipped", INSTALL_HINT)
        else:
            found = validate_mjml(source, name=f"{HTML_TEMPLATE} (rendered)", validator=validator)
            problems.extend(f"{p}{where}" for p in found)
    return problems


def _overrides(dirs: list[Path]) -> str:
    """Say which bundled templates the user's folder replaces (an MJML error is in one of them)."""
    mine = [name for name in TEMPLATE_NAMES if (dirs[0] / name).is_file()]
    return f" (replaced from {dirs[0]}: {', '.join(mine)})" if mine else ""
