"""Every dependency of a node (the package's own and its ``[node]`` extra, and theirs) comes
as a wheel for a 64-bit Raspberry Pi OS, proven against PyPI with ``pip download
--platform … --only-binary=:all:`` — except the ones docs/deploy.md names, and those are
checked to still be exceptions (so the list stays exact).

Raspberry Pi OS Bookworm has glibc 2.36: a ``manylinux_2_17`` wheel installs, and so does a
``manylinux_2_34`` one. pip does not widen ``--platform`` to older manylinux levels, so each
level is asked for by name. Needs PyPI (reachable here and in CI): no network is a failure.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLATFORM = "manylinux_2_17_aarch64"
#: wheels only for a newer glibc than manylinux_2_17 (still below Bookworm's 2.36)
NEWER_GLIBC = {"lgpio": "manylinux_2_34_aarch64"}
#: no aarch64 wheel at all: pip builds it on the Pi (gcc and python3-dev: nodes/install.py)
FROM_SOURCE = {"spidev"}

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def requirements() -> dict[str, str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    reqs = [*project["dependencies"], *project["optional-dependencies"]["node"]]
    return {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower(): r for r in reqs}


def download(dest: Path, reqs: list[str], *platforms: str, deps: bool = True) -> subprocess.CompletedProcess[str]:
    """``pip download`` of aarch64 CPython 3.11 wheels only, from PyPI alone."""
    env = {**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""}
    argv = [sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--index-url",
            "https://pypi.org/simple/", "--only-binary=:all:", "--python-version", "3.11",
            "--implementation", "cp", "--abi", "cp311", "-d", str(dest)]
    for platform in platforms:
        argv += ["--platform", platform]
    if not deps:
        argv.append("--no-deps")
    return subprocess.run([*argv, *reqs], capture_output=True, text=True, timeout=240, env=env, check=False)


def test_every_node_dependency_is_an_aarch64_wheel_but_the_named_exceptions(tmp_path: Path) -> None:
    reqs = requirements()
    assert set(NEWER_GLIBC) | FROM_SOURCE <= set(reqs), "an exception that is no longer a dependency"
    plain = [r for name, r in reqs.items() if name not in NEWER_GLIBC and name not in FROM_SOURCE]
    done = download(tmp_path / "wheels", plain, PLATFORM)
    assert done.returncode == 0, done.stdout + done.stderr
    wheels = sorted(p.name for p in (tmp_path / "wheels").iterdir())
    assert wheels and all(w.endswith(".whl") for w in wheels), wheels
    assert any("pydantic_core" in w and "aarch64" in w for w in wheels), "the compiled ones for aarch64"
    print(f"\n[aarch64] {len(wheels)} wheels for {PLATFORM}: {', '.join(wheels)}")

    for name, platform in NEWER_GLIBC.items():
        newer = download(tmp_path / name, [reqs[name]], platform, deps=False)
        assert newer.returncode == 0, newer.stdout + newer.stderr
        older = download(tmp_path / f"{name}-old", [reqs[name]], PLATFORM, deps=False)
        assert older.returncode != 0, f"{name} now has a {PLATFORM} wheel: drop it from NEWER_GLIBC"
    for name in FROM_SOURCE:
        none = download(tmp_path / name, [reqs[name]], PLATFORM, "manylinux_2_34_aarch64",
                        "manylinux_2_36_aarch64", deps=False)
        assert none.returncode != 0, f"{name} now has an aarch64 wheel: drop it from FROM_SOURCE"


def test_the_deploy_guide_names_the_exceptions() -> None:
    guide = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in FROM_SOURCE:
        assert re.search(rf"`{name}`[^.]*builds?\s+from\s+source", guide), name
    for name, platform in NEWER_GLIBC.items():
        assert f"`{name}`" in guide and platform in guide, name
