"""Tell systemd how the node agent is doing (``sd_notify``), without any dependency.

The unit ``nodes/systemd/escape-node@.service`` runs the agent with ``Type=notify`` and
``WatchdogSec=10``: systemd waits for ``READY=1`` before calling the service started, and
kills and restarts it when the ``WATCHDOG=1`` pings stop for 10 s (a hung agent).

The protocol is one datagram of newline-separated ``KEY=value`` lines, sent to the unix
socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace).
Outside systemd the variable is unset and every call is a cheap no-op that returns False,
so the agent calls these unconditionally::

    notify("READY=1")
    interval = watchdog_interval() or 2.0      # seconds between pings
    while running:
        notify("WATCHDOG=1")
        time.sleep(interval)
    notify("STOPPING=1")
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)

#: how long a single send may block; systemd reads its socket promptly
_SEND_TIMEOUT = 1.0


def notify(state: str) -> bool:
    """Send *state* (e.g. ``"READY=1"``, ``"WATCHDOG=1"``, ``"STATUS=…"``) to systemd.

    Returns True if the datagram was sent, False when not under systemd or on any error:
    a failed notification must never take the node down (systemd will act on the
    silence itself).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        # abstract namespace: Linux spells it with a leading NUL byte
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.settimeout(_SEND_TIMEOUT)
            sock.sendto(state.encode("utf-8"), address)
    except OSError as exc:
        log.debug("sd_notify %r to %r failed: %s", state, address, exc)
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the watchdog timeout in seconds (how often to ping), or None without one.

    systemd sets ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``, the process meant to ping).
    Pinging at half the timeout leaves room for one late ping.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were started by a wrapper)
    return int(usec) / 2_000_000
