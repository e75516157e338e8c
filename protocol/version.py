"""The software version this process runs: what a node announces in its birth and the
controller shows beside its own on the technician page (docs/deploy.md, "Updates").

The installed distribution's version (``pyproject.toml``), and when pip installed it
from a Git URL the commit it was built from (PEP 610's ``direct_url.json``): two Pis on
the same release number but different commits show different versions.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata

DISTRIBUTION = "escape-apartment"
#: what a process run from a checkout that was never installed reports
UNKNOWN = "inconnue"
#: how many hex digits of a commit id are shown
COMMIT_DIGITS = 10


@cache
def software_version() -> str:
    """``0.1.0``, or ``0.1.0+g1a2b3c4d5e`` when installed from a Git commit (≤ 40 characters)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return UNKNOWN
    version = dist.version
    try:
        commit = json.loads(dist.read_text("direct_url.json") or "{}").get("vcs_info", {}).get("commit_id")
    except (ValueError, AttributeError):
        commit = None
    if isinstance(commit, str) and commit:
        version += f"+g{commit[:COMMIT_DIGITS]}"
    return version[:40]
