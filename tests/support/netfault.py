"""A TCP proxy that breaks a link on demand: the network faults of the fault suite.

Put it between one MQTT client and the broker (the client connects to ``proxy.port``)::

    with TcpProxy(upstream=(broker.host, broker.port)) as proxy:
        ...                     # traffic flows
        proxy.cut()             # both sockets closed; new connections refused until restore()
        proxy.freeze()          # sockets stay open, nothing flows: a dead cable or a hung peer
        proxy.restore()         # back to normal for new connections (frozen ones resume)

``cut`` is what the broker sees when a process dies (the kernel closes its socket): the
broker publishes the client's will at once. ``freeze`` is a client that vanished without
a word (power cut, cable pulled): the broker only notices when 1.5 × the keepalive has
passed without a packet, and only then publishes the will.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from types import TracebackType

_POLL_S = 0.02


class _Link:
    """One client connection and its upstream twin, pumped by one thread."""

    def __init__(self, client: socket.socket, upstream: socket.socket, proxy: TcpProxy) -> None:
        self.client, self.upstream, self.proxy = client, upstream, proxy
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._pump, name="tcp-proxy-link", daemon=True)

    def _pump(self) -> None:
        peers = {self.client: self.upstream, self.upstream: self.client}
        with selectors.DefaultSelector() as selector:
            for sock in peers:
                selector.register(sock, selectors.EVENT_READ)
            while not self.closed.is_set():
                if self.proxy.frozen.is_set():
                    # Read nothing: the bytes wait in the kernel, as on a dead link.
                    self.closed.wait(_POLL_S)
                    continue
                for key, _ in selector.select(timeout=_POLL_S):
                    try:
                        data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                        if not data:
                            raise ConnectionError
                        peers[key.fileobj].sendall(data)  # type: ignore[index]
                    except OSError:
                        self.close()
                        return

    def close(self) -> None:
        self.closed.set()
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


class TcpProxy:
    """Forwards TCP connections from 127.0.0.1:``port`` to *upstream*; breaks them on demand."""

    def __init__(self, *, upstream: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.host = host
        self.port = 0
        self.frozen = threading.Event()
        self._refusing = threading.Event()
        self._stop = threading.Event()
        self._links: list[_Link] = []
        self._lock = threading.Lock()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        #: connections accepted so far (a client that reconnects adds one)
        self.accepted = 0

    def start(self) -> TcpProxy:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((self.host, 0))
        server.listen(16)
        server.settimeout(_POLL_S)
        self._server, self.port = server, int(server.getsockname()[1])
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._refusing.is_set():
                client.close()   # the link is cut: the client sees its connection dropped
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=2)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                sock.settimeout(None)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(client, upstream, self)
            with self._lock:
                self._links.append(link)
                self.accepted += 1
            link.thread.start()

    # -- faults -------------------------------------------------------------------------
    def cut(self) -> None:
        """Close every connection now and refuse new ones until :meth:`restore`."""
        self._refusing.set()
        self._close_links()

    def freeze(self) -> None:
        """Stop every byte, both ways, without closing anything."""
        self.frozen.set()

    def restore(self) -> None:
        self._refusing.clear()
        self.frozen.clear()

    def _close_links(self) -> None:
        with self._lock:
            links, self._links = self._links, []
        for link in links:
            link.close()
        for link in links:
            link.thread.join(timeout=1)

    def close(self) -> None:
        self._stop.set()
        self._close_links()
        if self._server is not None:
            self._server.close()
        if self._thread is not None:
            self._thread.join(timeout=1)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
