"""A TCP relay to PostgreSQL that a test can cut or hang (the shared server is never touched)."""

from __future__ import annotations

import socket
import threading

from sqlalchemy.engine import make_url

from tests.acceptance.server import free_port


def through(url: str, port: int) -> str:
    """``url`` with the proxy on ``port`` in place of the database's address."""
    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


class CuttableProxy:
    """A TCP relay on 127.0.0.1 to PostgreSQL that can be cut and restored, or hung and
    resumed."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self._flowing = threading.Event()
        self._flowing.set()
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    def restore(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        self._spawn(self._accept, listener)

    def hang(self) -> None:
        """Relay nothing more, either way, and close nothing: as a database that has stopped
        working while its host still accepts connections and acknowledges what is sent."""
        self._flowing.clear()

    def resume(self) -> None:
        """Relay again, what was held back first."""
        self._flowing.set()

    def cut(self) -> None:
        """Refuse new connections and close every open one, both ends, at once."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes accept() (Linux)
            listener.close()
        with self._lock:
            doomed, self._open = self._open, set()
        for sock in doomed:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._flowing.set()  # a relay held up by a hang meets the closed sockets, and ends

    def close(self) -> None:
        self.cut()
        for thread in self._threads:
            thread.join(timeout=10)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                if self._listener is not listener:  # cut meanwhile
                    client.close()
                    server.close()
                    return
                self._open.update((client, server))
            self._spawn(self._pump, client, server)
            self._spawn(self._pump, server, client)

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
