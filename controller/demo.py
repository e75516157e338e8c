"""``escape-apartment demo``: the whole apartment on one machine, nothing to install.

One process runs an embedded MQTT broker (amqtt), one simulated node agent per room of
the game file (each on its own gpiozero MockFactory, talking MQTT like a real Pi), and
the controller with its web pages and the rehearsal routes.
"""

from __future__ import annotations

import logging
import sys

from config.loader import SHIPPED_GAME, GameConfigError, load_game
from controller.api.auth import AuthSettings
from controller.broker import EmbeddedBroker
from protocol.mqtt import BrokerAddress

log = logging.getLogger(__name__)


def run_demo(*, config: str | None, http_port: int, mqtt_port: int, host: str = "127.0.0.1") -> int:
    import uvicorn
    from gpiozero.pins.mock import MockFactory

    from controller.main import WS_PER_MESSAGE_DEFLATE, create_app, media_library, read_settings
    from nodes.agent import NodeAgent

    settings = read_settings()
    if settings is None:
        return 2
    media = media_library(settings.DATA_DIR)
    try:
        game = load_game(config or SHIPPED_GAME, media=media.names())
    except GameConfigError as exc:
        print(f"the game file has errors:\n{exc}", file=sys.stderr)
        return 2
    broker = EmbeddedBroker(port=mqtt_port).start()
    address = BrokerAddress("127.0.0.1", broker.port)
    agents = [NodeAgent(game=game, node_id=node.id, broker=address, pin_factory=MockFactory(),
                        simulate=True) for node in game.nodes]
    for agent in agents:
        agent.start()
    # ESCAPE_GM_PASSWORD & co, or random ones
    auth = AuthSettings.from_settings(settings, demo=True)
    app = create_app(game=game, broker=address, demo=True, auth=auth, freeze_gc=True,
                     settings=settings, media=media)
    url = f"http://{host}:{http_port}/"
    print(f"\n  Démo de l'appartement témoin : {url}\n"
          f"  MQTT (amqtt embarqué) : mqtt://127.0.0.1:{broker.port}  "
          f"(mosquitto_sub -h 127.0.0.1 -p {broker.port} -v -t 'escape/#')\n"
          f"  {len(agents)} nœuds simulés : {', '.join(a.node.id for a in agents)}\n"
          f"  Console du maître du jeu : {url}console  mot de passe : {auth.gm_password}\n"
          f"  Page technicien : {url}tech  mot de passe : {auth.tech_password}\n"
          f"  Répétition (appartement simulé) : {url}rehearsal\n"
          f"  Historique : {url}history   Débrief : {url}debrief\n"
          + "".join(f"  Écran {n.id} : {url}screen/{n.id}?token="
                    f"{auth.screen_token(n.id)}\n"
                    for n in game.nodes)
          + "  Ctrl+C pour arrêter.\n", flush=True)
    try:
        uvicorn.run(app, host=host, port=http_port, log_level="warning",
                    ws_per_message_deflate=WS_PER_MESSAGE_DEFLATE)
    finally:
        for agent in agents:
            agent.stop()
        broker.stop()
    return 0
