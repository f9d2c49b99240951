"""`newsletter init DIR`: a working digest folder, made whole or not at all.

The folder gets `config.yaml` (every setting a new operator changes, commented, and the default
topics), `subscribers.yaml` (the commented example), `secrets.env` (a fresh link-signing key,
readable by its owner only) and a `.gitignore` that keeps the secrets and the state out of git.

Nothing is ever overwritten. A new DIR is written as a hidden sibling folder,
flushed to disk and renamed into place, so it appears whole. Into an existing DIR the files are
staged in a private folder inside it, then hard-linked into place: a link refuses to replace a
file, so even one that appears while `init` runs is safe, and a failure removes what was linked.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from newsletter import resources
from newsletter.cli.options import SECRETS_FILE
from newsletter.errors import AlreadyExistsError, WriteError

SECRET_KEY_BYTES = 32  # token_urlsafe(32): 43 characters, 256 random bits

CONFIG_HEAD = """\
# newsletter configuration, made by `newsletter init`. Every key but `topics` has a default (the
# README's "Configuration" lists them all); paths are relative to this file. `newsletter check`
# validates it; `newsletter check --production` lists what a real send still needs.

title: Papers of the week
description: The week's research papers, grouped by topic.
timezone: UTC                     # IANA name: issue ids (ISO weeks) and dates follow it

# Where `newsletter serve` (subscribe, confirm, unsubscribe, archive) is reached: every link in
# the email points here. For real sends, the public https address of your reverse proxy, like
# https://digest.example.net (Gmail and Yahoo need https for one-click unsubscribe).
base_url: http://localhost:8000

# The sender's postal address, shown in the footer of every issue (bulk mail must carry one),
# like "Example Lab, 1 Main Street, 10115 Berlin, Germany".
postal_address: null

sources:
  - hf_daily: {}                  # this week's Hugging Face Daily Papers
  # - arxiv: {categories: [cs.CL, cs.LG]}   # arXiv's listing feeds
  # - file: papers.jsonl          # papers of your own (JSON, JSON Lines or YAML)

subscribers: subscribers.yaml     # the hand-written list; web sign-ups live in the state
state: newsletter.db              # SQLite file, or a database URL

# Who the issue comes from: an address at a domain you control, whose DNS publishes SPF, DKIM
# and DMARC records. Sign with DKIM by naming the private key (PEM) and its DNS selector.
sender: {name: Papers of the week, address: digest@example.org}
# dkim: {domain: example.org, selector: news, key_path: dkim-private.pem}

# How messages leave. The outbox keeps them as files to open in a mail client.
delivery:
  transport: outbox               # `outbox` (a local Maildir: trials) or `smtp` (real sends)
  outbox: outbox/
  # The relay for `transport: smtp`. Its password is read from the variable `password_env`
  # names: put it in secrets.env beside this file, or in the environment.
  smtp: {host: smtp.example.org, port: 587, security: starttls, username: null,
         password_env: NEWSLETTER_SMTP_PASSWORD}

schedule:
  cron: "0 8 * * mon"             # when `newsletter schedule` sends: Monday 08:00
  misfire_grace_hours: 6          # a run missed by less than this (machine asleep) still happens

"""

SECRETS_HEAD = """\
# Secrets of this digest. `newsletter` reads this file from beside config.yaml for any variable
# the environment does not set; it is also a systemd EnvironmentFile. Never commit or share it.
# NEWSLETTER_SECRET_KEY signs the links in every email (unsubscribe, preferences): keep it, or
# sent links stop working. To rotate, put a new key first: NEWSLETTER_SECRET_KEY=new,old
"""

GITIGNORE = f"""\
# made by `newsletter init`: secrets and state stay out of version control
{SECRETS_FILE}
*.pem
newsletter.db
newsletter.db-journal
newsletter.db-wal
newsletter.db-shm
*.lock
outbox/
preview/
"""

NEXT_STEPS = (
    "edit config.yaml (title, topics, sender, base_url, postal_address) and subscribers.yaml",
    "newsletter check && newsletter preview --open      # the issue as it would go out",
    "newsletter check --production                      # what a real send still needs",
)


@dataclass(frozen=True)
class Scaffold:
    folder: Path
    files: tuple[str, ...]  # in the order they were written


def config_text() -> str:
    """The commented settings, then the bundled config's topics with their comment block."""
    bundled = resources.default_config_text()
    lines = bundled.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("topics:"))
    while start > 0 and lines[start - 1].startswith("#"):
        start -= 1  # keep the comment that explains the topics
    return CONFIG_HEAD + "".join(lines[start:])


def planned_files() -> dict[str, tuple[str, int]]:
    """Name -> (content, mode) of every file `init` writes, with a freshly made secret key."""
    key = secrets.token_urlsafe(SECRET_KEY_BYTES)
    return {
        "config.yaml": (config_text(), 0o644),
        "subscribers.yaml": (resources.subscribers_example_text(), 0o644),
        SECRETS_FILE: (
            f"{SECRETS_HEAD}NEWSLETTER_SECRET_KEY={key}\n# NEWSLETTER_SMTP_PASSWORD=\n",
            0o600,
        ),
        ".gitignore": (GITIGNORE, 0o644),
    }


def make_folder(folder: Path) -> Scaffold:
    """Write a new digest folder; refuse if any of its files exists; leave nothing on failure."""
    files = planned_files()
    if folder.exists() and not folder.is_dir():
        raise AlreadyExistsError(f"{folder} exists and is not a folder; name a new or empty one")
    for name in files:
        if (folder / name).exists() or (folder / name).is_symlink():
            raise AlreadyExistsError(
                f"{folder / name} exists already; init never overwrites: "
                "choose another folder, or move the file away"
            )
    try:
        if folder.exists():
            _fill_existing(folder, files)
        else:
            _make_new(folder, files)
    except FileExistsError as e:
        raise AlreadyExistsError(
            f"{e.filename} appeared while init ran; nothing was written"
        ) from e
    except OSError as e:
        raise WriteError(f"{folder}: cannot write ({e}); nothing was written") from e
    return Scaffold(folder, tuple(files))


def _make_new(folder: Path, files: dict[str, tuple[str, int]]) -> None:
    """Write the files into a hidden sibling folder, then rename it: the folder appears whole."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.init-", dir=folder.parent))
    try:
        for name, (text, mode) in files.items():
            _write_new(staging / name, text, mode)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it private; a folder is not secret
        os.rename(staging, folder)  # fails if a non-empty folder appeared meanwhile
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _sync_folder(folder.parent)


def _fill_existing(folder: Path, files: dict[str, tuple[str, int]]) -> None:
    """Stage the files inside `folder`, then hard-link each into place (never over a file)."""
    linked: list[Path] = []
    staging = Path(tempfile.mkdtemp(prefix=".newsletter-init-", dir=folder))
    try:
        for name, (text, mode) in files.items():
            _write_new(staging / name, text, mode)
        for name in files:
            _link_new(staging / name, folder / name)
            linked.append(folder / name)
    except BaseException:
        for path in linked:
            path.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _sync_folder(folder)


def _write_new(path: Path, text: str, mode: int) -> None:
    # created with its final mode, so the secrets are never readable by others, even briefly
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(path, mode)  # the umask may have taken bits off a 0644


# what link(2) says on a filesystem that has no hard links (FAT, some network mounts)
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK}


def _link_new(staged: Path, final: Path) -> None:
    try:
        os.link(staged, final)  # fails with FileExistsError rather than replace a file
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        # a filesystem without hard links: check, then move (the check above already ran once)
        if final.exists():
            raise FileExistsError(17, "File exists", str(final)) from None
        os.rename(staged, final)


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
