"""A TLS backend for sidestep's TLS tests (Python 3 standard library only): it terminates TLS
with a given certificate and relays the plaintext, byte for byte in both directions, to a
plain origin (usually a sidestep-stub), so the stub's echo shows what sidestep sent over TLS.

    with TlsFront(stub.port, cert, key) as front:
        ...                              # a region with tls, backends: [front.addr]
        front.handshakes, front.resumed  # completed handshakes, of which resumed
        front.failed                     # handshakes that failed (a client refusing our cert)

`proxy_protocol=True` makes every connection start with a PROXY v1 or v2 header before the
ClientHello (send_proxy_protocol towards a TLS backend): it is read with MSG_PEEK, so not one
TLS byte is taken with it, and recorded in `proxies` (proxy_header.Header, in accept order); a
connection without one is counted in `failed` and closed.

Each accepted connection runs in its own thread; every wait is bounded; stop() closes the
listener and every connection. Session tickets are on (Python's default), so a client offering
a ticket resumes.
"""

import select
import socket
import ssl
import threading
import time

import proxy_header

LOOPBACK = "127.0.0.1"


class TlsFront:
    def __init__(self, backend_port, cert, key, host=LOOPBACK, min_version=None,
                 backend_host=LOOPBACK, proxy_protocol=False):
        self.backend = (backend_host, backend_port)
        self.proxy_protocol = proxy_protocol
        self.proxies = []
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        if min_version is not None:
            self.ctx.minimum_version = min_version
        self.ctx.set_alpn_protocols(["http/1.1"])
        self.ctx.sni_callback = self._on_sni
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(128)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        self.lock = threading.Lock()
        self.accepted = 0
        self.handshakes = 0
        self.resumed = 0
        self.failed = 0
        self.errors = []
        self.sni = []
        self._socks = []
        self._stop = threading.Event()
        self._threads = []
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def _accept_loop(self):
        while not self._stop.is_set():
            r, _, _ = select.select([self.lsock], [], [], 0.1)
            if not r:
                continue
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                continue
            with self.lock:
                self.accepted += 1
                self._socks.append(sock)
            th = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            th.start()
            self._threads.append(th)

    def _on_sni(self, sslobj, name, ctx):
        with self.lock:
            self.sni.append(name)

    def _read_proxy_header(self, sock):
        """The PROXY header at the start of sock, taken off it exactly (MSG_PEEK until whole);
        None when the peer closed first or sent something else."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = sock.recv(4096, socket.MSG_PEEK)
            if not data:
                return None
            try:
                header, used = proxy_header.parse(data)
            except ValueError:
                return None
            if header is not None:
                sock.recv(used)  # exactly the header: the ClientHello stays in the socket
                return header
            time.sleep(0.01)
        return None

    def _serve(self, raw_sock):
        raw_sock.settimeout(10)
        if self.proxy_protocol:
            header = self._read_proxy_header(raw_sock)
            with self.lock:
                if header is None:
                    self.failed += 1
                    self.errors.append("no PROXY header")
                else:
                    self.proxies.append(header)
            if header is None:
                raw_sock.close()
                return
        try:
            tls = self.ctx.wrap_socket(raw_sock, server_side=True)
        except (ssl.SSLError, OSError) as e:
            with self.lock:
                self.failed += 1
                self.errors.append(repr(e))
            raw_sock.close()
            return
        with self.lock:
            self.handshakes += 1
            self.resumed += 1 if tls.session_reused else 0
            self._socks.append(tls)
        try:
            up = socket.create_connection(self.backend, timeout=10)
        except OSError:
            tls.close()
            return
        with self.lock:
            self._socks.append(up)
        self._relay(tls, up)

    def _relay(self, tls, up):
        tls.setblocking(False)
        up.setblocking(False)
        try:
            while not self._stop.is_set():
                # bytes the TLS layer decrypted already do not show in select
                ready = [tls] if tls.pending() else []
                if not ready:
                    ready, _, _ = select.select([tls, up], [], [], 0.2)
                for s in ready:
                    try:
                        data = s.recv(65536)
                    except (ssl.SSLWantReadError, BlockingIOError):
                        continue
                    if not data:
                        return
                    other = up if s is tls else tls
                    self._send_all(other, data)
        except (OSError, ssl.SSLError):
            return
        finally:
            for s in (tls, up):
                try:
                    s.close()
                except OSError:
                    pass

    def _send_all(self, s, data):
        view = memoryview(data)
        while view:
            try:
                n = s.send(view)
            except (ssl.SSLWantWriteError, BlockingIOError):
                select.select([], [s], [], 0.2)
                continue
            view = view[n:]

    def stop(self):
        self._stop.set()
        self._acceptor.join(timeout=5)
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.close()
            except OSError:
                pass
        for th in self._threads:
            th.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
