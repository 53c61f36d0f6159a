"""A scripted misbehaving backend for the hardening tests (the Python 3 standard library and
sst.py beside it).

Each accepted connection runs `script(conn)` in its own thread; the script decides byte by byte
what the backend does: read the request, send exact bytes, stall, close (FIN) or reset (RST via
SO_LINGER 0) at a chosen point.

    def script(c):
        c.read_request()
        c.send(b"HTTP/1.1 200 OK\\r\\nContent-Length: 10\\r\\n\\r\\nhello")
        c.reset()                       # cut mid-body

    with BadBackend(script) as b:
        ...                             # point sidestep at b.addr
        b.wait_connections(1)
        b.conns[0].wait_peer_closed(2)  # "fin", "reset", or None when still open

Everything is recorded so tests can assert what reached the backend: `conns` (one BackendConn per
accepted connection, in accept order), each with `requests` (parsed, strictly) and `peer_closed`
("fin"/"reset" once sidestep closed its side). `accept=False` listens without ever accepting:
the kernel completes handshakes up to the backlog, then nothing answers. `proxy_protocol=True`
makes every connection start with a PROXY v1 or v2 header, read (and recorded as `conn.proxy`,
a proxy_header.Header) before the script runs; a connection without a valid one is recorded
in `errors` and closed. Every wait is bounded.

Gray failures (issue 15): `silent` accepts and then says nothing, `stall_mid_response` sends a
head and part of the body and then nothing, `cut_mid_response` sends as much and resets, and
`FullAcceptQueue` is a listener whose accept queue is full, so the kernel drops new SYNs and a
connect stays pending (a blackholed or overloaded host).
"""

import socket
import struct
import threading
import time

import proxy_header
from sst import HeaderLookup

LOOPBACK = "127.0.0.1"


class Request(HeaderLookup):
    """One request as the backend read it. `complete` is False when the peer closed (or the
    framing broke) before the end of the body; `raw` holds every byte read for it."""

    def __init__(self):
        self.method = self.target = self.version = None
        self.headers = []
        self.body = b""
        self.trailers = []
        self.raw = b""
        self.complete = False
        self.error = None  # why it is not complete

    def __repr__(self):
        return "<Request %s %s complete=%s body=%d>" % (self.method, self.target, self.complete,
                                                       len(self.body))


class BackendConn:
    """The backend side of one accepted connection, as seen by a script."""

    def __init__(self, backend, sock, peer):
        self.backend = backend
        self.sock = sock
        self.peer = peer
        self.buf = bytearray()
        self.requests = []
        self.received = bytearray()  # every byte read, in order
        self.peer_closed = None      # "fin" or "reset" once the peer closed
        self.closed_at = None        # time.monotonic() of that
        self.accepted_at = time.monotonic()
        self.proxy = None            # the PROXY header it opened with (proxy_protocol=True)
        self._done = False
        # The script's thread and a test thread may both wait on this connection (a stalling
        # script and wait_peer_closed): socket use and closing are serialised.
        self._lock = threading.RLock()

    @property
    def done(self):
        """True once the script closed or reset this connection."""
        return self._done

    # -- receiving ----------------------------------------------------------------------------

    def _fill(self, deadline):
        """Reads more bytes; False once the peer closed or the deadline passed."""
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or self.backend.stopping.is_set():
                return False
            with self._lock:
                if self.peer_closed is not None or self._done:
                    return False
                self.sock.settimeout(min(left, 0.1))
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    continue
                except OSError:  # ECONNRESET and the like
                    self._mark_closed("reset")
                    return False
                if not chunk:
                    self._mark_closed("fin")
                    return False
                self.buf += chunk
                self.received += chunk
                return True

    def _mark_closed(self, kind):
        if self.peer_closed is None:
            self.peer_closed = kind
            self.closed_at = time.monotonic()

    def _line(self, deadline, limit=65536):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[:i + 2]
                return line
            if len(self.buf) > limit or not self._fill(deadline):
                return None

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                return None
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_some(self, timeout=1.0):
        """Whatever arrives within `timeout` seconds (b"" if nothing)."""
        deadline = time.monotonic() + timeout
        if not self.buf:
            self._fill(deadline)
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_proxy_header(self, timeout=5.0):
        """Reads the PROXY header the connection opens with (a proxy_header.Header), or None
        when the peer closed first. Raises ValueError on bytes that are not a header."""
        deadline = time.monotonic() + timeout
        while True:
            header, used = proxy_header.parse(bytes(self.buf))
            if header is not None:
                del self.buf[:used]
                self.proxy = header
                return header
            if not self._fill(deadline):
                return None

    def read_head(self, timeout=5.0):
        """The raw bytes of one request head up to and including the empty line, or None when
        the peer closed (or the timeout passed) first."""
        deadline = time.monotonic() + timeout
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                head = bytes(self.buf[:end + 4])
                del self.buf[:end + 4]
                return head
            if not self._fill(deadline):
                return None

    def read_request(self, timeout=5.0, body=True):
        """Reads one request strictly (Content-Length or chunked body unless body=False) and
        records it in self.requests. Returns the Request, or None when nothing of a request
        arrived. A body cut short gives complete=False."""
        deadline = time.monotonic() + timeout
        head = self.read_head(timeout)
        if head is None:
            return None
        req = Request()
        self.requests.append(req)
        self.backend._record(req)
        req.raw = head
        lines = head[:-4].split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            req.error = "bad request-line %r" % lines[0]
            return req
        req.method, req.target, req.version = (p.decode("latin-1") for p in parts)
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                req.error = "bad field line %r" % line
                return req
            req.headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        if not body:
            req.complete = True
            return req
        return self.read_body(req, deadline - time.monotonic())

    def read_body(self, req, timeout=5.0):
        """Reads the body of `req` (a request read with body=False) strictly, as read_request
        does; `req.complete` then says whether all of it arrived. Returns req."""
        deadline = time.monotonic() + timeout
        req.complete = False
        te = req.header("Transfer-Encoding")
        cl = req.header("Content-Length")
        if te is not None:
            if te.strip().lower() != "chunked" or cl is not None:
                req.error = "unexpected framing TE=%r CL=%r" % (te, cl)
                return req
            return self._read_chunked(req, deadline)
        if cl is not None:
            if not cl.isdigit():
                req.error = "bad Content-Length %r" % cl
                return req
            data = self._exact(int(cl), deadline)
            if data is None:
                req.body = bytes(self.buf)
                req.raw += req.body
                req.error = "closed after %d of %s body bytes" % (len(self.buf), cl)
                return req
            req.body = data
            req.raw += data
        req.complete = True
        return req

    def _read_chunked(self, req, deadline):
        body = bytearray()
        while True:
            line = self._line(deadline)
            if line is None:
                req.body = bytes(body)
                req.error = "closed inside the chunked body"
                return req
            req.raw += line + b"\r\n"
            size_text = line.split(b";", 1)[0]
            try:
                size = int(size_text, 16)
            except ValueError:
                req.error = "bad chunk size %r" % line
                return req
            if size == 0:
                break
            data = self._exact(size + 2, deadline)
            if data is None or data[-2:] != b"\r\n":
                req.body = bytes(body)
                req.error = "chunk cut short"
                return req
            req.raw += data
            body += data[:-2]
        while True:
            line = self._line(deadline)
            if line is None:
                req.body = bytes(body)
                req.error = "closed inside the trailers"
                return req
            req.raw += line + b"\r\n"
            if not line:
                break
            name, _, value = line.partition(b":")
            req.trailers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        req.body = bytes(body)
        req.complete = True
        return req

    def wait_peer_closed(self, timeout=5.0):
        """Reads (and keeps) whatever arrives until the peer closes. Returns "fin" or "reset",
        or None when the connection is still open after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self.peer_closed is None and time.monotonic() < deadline:
            if self._done or self.backend.stopping.is_set():
                break
            self._fill(deadline)
        return self.peer_closed

    # -- sending and closing ------------------------------------------------------------------

    def send(self, data):
        """Sends bytes; False when the peer is gone."""
        if isinstance(data, str):
            data = data.encode("latin-1")
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self._mark_closed("reset")
            return False

    def send_slowly(self, data, piece=1, delay=0.01):
        """Sends `data` `piece` bytes at a time with `delay` seconds between pieces."""
        for i in range(0, len(data), piece):
            if not self.send(data[i:i + piece]) or self.backend.stopping.is_set():
                return False
            time.sleep(delay)
        return True

    def stall(self, timeout=30.0):
        """Sends nothing and waits until the peer closes, the backend stops or `timeout`
        passes; bytes that arrive meanwhile are recorded. Returns how the peer closed, if it
        did."""
        return self.wait_peer_closed(timeout)

    def close(self):
        """FIN, then close."""
        with self._lock:
            if self._done:
                return
            self._done = True
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            self.sock.close()

    def reset(self):
        """RST: SO_LINGER with a zero timeout, then close."""
        with self._lock:
            if self._done:
                return
            self._done = True
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                     struct.pack("ii", 1, 0))
            except OSError:
                pass
            self.sock.close()


def respond(data, then="close", read_body=True):
    """A script: read one request, send `data`, then "close" (FIN), "reset" (RST), "stall"
    (keep the socket open until the peer closes) or "keep" (serve the next request the same
    way)."""
    def script(c):
        while True:
            if c.read_request(body=read_body) is None:
                return
            c.send(data)
            if then == "keep":
                continue
            if then == "reset":
                c.reset()
            elif then == "stall":
                c.stall()
            else:
                c.close()
            return
    return script


def next_request(c, health=False):
    """Reads the next request on `c`; with `health`, /healthz probes are answered 200 first
    (so that active checks stay green while traffic meets the fault). None when the peer
    closed."""
    while True:
        q = c.read_request()
        if q is None or not health or q.target != "/healthz":
            return q
        c.send(ok())


def silent(health=False):
    """A script: reads a request (recorded), then says nothing and keeps the connection open
    until the peer closes it (the gray failure of issue 15: accepted, then silence)."""
    def script(c):
        if next_request(c, health) is not None:
            c.stall(timeout=30)
    return script


def stall_mid_response(head, part, health=False):
    """A script: reads a request, sends `head` and `part` of the body, then nothing more until
    the peer closes."""
    def script(c):
        if next_request(c, health) is not None:
            c.send(head + part)
            c.stall(timeout=30)
    return script


def cut_mid_response(head, part, pause=0.01, health=False):
    """A script: reads a request, sends `head` and `part` of the body, and resets the
    connection `pause` seconds later (the bench's "reset" fault)."""
    def script(c):
        if next_request(c, health) is not None:
            c.send(head + part)
            time.sleep(pause)
            c.reset()
    return script


class FullAcceptQueue:
    """A listener on 127.0.0.1 with a backlog of 0 whose accept queue is filled by one
    connection of its own and never accepted: Linux then drops every new SYN (TcpExt
    ListenOverflows counts them), so a connect neither completes nor is refused. It completes
    only if the queue frees up, which it never does here."""

    def __init__(self, host=LOOPBACK):
        self.host = host
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind((host, 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.filler = socket.create_connection((host, self.port), timeout=2)

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def stop(self):
        for s in (self.filler, self.lsock):
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


def ok(body=b"ok", extra=b""):
    """A well-formed 200 with Content-Length (extra: more header lines, CRLF-terminated)."""
    return (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n" % len(body)) + extra + b"\r\n" + body


class BadBackend:
    """A listening socket on 127.0.0.1 whose connections each run `script` in a thread."""

    def __init__(self, script=None, name="bad", host=LOOPBACK, port=0, accept=True, backlog=64,
                 proxy_protocol=False):
        self.name = name
        self.proxy_protocol = proxy_protocol
        self.host = host
        self.script = script or respond(ok(), then="keep")
        self.accept_enabled = accept
        self.conns = []
        self.errors = []
        self._requests = []  # every request read, in the order the heads arrived
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(backlog)
        self.port = self.lsock.getsockname()[1]
        self._acceptor = None
        if accept:
            self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
            self._acceptor.start()

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def _accept_loop(self):
        self.lsock.settimeout(0.1)
        while not self.stopping.is_set():
            try:
                sock, peer = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = BackendConn(self, sock, peer)
            with self._lock:
                self.conns.append(conn)
            t = threading.Thread(target=self._run, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def _run(self, conn):
        try:
            if self.proxy_protocol and conn.read_proxy_header() is None:
                raise ValueError("connection %r closed before a PROXY header" % (conn.peer,))
            self.script(conn)
        except Exception as e:  # noqa: BLE001 - recorded for the test to inspect
            self.errors.append(repr(e))
        finally:
            if not conn._done and conn.peer_closed is not None:
                conn.close()

    def _record(self, req):
        with self._lock:
            self._requests.append(req)

    @property
    def requests(self):
        """Every request read on every connection, in the order their heads arrived (a
        request is listed as soon as its head is read; its body may still be arriving)."""
        with self._lock:
            return list(self._requests)

    def wait_connections(self, n, timeout=5.0):
        """Waits until n connections were accepted; returns the list."""
        deadline = time.monotonic() + timeout
        while len(self.conns) < n:
            if time.monotonic() >= deadline:
                raise TimeoutError("backend %s: %d of %d connections after %.1fs"
                                   % (self.name, len(self.conns), n, timeout))
            time.sleep(0.01)
        return list(self.conns)

    def wait_requests(self, n, timeout=5.0):
        """Waits until n request heads were read; returns them."""
        deadline = time.monotonic() + timeout
        while len(self.requests) < n:
            if time.monotonic() >= deadline:
                raise TimeoutError("backend %s: %d of %d requests after %.1fs"
                                   % (self.name, len(self.requests), n, timeout))
            time.sleep(0.01)
        return self.requests

    def wait_all_closed(self, timeout=5.0):
        """Waits until sidestep closed every accepted connection (or the script closed it);
        returns the list of close kinds."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                conns = list(self.conns)
            if all(c.peer_closed is not None or c._done for c in conns):
                return [c.peer_closed for c in conns]
            if time.monotonic() >= deadline:
                raise TimeoutError("backend %s: connections still open after %.1fs"
                                   % (self.name, timeout))
            time.sleep(0.01)

    def stop(self):
        self.stopping.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        if self._acceptor is not None:
            self._acceptor.join(2)
        for t in self._threads:
            t.join(2)
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            with c._lock:
                if not c._done:
                    c._done = True
                    try:
                        c.sock.close()
                    except OSError:
                        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
