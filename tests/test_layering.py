"""The layout holds: who may import whom, no import cycle anywhere, and what a node installs.

Read from the source (every ``import`` and ``from … import``, at module level or inside a
function: a lazy import is an import all the same), not from what happens to be loaded.
The source is parsed once, when this file is collected: before any test runs (CPython
3.11.7's ``ast.parse`` can fail with "AST constructor recursion depth mismatch" after the
threads and greenlets of other tests have run, python/cpython#106905).

    protocol  ← what both sides share (the MQTT contract, the client, secrets)
    props     ← the drivers; props.sim: their simulated wiring (tests and rehearsal only)
    config    ← the game file's models and loader
    nodes     ← the node agent (props, protocol, config)
    controller, dashboard ← the game server (everything above)
    simulation ← the deterministic simulator: drives the cores above; nothing imports it
    soak      ← a year of sessions over the real processes (like bench): may import
                anything, nothing imports it
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("config", "controller", "dashboard", "nodes", "props", "protocol", "simulation", "soak")
#: what each package may import from the others (itself always)
ALLOWED = {
    "protocol": set(),
    "props": set(),
    "config": {"props", "protocol"},
    "nodes": {"config", "props", "protocol"},
    "controller": {"config", "dashboard", "nodes", "props", "protocol"},
    "dashboard": set(),
    "simulation": {"config", "controller", "nodes", "props", "protocol"},
    "soak": {"config", "controller", "dashboard", "nodes", "props", "protocol", "simulation"},
}
#: the web stack and the embedded broker: the game server's, never a node's
SERVER_ONLY = ("fastapi", "starlette", "uvicorn", "amqtt", "itsdangerous", "aiomqtt", "httpx")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _walk(tree: ast.AST, *, typing_too: bool) -> Iterator[ast.AST]:
    """Every node of *tree*; without what ``if TYPE_CHECKING:`` guards unless *typing_too*
    (an import for the type checker only is no dependency at run time, hence no cycle)."""
    for node in ast.iter_child_nodes(tree):
        if not typing_too and isinstance(node, ast.If) and (
                (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
                or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")):
            yield from (n for child in node.orelse for n in _walk(child, typing_too=typing_too))
            continue
        yield node
        yield from _walk(node, typing_too=typing_too)


def imports(*, typing_too: bool = True) -> dict[str, set[str]]:
    """Every first-party module and the modules it imports (resolved to existing modules)."""
    files = {module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in _walk(ast.parse(path.read_text(encoding="utf-8")), typing_too=typing_too):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
            for dotted in targets:
                target = dotted
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
        graph.setdefault(name, set())
    return graph


def external_imports(package: str) -> set[str]:
    found: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                found.add(node.module)
    return found


def external_imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


#: parsed at collection (see the module's docstring)
GRAPH = imports()
RUNTIME_GRAPH = imports(typing_too=False)
EXTERNAL = {pkg: external_imports(pkg) for pkg in PACKAGES}
DRIVER_IMPORTS = {p: external_imports_of(p) for p in (ROOT / "props").rglob("*.py")}


def test_no_import_cycle_anywhere() -> None:
    assert cycles(RUNTIME_GRAPH) == []


def test_each_package_imports_only_what_its_layer_may() -> None:
    wrong = sorted(f"{a} imports {b}" for a, targets in GRAPH.items() for b in targets
                   if (top := b.split(".")[0]) != (own := a.split(".")[0]) and top not in ALLOWED[own])
    assert wrong == []


@pytest.mark.parametrize("package", ["protocol", "props", "config", "nodes"])
def test_the_node_side_never_imports_the_web_stack(package: str) -> None:
    wrong = sorted(m for m in EXTERNAL[package] if m.split(".")[0] in SERVER_ONLY)
    assert wrong == []


def test_production_drivers_never_import_the_mock_pins() -> None:
    """MockFactory is the simulated hardware: props.sim's business, never a driver's."""
    wrong = sorted(str(p.relative_to(ROOT)) for p, found in DRIVER_IMPORTS.items()
                   if "sim" not in p.relative_to(ROOT / "props").parts
                   and any(m.startswith("gpiozero.pins.mock") for m in found))
    assert wrong == []


def test_a_node_install_brings_no_web_stack(tmp_path: Path) -> None:
    """``pip install .[node]`` as a Pi would: resolved without installing (pip's report)."""
    report = tmp_path / "report.json"
    subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
                    "--quiet", "--report", str(report), f"{ROOT}[node]"], check=True,
                   capture_output=True, timeout=300)
    import json

    names = {i["metadata"]["name"].lower() for i in json.loads(report.read_text())["install"]}
    assert {"gpiozero", "paho-mqtt", "pydantic", "pyyaml", "pyserial", "lgpio"} <= names
    assert not names & {"fastapi", "starlette", "uvicorn", "amqtt", "websockets", "itsdangerous",
                        "aiomqtt"}, sorted(names)


def test_the_package_builds_without_warnings(tmp_path: Path) -> None:
    """A wheel of the project builds with no "Package would be ignored" (or other setuptools)
    warning."""
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                            "--wheel-dir", str(tmp_path), str(ROOT)], capture_output=True, text=True,
                           timeout=300, check=True)
    log = built.stdout + built.stderr
    assert not [w for w in ("would be ignored", "BuildBackendWarning", "SetuptoolsDeprecationWarning")
                if w in log], log
