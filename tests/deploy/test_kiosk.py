"""A room screen's kiosk (docs/deploy.md, « Écran de salle en mode kiosque »): the unit
(config/kiosk/escape-kiosk.service) checked by systemd, the env file it reads, the Chromium
command line the launcher builds from it, and that command line's autoplay flag in real
headless Chromium: the demo stack's room screen plays a game's sound with nobody touching it.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from config.loader import SHIPPED_GAME, load_game
from controller.api.auth import AuthSettings
from controller.broker import EmbeddedBroker
from controller.main import create_app
from protocol.mqtt import BrokerAddress
from tests.browser.conftest import _require_chromium, chromium, serving
from tests.deploy.conftest import read_env_file
from tests.deploy.test_systemd import load_unit
from tests.support.kiosk import ENV_FILE, KIOSK, LAUNCHER, NOT_FOR_PLAYWRIGHT, REPO, launch

UNIT = KIOSK / "escape-kiosk.service"
DOC = REPO / "docs" / "deploy.md"
AUTOPLAY = "--autoplay-policy=no-user-gesture-required"
AUTH = AuthSettings(gm_password="gm-kiosk-password", tech_password="tech-kiosk-password",
                    screen_secret="kiosk-screen-secret")

#: the sounds that ran to their end, and how far their time went
HEARD = """window.__heard = [];
for (const kind of ["timeupdate", "ended"]) document.addEventListener(kind, (e) => {
  const m = e.target;
  window.__heard.push({cue: m.dataset.cue, t: m.currentTime, ended: m.ended, paused: m.paused});
}, true);"""


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is needed (apt install systemd)"
    shutil.copy(UNIT, tmp_path / UNIT.name)
    done = subprocess.run([analyze, "verify", "--man=no", str(tmp_path / UNIT.name)],
                          capture_output=True, text=True, timeout=30, check=False)
    # xinit is on the Pi (the guide installs it), not necessarily here
    problems = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()
                and "/usr/bin/xinit is not executable" not in line]
    assert problems == []


def test_unit_starts_the_launcher_at_boot_without_blanking_and_restarts_it() -> None:
    unit = load_unit(UNIT)
    svc = unit["Service"]
    argv = shlex.split(svc["ExecStart"])
    assert argv[0] == "/usr/bin/xinit"
    assert Path(argv[1]).relative_to("/opt/escape-apartment/src") == LAUNCHER.relative_to(REPO)
    server = argv[argv.index("--") + 1:]
    assert server[:2] == [":0", "vt1"] and svc["TTYPath"] == "/dev/tty1"
    assert server[server.index("-s"):server.index("-s") + 2] == ["-s", "0"], "no screen saver"
    assert "-dpms" in server, "no power saving"
    assert svc["Restart"] == "always" and unit["Unit"]["StartLimitIntervalSec"] == "0", "restarted for ever"
    assert unit["Install"]["WantedBy"] == "multi-user.target", "enabled: started at boot"
    assert "getty@tty1.service" in unit["Unit"]["Conflicts"].split()
    assert svc["EnvironmentFile"] == "/etc/escape-apartment/kiosk.env"
    doc = DOC.read_text(encoding="utf-8")
    assert f"config/kiosk/kiosk.env {svc['EnvironmentFile']}" in doc, "the guide installs it there"
    assert re.search(rf"^\s*sudo useradd .* {svc['User']}$", doc, re.MULTILINE), "the guide adds its user"


def test_the_env_file_names_a_server_a_room_of_the_game_and_a_token() -> None:
    env = read_env_file(ENV_FILE)
    assert set(env) == {"ESCAPE_KIOSK_SERVER", "ESCAPE_KIOSK_ROOM", "ESCAPE_KIOSK_TOKEN"}
    assert env["ESCAPE_KIOSK_ROOM"] in {n.id for n in load_game(SHIPPED_GAME).nodes}
    assert urlsplit(env["ESCAPE_KIOSK_SERVER"]).scheme == "http"
    assert env["ESCAPE_KIOSK_TOKEN"] == "", "no token shipped: each screen gets its own"


def test_the_command_line_is_chromium_in_kiosk_with_autoplay_on_the_rooms_screen(tmp_path: Path) -> None:
    env = {**read_env_file(ENV_FILE), "ESCAPE_KIOSK_SERVER": "http://192.168.1.10:8000/",
           "ESCAPE_KIOSK_TOKEN": AUTH.screen_token("cuisine"), "ESCAPE_KIOSK_ROOM": "cuisine"}
    done, argv = launch(env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert argv is not None
    assert "--kiosk" in argv and AUTOPLAY in argv
    url = urlsplit(argv[-1])
    assert (url.scheme, url.netloc, url.path) == ("http", "192.168.1.10:8000", "/screen/cuisine")
    assert parse_qs(url.query) == {"token": [AUTH.screen_token("cuisine")]}
    profile = next(a for a in argv if a.startswith(NOT_FOR_PLAYWRIGHT)).partition("=")[2]
    assert Path(profile).parent == tmp_path, "a fresh profile in the run directory"


@pytest.mark.parametrize("missing", ["ESCAPE_KIOSK_SERVER", "ESCAPE_KIOSK_ROOM", "ESCAPE_KIOSK_TOKEN"])
def test_a_missing_setting_is_named_and_starts_no_browser(tmp_path: Path, missing: str) -> None:
    env = {**read_env_file(ENV_FILE), "ESCAPE_KIOSK_TOKEN": "t"}
    env[missing] = ""
    done, argv = launch(env, tmp_path)
    assert done.returncode == 2 and argv is None
    assert f"{missing} manque" in done.stderr


@pytest.mark.parametrize(("name", "value", "said"), [
    ("ESCAPE_KIOSK_ROOM", "../api/state", "n'est pas un nom de salle"),
    ("ESCAPE_KIOSK_ROOM", "hall?x=", "n'est pas un nom de salle"),
    ("ESCAPE_KIOSK_SERVER", "192.168.1.10:8000", "n'est pas une adresse http://"),
    ("ESCAPE_KIOSK_SERVER", "file:///etc/passwd", "n'est pas une adresse http://"),
])
def test_a_setting_that_would_open_another_page_is_refused(tmp_path: Path, name: str, value: str,
                                                            said: str) -> None:
    env = {**read_env_file(ENV_FILE), "ESCAPE_KIOSK_TOKEN": "t", name: value}
    done, argv = launch(env, tmp_path)
    assert done.returncode == 2 and argv is None and said in done.stderr and value in done.stderr


@pytest.mark.browser
def test_the_kiosks_chromium_plays_a_cue_of_the_demo_without_a_touch(
        tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    """The demo's mailbox plays unlock.wav in the hall: on the kiosk's command line (its
    flags, its URL) the screen plays it though nothing was ever clicked or tapped."""
    _require_chromium()
    with EmbeddedBroker(port=0) as broker:
        app = create_app(game=load_game(SHIPPED_GAME), broker=BrokerAddress("127.0.0.1", broker.port),
                         demo=True, auth=AUTH, db_path=tmp_path_factory.mktemp("kiosk") / "escape.db")
        with serving(app) as url, httpx.Client(base_url=url, timeout=10,
                                                  headers={"Content-Type": "application/json"}) as gm:
            done, argv = launch({"ESCAPE_KIOSK_SERVER": url, "ESCAPE_KIOSK_ROOM": "hall",
                                 "ESCAPE_KIOSK_TOKEN": AUTH.screen_token("hall")}, tmp_path)
            assert done.returncode == 0 and argv, done.stderr
            flags = [a for a in argv[:-1] if not a.startswith(NOT_FOR_PLAYWRIGHT)]
            assert AUTOPLAY in flags
            assert gm.post("/api/login", json={"password": AUTH.gm_password}).status_code == 200
            with chromium(*flags) as browser:
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                page.set_default_timeout(20_000)
                page.add_init_script(HEARD)
                page.goto(argv[-1])
                page.wait_for_selector("#link.dot.ok")
                page.wait_for_function("window.__preloaded && window.__preloaded.includes('unlock.wav')")
                started = gm.post("/api/game/start", json={"parcours": "primo", "players": 4})
                assert started.status_code == 200, started.text
                sent = time.time()
                assert gm.post("/api/game/puzzles/mailbox/solve").status_code == 200
                page.wait_for_function("window.__cuesPlayed.length >= 1")
                latency_ms = page.evaluate("window.__cuesPlayed[0].wall") - sent * 1000
                # a short sound: it played when it ran to its end with its time advancing
                page.wait_for_function("window.__heard.some((h) => h.ended && h.t > 0.3)")
                print(f"\nkiosk: game event → sound playing, no touch: {latency_ms:.0f} ms")
