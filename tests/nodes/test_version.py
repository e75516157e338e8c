"""The software version a node reports: the release and the Git commit it was installed from."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from protocol.version import checkout_commit, version_of


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_installed_from_a_git_url_the_commit_is_in_the_version():
    url = json.dumps({"url": "https://example.org/escape.git",
                      "vcs_info": {"vcs": "git", "commit_id": "1a2b3c4d5e6f" + "0" * 28}})
    assert version_of("0.1.0", url) == "0.1.0+g1a2b3c4d5e"
    assert version_of("0.1.0", None) == "0.1.0"
    assert version_of("0.1.0", "not json") == "0.1.0"


def test_installed_from_a_checkout_the_commit_it_is_at(tmp_path: Path):
    git(tmp_path, "init", "-q", "-b", "main")
    (tmp_path / "f").write_text("1")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-q", "-m", "one")
    sha = git(tmp_path, "rev-parse", "HEAD")
    url = json.dumps({"url": tmp_path.as_uri(), "dir_info": {}})
    assert version_of("0.2.0", url) == f"0.2.0+g{sha[:10]}", "on a branch (loose ref)"
    git(tmp_path, "pack-refs", "--all")
    assert checkout_commit(tmp_path) == sha, "on a branch (packed ref)"
    git(tmp_path, "checkout", "-q", "--detach")
    assert checkout_commit(tmp_path) == sha, "detached, as scripts/escape-update leaves it"
    assert checkout_commit(tmp_path / "nowhere") is None
    assert version_of("0.2.0", json.dumps({"url": (tmp_path / "nowhere").as_uri(), "dir_info": {}})) == "0.2.0"
