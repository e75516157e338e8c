"""scripts/escape-update: update a machine to a Git version, and go back.

Run for real on a checkout of its own (two commits of a small repository) with pip and
systemctl replaced by recorders: the checkout moves, the extra is installed, the services
restart; a version whose service does not come back is rolled back by itself; ``rollback``
returns to the version before. What it cannot show here: a real Pi's pip and systemd.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "escape-update"



def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


class Machine:
    """A prefix with src (a clone of *origin*), a fake pip and a fake systemctl that log."""

    def __init__(self, tmp_path: Path) -> None:
        self.origin = tmp_path / "origin"
        self.origin.mkdir()
        git(self.origin, "init", "-q", "-b", "main")
        self.commits = []
        for version in ("1", "2"):
            (self.origin / "VERSION").write_text(version)
            git(self.origin, "add", "VERSION")
            git(self.origin, "commit", "-q", "-m", f"v{version}")
            git(self.origin, "tag", f"v{version}")
            self.commits.append(git(self.origin, "rev-parse", "HEAD"))
        self.prefix = tmp_path / "opt"
        self.prefix.mkdir()
        git(tmp_path, "clone", "-q", str(self.origin), str(self.prefix / "src"))
        git(self.prefix / "src", "checkout", "-q", "--detach", "v1")
        self.log = tmp_path / "calls.log"
        self.failing = tmp_path / "failing"   # its content: the commit whose service fails
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "pip").write_text(f'#!/bin/sh\necho "pip $*" >> {self.log}\n')
        # is-active fails while the checkout is at the commit written in $failing
        (bin_dir / "systemctl").write_text(f"""#!/bin/sh
echo "systemctl $*" >> {self.log}
case "$1" in
  list-units) echo "escape-node@hall.service loaded active running x" ;;
  is-active) [ "$(cat {self.failing} 2>/dev/null)" != "$(git -C {self.prefix / 'src'} rev-parse HEAD)" ] ;;
esac
""")
        for tool in bin_dir.iterdir():
            tool.chmod(0o755)
        self.env = {**os.environ, "ESCAPE_PREFIX": str(self.prefix), "ESCAPE_STATE": str(tmp_path / "state"),
                    "PIP": str(bin_dir / "pip"), "SYSTEMCTL": str(bin_dir / "systemctl"),
                    "ESCAPE_UPDATE_WAIT_S": "2"}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(SCRIPT), *args], env=self.env, capture_output=True, text=True,
                              timeout=60, check=False)

    def head(self) -> str:
        return git(self.prefix / "src", "rev-parse", "HEAD")

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def machine(tmp_path: Path) -> Machine:
    return Machine(tmp_path)


def test_update_installs_the_version_restarts_and_rollback_goes_back(machine: Machine) -> None:
    v1, v2 = machine.commits
    done = machine.run("update", "v2")
    assert done.returncode == 0, done.stderr
    assert machine.head() == v2
    calls = machine.calls()
    assert f"pip install --quiet {machine.prefix / 'src'}[node]" in calls
    assert "systemctl restart escape-node@hall.service" in calls
    assert calls.index("systemctl restart escape-node@hall.service") > next(
        i for i, c in enumerate(calls) if c.startswith("pip install")), "installed before the restart"
    assert f"before:  {v1}" in machine.run("status").stdout

    back = machine.run("rollback")
    assert back.returncode == 0, back.stderr
    assert machine.head() == v1
    assert machine.run("update", "v1").returncode == 0, "already there: nothing to do"


def test_a_version_that_does_not_start_is_rolled_back_by_itself(machine: Machine) -> None:
    v1, v2 = machine.commits
    machine.failing.write_text(v2)
    failed = machine.run("update", "v2")
    assert failed.returncode == 1
    assert "rolled back" in failed.stderr
    assert machine.head() == v1, "the version before runs again"
    assert sum(c.startswith("pip install") for c in machine.calls()) == 2


def test_an_unknown_version_changes_nothing(machine: Machine) -> None:
    before = machine.head()
    failed = machine.run("update", "v9")
    assert failed.returncode == 1 and "unknown version v9" in failed.stderr
    assert machine.head() == before and machine.calls() == []
    assert machine.run("rollback").returncode == 1, "nothing recorded to go back to"
