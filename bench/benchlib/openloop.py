"""The open-loop client of the gray-failure benchmark (bench/failover.py): requests at a
constant rate, each on its own new TCP connection, with every answer, error and time recorded.

Request i is due at t0 + i/rate and is sent then whatever happened to the ones before: each
has its own connection, so a stalled request never holds back the next send, and latency is
counted from the due time, so the client's own lag would show rather than hide (no coordinated
omission). One thread, one selector (epoll); no answer is followed (a 307 is recorded as it
came). Standard library only; every wait is bounded by the per-request timeout.
"""

import errno
import selectors
import socket
import time

LOOPBACK = "127.0.0.1"


class Req:
    """One request: times in CLOCK_MONOTONIC seconds (comparable across processes)."""

    __slots__ = ("i", "due", "sent", "first", "done", "status", "origin", "location", "error",
                 "sock", "out", "buf", "head_len", "body_len", "chunked")

    def __init__(self, i, due):
        self.i = i
        self.due = due
        self.sent = self.first = self.done = None
        self.status = None
        self.origin = None  # X-Stub-Origin: the backend (and so the region) that answered
        self.location = None
        self.error = None  # refused, reset, eof, timeout, protocol, connect-error
        self.sock = None
        self.out = b""
        self.buf = b""
        self.head_len = None
        self.body_len = None
        self.chunked = False

    def record(self):
        return [self.i, self.due, self.sent, self.first, self.done, self.status, self.origin,
                self.location, self.error]


RECORD_FIELDS = ("i", "due", "sent", "first", "done", "status", "origin", "location", "error")


def _parse_head(req):
    lines = req.buf[:req.head_len - 4].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError("bad status line %r" % lines[0][:60])
    req.status = int(parts[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        if name == "x-stub-origin":
            req.origin = value
        elif name == "location":
            req.location = value
        elif name == "content-length" and value.isdigit():
            length = int(value)
        elif name == "transfer-encoding" and value.lower().endswith("chunked"):
            req.chunked = True
    req.body_len = length  # None: chunked or close-delimited


def _chunked_done(body):
    """True when a chunked body is complete (the last chunk and the trailer's blank line)."""
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            return False
        try:
            size = int(body[pos:end].split(b";", 1)[0], 16)
        except ValueError:
            raise ValueError("bad chunk size")
        if size == 0:
            return body.find(b"\r\n\r\n", end) >= 0 or body[end:end + 4] == b"\r\n\r\n"
        pos = end + 2 + size + 2
        if pos > len(body):
            return False


class Result:
    def __init__(self, t0, requests, marks, max_open):
        self.t0 = t0
        self.requests = requests
        self.marks = marks  # name -> CLOCK_MONOTONIC second (e.g. "fault_cmd")
        self.max_open = max_open
        lags = sorted(r.sent - r.due for r in requests if r.sent is not None)
        #: how late the client sent: its own latency, which would otherwise pollute the figures
        self.send_lag_p50_ms = 1000 * lags[len(lags) // 2] if lags else None
        self.send_lag_p99_ms = 1000 * lags[min(len(lags) - 1, int(len(lags) * 0.99))] \
            if lags else None
        self.send_lag_max_ms = 1000 * lags[-1] if lags else None


def run(port, rate, seconds, make_request, timeout, events=(), host=LOOPBACK):
    """Sends make_request(i) (bytes) at `rate` per second for `seconds`; `events` is a list of
    (offset seconds, name, fn): fn() runs at t0 + offset, inside the loop, between sends, and
    its instant is kept in marks[name]. A request with no complete answer `timeout` seconds
    after its due time is closed and recorded as "timeout". Returns a Result."""
    sel = selectors.DefaultSelector()
    n = int(round(seconds * rate))
    t0 = time.monotonic() + 0.05
    reqs = []
    pending = {}  # id(req) -> Req, in due order
    events = sorted(events, key=lambda e: e[0])
    marks = {}
    nxt = 0
    ev_i = 0
    max_open = 0

    def finish(req, error=None):
        req.done = time.monotonic()
        if error and req.error is None:
            req.error = error
        if req.sock is not None:
            try:
                sel.unregister(req.sock)
            except (KeyError, ValueError):
                pass
            req.sock.close()
            pending.pop(id(req), None)
            req.sock = None

    def start(req):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req.sock = s
        req.out = make_request(req.i)
        err = s.connect_ex((host, port))
        if err in (0, errno.EINPROGRESS):
            pending[id(req)] = req
            sel.register(s, selectors.EVENT_WRITE, req)
            # on loopback the handshake has usually completed inside connect(): send now
            # rather than one loop turn later
            on_event(req, selectors.EVENT_WRITE)
        else:
            finish(req, "refused" if err == errno.ECONNREFUSED else "connect-error")

    def on_event(req, mask):
        s = req.sock
        if mask & selectors.EVENT_WRITE:
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                finish(req, "refused" if err == errno.ECONNREFUSED else "connect-error")
                return
            try:
                k = s.send(req.out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno == errno.ENOTCONN:  # the handshake is still under way
                    return
                finish(req, "reset" if isinstance(e, ConnectionResetError) else "send-error")
                return
            except OSError as e:
                finish(req, "reset" if isinstance(e, ConnectionResetError) else "send-error")
                return
            req.out = req.out[k:]
            if not req.out:
                req.sent = time.monotonic()
                sel.modify(s, selectors.EVENT_READ, req)
            return
        try:
            chunk = s.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            finish(req, "reset")
            return
        except OSError:
            finish(req, "recv-error")
            return
        if req.first is None and chunk:
            req.first = time.monotonic()
        if not chunk:
            if req.head_len is not None and req.body_len is None and not req.chunked:
                finish(req)  # a close-delimited body ends here
            else:
                finish(req, "eof")
            return
        req.buf += chunk
        try:
            if req.head_len is None:
                end = req.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(req.buf) > 65536:
                        finish(req, "protocol")
                    return
                req.head_len = end + 4
                _parse_head(req)
            body = req.buf[req.head_len:]
            if req.body_len is not None and len(body) >= req.body_len:
                finish(req)
            elif req.chunked and _chunked_done(body):
                finish(req)
        except ValueError:
            finish(req, "protocol")

    try:
        while nxt < n or pending:
            now = time.monotonic()
            while ev_i < len(events) and t0 + events[ev_i][0] <= now:
                _, name, fn = events[ev_i]
                marks[name] = time.monotonic()
                fn()
                ev_i += 1
            now = time.monotonic()
            while nxt < n and t0 + nxt / rate <= now:
                req = Req(nxt, t0 + nxt / rate)
                reqs.append(req)
                start(req)
                nxt += 1
            max_open = max(max_open, len(pending))
            # pending keeps insertion order, which is due order: its first request is the
            # first to time out
            now = time.monotonic()
            while pending:
                oldest = next(iter(pending.values()))
                if oldest.due + timeout > now:
                    break
                finish(oldest, "timeout")
            wake = [now + 0.25]
            if nxt < n:
                wake.append(t0 + nxt / rate)
            if ev_i < len(events):
                wake.append(t0 + events[ev_i][0])
            if pending:
                wake.append(next(iter(pending.values())).due + timeout)
            # epoll waits whole milliseconds and the selector rounds up (a float may round
            # up one more): wait one millisecond less than the whole ones, then poll through
            # the rest, so sends leave on time (at most ~2 ms of polling per send)
            ms = int((min(wake) - time.monotonic()) * 1000) - 1
            for key, mask in sel.select(ms / 1000.0 if ms > 0 else 0):
                req = key.data
                if req.sock is not None:
                    on_event(req, mask)
    finally:
        for req in list(pending.values()):
            finish(req, "aborted")
        sel.close()
    return Result(t0, reqs, marks, max_open)
