"""A TCP relay on loopback that a test can cut, freeze, hold and restore (Python 3 standard
library only).

`Relay(target_port)` listens on 127.0.0.1 (an ephemeral port: `relay.port`, `relay.url`) and
forwards every connection to 127.0.0.1:target_port, one thread per direction. A test steers it:

    cut()            resets every connection, and resets new ones at once (a network cut)
    freeze()/thaw()  stops/resumes moving bytes; connections stay open (a black hole)
    restore(hold_after=None)
                     forwards again; with hold_after=N, the first N new connections are
                     forwarded and later ones are accepted but held unconnected until release()
    release()        connects and forwards the held connections
    block(prefix)    resets every new connection whose first bytes from the client start with
                     prefix (b"GET /healthz": health probes fail, other requests pass)
    unblock()        forwards them again
    close()          stops everything; every thread ends within a second

Every wait is bounded. Nothing is sent anywhere but to the target on 127.0.0.1.
"""

import socket
import struct
import threading

PASS, CUT, HOLD = "pass", "cut", "hold"


def _reset(sock):
    """Ends a connection at once: shutdown wakes the pump threads blocked in recv (close alone
    would not), and a zero linger turns the close into an RST."""
    for step in (lambda: sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0)),
                 lambda: sock.shutdown(socket.SHUT_RDWR),
                 sock.close):
        try:
            step()
        except OSError:
            pass


class Relay:
    def __init__(self, target_port, target_host="127.0.0.1"):
        self.target = (target_host, target_port)
        self.lock = threading.Lock()
        self.mode = PASS
        self.hold_after = None
        self.accepted = 0
        self.conns = []  # [client, upstream] pairs being forwarded
        self.held = []  # client sockets accepted in hold mode
        self.flowing = threading.Event()
        self.flowing.set()
        self.blocked = None  # a prefix of the first client bytes that makes block() reset
        self.closed = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    # --- steering --------------------------------------------------------------------------

    def cut(self):
        with self.lock:
            self.mode = CUT
            pairs, self.conns = self.conns, []
            held, self.held = self.held, []
        for pair in pairs:
            for s in pair:
                _reset(s)
        for s in held:
            _reset(s)
        self.flowing.set()

    def freeze(self):
        self.flowing.clear()

    def thaw(self):
        self.flowing.set()

    def restore(self, hold_after=None):
        with self.lock:
            self.mode = PASS if hold_after is None else HOLD
            self.hold_after = hold_after
            self.accepted = 0
        self.flowing.set()

    def release(self):
        with self.lock:
            held, self.held = self.held, []
            self.mode = PASS
        for client in held:
            self._forward(client)

    def block(self, prefix):
        with self.lock:
            self.blocked = bytes(prefix)

    def unblock(self):
        with self.lock:
            self.blocked = None

    def close(self):
        self.closed = True
        self.cut()
        self.thread.join(timeout=2)
        try:
            self.listener.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- internals -------------------------------------------------------------------------

    def _accept_loop(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                mode = self.mode
                self.accepted += 1
                hold = mode == HOLD and self.accepted > self.hold_after
                if hold:
                    self.held.append(client)
            if mode == CUT:
                _reset(client)
            elif not hold:
                self._forward(client)

    def _forward(self, client):
        try:
            upstream = socket.create_connection(self.target, timeout=2)
        except OSError:
            _reset(client)
            return
        upstream.settimeout(None)
        client.settimeout(None)
        pair = [client, upstream]
        with self.lock:
            if self.mode == CUT:
                _reset(client)
                _reset(upstream)
                return
            self.conns.append(pair)
        for src, dst, first in ((client, upstream, True), (upstream, client, False)):
            threading.Thread(target=self._pump, args=(src, dst, pair, first),
                             daemon=True).start()

    def _is_blocked(self, data):
        with self.lock:
            return self.blocked is not None and data.startswith(self.blocked)

    def _pump(self, src, dst, pair, check_first=False):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if check_first:
                    check_first = False
                    if self._is_blocked(data):
                        with self.lock:
                            if pair in self.conns:
                                self.conns.remove(pair)
                        for s in pair:
                            _reset(s)
                        return
                # a frozen relay keeps what it read until thawed (or cut)
                while not self.flowing.wait(0.2):
                    if self.closed:
                        return
                dst.sendall(data)
        except OSError:
            pass
        with self.lock:
            live = pair in self.conns
            if live:
                self.conns.remove(pair)
        if live:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    s.close()
                except OSError:
                    pass
