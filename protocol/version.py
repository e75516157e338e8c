"""The software version this process runs: what a node announces in its birth and the
controller shows beside its own on the technician page (docs/deploy.md, "Updating the
software, and going back").

The installed distribution's version (``pyproject.toml``), and the Git commit it was
built from, from pip's record of where it came from (PEP 610's ``direct_url.json``): the
commit itself when installed from a Git URL; when installed from a checkout on disk (as
``scripts/escape-update`` does: ``pip install /opt/escape-apartment/src[node]`` after the
checkout moved) the commit that checkout is at. Two Pis on the same release number but
different commits show different versions.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

DISTRIBUTION = "escape-apartment"
#: what a process run from a checkout that was never installed reports
UNKNOWN = "inconnue"
#: how many hex digits of a commit id are shown
COMMIT_DIGITS = 10
_SHA = re.compile(r"^[0-9a-f]{40}$")


def checkout_commit(directory: Path) -> str | None:
    """The commit a Git checkout at *directory* is at, read from its files (no git
    program needed); None when it is not a checkout or cannot be read."""
    git = directory / ".git"
    try:
        if git.is_file():   # a worktree: "gitdir: <its own dir>", refs in the common one
            git = (directory / git.read_text(encoding="ascii").strip().removeprefix("gitdir: ")).resolve()
        common = git / (git / "commondir").read_text(encoding="ascii").strip() if (
            git / "commondir").is_file() else git
        head = (git / "HEAD").read_text(encoding="ascii").strip()
        if _SHA.match(head):
            return head                      # detached, as scripts/escape-update leaves it
        if not head.startswith("ref: "):
            return None
        ref = head[5:]
        loose = common / ref
        if loose.is_file():
            sha = loose.read_text(encoding="ascii").strip()
            return sha if _SHA.match(sha) else None
        for line in (common / "packed-refs").read_text(encoding="ascii").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.match(sha):
                return sha
    except (OSError, UnicodeDecodeError):
        return None
    return None


def version_of(version: str, direct_url: str | None) -> str:
    """``0.1.0``, or ``0.1.0+g1a2b3c4d5e`` with the commit *direct_url* leads to (≤ 40 characters)."""
    try:
        origin = json.loads(direct_url or "{}")
    except ValueError:
        origin = {}
    commit = None
    if isinstance(origin, dict):
        vcs = origin.get("vcs_info")
        if isinstance(vcs, dict):
            commit = vcs.get("commit_id")
        elif isinstance(origin.get("dir_info"), dict) and str(origin.get("url", "")).startswith("file:"):
            commit = checkout_commit(Path(unquote(urlparse(origin["url"]).path)))
    if isinstance(commit, str) and commit:
        version += f"+g{commit[:COMMIT_DIGITS]}"
    return version[:40]


@cache
def software_version() -> str:
    """This process's :func:`version_of`; :data:`UNKNOWN` when the package is not installed."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
    return version_of(dist.version, dist.read_text("direct_url.json"))
