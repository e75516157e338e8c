"""The technician's commands against the shipped config, in simulation."""

from __future__ import annotations

import pytest

from config.loader import SHIPPED_GAME, load_game
from controller.cli import main
from nodes.wiring import BCM_TO_PHYSICAL, wiring_sheet


def test_wiring_sheet_lists_every_pin_with_its_header_number(capsys):
    assert main(["node", "wiring", "--id", "hall"]) == 0
    out = capsys.readouterr().out
    assert "11   GPIO17  mailbox_lock" in out          # BCM 17 is physical pin 11
    assert "GPIO26" in out and "emergency" in out
    node = load_game(SHIPPED_GAME).node("hall")
    for prop in node.props:
        for use in prop.pin_uses():
            assert f"GPIO{use.pin} " in out


def test_wiring_sheet_as_markdown_file(tmp_path):
    out = tmp_path / "hall.md"
    assert main(["node", "wiring", "--id", "poubelles", "--markdown", "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert text.startswith("# Wiring of node poubelles")
    assert "| 40 | GPIO21 | bins | sorting | SPI SCLK (shared)" in text


def test_every_bcm_pin_has_its_physical_number():
    assert sorted(BCM_TO_PHYSICAL) == list(range(2, 28))
    assert len(set(BCM_TO_PHYSICAL.values())) == 26


@pytest.mark.parametrize("node", ["hall", "cuisine", "sdb", "chambre", "poubelles"])
def test_self_test_of_every_prop_passes_in_simulation(node, capsys):
    assert main(["node", "test", "--id", node, "--simulate", "--timeout", "3"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out
    assert "FAIL" not in out


def test_self_test_of_one_prop(capsys):
    assert main(["node", "test", "--id", "hall", "--prop", "mailbox_lock", "--simulate"]) == 0
    assert "PASS  mailbox_lock" in capsys.readouterr().out


@pytest.mark.parametrize(("node", "prop", "uid", "extra"), [
    ("cuisine", "ingredients", "04a1b2c3", []),
    ("chambre", "documents", "0a00112233", []),
    ("poubelles", "bins", "05b2b2b2", ["--bin", "verte"]),
])
def test_enroll_prints_the_uid_of_the_next_tag(node, prop, uid, extra, capsys):
    assert main(["node", "enroll", "--id", node, "--prop", prop, "--simulate",
                 "--simulate-tag", uid, "--timeout", "5", *extra]) == 0
    out = capsys.readouterr().out
    assert f"\n{uid}\n" in out
    assert f'"{uid}": nom_du_badge' in out


def test_enroll_on_a_lock_is_refused(capsys):
    assert main(["node", "enroll", "--id", "hall", "--prop", "mailbox_lock", "--simulate",
                 "--timeout", "1"]) == 2
    assert "not an RFID reader" in capsys.readouterr().out


def test_unknown_node_or_prop_is_a_clear_error():
    with pytest.raises(SystemExit, match="node 'nope' is not in the game file"):
        main(["node", "wiring", "--id", "nope"])
    with pytest.raises(SystemExit, match="no prop 'nope' on node hall"):
        main(["node", "test", "--id", "hall", "--prop", "nope", "--simulate"])


def test_markdown_sheet_mentions_fail_safe_wiring():
    assert "NO contact" in wiring_sheet(load_game(SHIPPED_GAME).node("entree"), markdown=True)
