"""Nothing reaches into the controller's objects from outside: not its other modules, not
its routes, not the tests, not the bench.

A private member (``_name``) of a controller class is used through ``self`` only. Read
from the source: an attribute ``x._name`` whose ``x`` is not ``self`` or ``cls``, with a
``_name`` that one of the controller's classes defines, is a reach-in.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: where reach-ins are looked for
SCANNED = ("controller", "bench", "tests/controller", "tests/faults", "tests/integration",
           "tests/browser")
#: objects that are not the controller's, whose members may share a name with one of its
#: private members: a props driver (the RFID bench), paho's client
FOREIGN = {"reader", "bridge.client"}


def private_names() -> set[str]:
    """``_name``s the controller's classes define: methods, and attributes set on self."""
    names: set[str] = set()
    for path in (ROOT / "controller").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef):
                names |= {item.name for item in node.body
                          if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)}
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "self" and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def reach_ins(names: set[str]) -> list[str]:
    found = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Attribute) and node.attr in names and not (
                        isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")) \
                        and ast.unparse(node.value) not in FOREIGN:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_scan_knows_the_controllers_private_members() -> None:
    names = private_names()
    assert {"_consume", "_fresh", "_pending", "_push_scheduled"} <= names


def test_no_module_or_test_reaches_into_a_controller_object() -> None:
    assert reach_ins(private_names()) == []
