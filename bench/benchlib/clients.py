"""The load clients wrk cannot be: one checked request, N idle keep-alive connections, and a
constant-rate client that records every answer and error around a backend's death.
Standard library only; every wait is bounded."""

import asyncio
import errno
import selectors
import socket
import time

LOOPBACK = "127.0.0.1"


class HttpError(Exception):
    """The server sent something that is not an HTTP/1.1 response, or closed mid-response."""


def request_bytes(method, target, body=b"", host="bench.example"):
    head = "%s %s HTTP/1.1\r\nHost: %s\r\n" % (method, target, host)
    if body or method in ("POST", "PUT"):
        head += "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n" % len(body)
    return head.encode("ascii") + b"\r\n" + body


def parse_head(head):
    """(status, {lower-case name: value}) from the bytes before the blank line."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError("bad status line %r" % lines[0][:80])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


def body_length(headers):
    """Content-Length of a response; chunked and close-delimited answers are not expected from
    the servers under test and count as protocol errors."""
    if "transfer-encoding" in headers:
        raise HttpError("chunked answer not expected here")
    value = headers.get("content-length")
    if value is None or not value.isdigit():
        raise HttpError("answer without Content-Length")
    return int(value)


def _tls_client():
    """A TLS client context that checks nothing: the bench measures servers, not trust."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def check_request(port, method, target, body=b"", timeout=5.0, tls=False):
    """One request on a fresh connection (over TLS when `tls`). Returns (status, headers,
    body)."""
    raw = socket.create_connection((LOOPBACK, port), timeout=timeout)
    try:
        s = _tls_client().wrap_socket(raw) if tls else raw
    except OSError:
        raw.close()
        raise
    with s:
        s.sendall(request_bytes(method, target, body))
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise HttpError("connection closed before the response head")
            buf += chunk
        head, rest = buf.split(b"\r\n\r\n", 1)
        status, headers = parse_head(head)
        n = body_length(headers)
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                raise HttpError("connection closed mid-body")
            rest += chunk
        return status, headers, rest[:n]


# --- idle keep-alive connections ---------------------------------------------------------------


class IdleResult:
    def __init__(self):
        self.opened = 0  # connections that got their answer and are held open
        self.failed = 0  # connect or request failures
        self.statuses = {}
        self.seconds = 0.0
        self.closed_by_server = 0  # of the held ones, closed by the server during the hold


class IdleHolder:
    """Opens `count` connections to port, sends one GET on each and reads the answer, and keeps
    them all open until close(). At most `window` connections are in progress at once, so the
    listen backlog never overflows."""

    def __init__(self, port, count, window=256, timeout=60.0):
        self.port = port
        self.count = count
        self.window = window
        self.timeout = timeout
        self.held = []
        self.result = IdleResult()

    def open(self):
        sel = selectors.DefaultSelector()
        req = request_bytes("GET", "/idle?k=1")
        started = 0
        pending = {}  # socket -> [state, buffer]
        t0 = time.monotonic()
        deadline = t0 + self.timeout
        try:
            while (started < self.count or pending) and time.monotonic() < deadline:
                while started < self.count and len(pending) < self.window:
                    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                    s.setblocking(False)
                    err = s.connect_ex((LOOPBACK, self.port))
                    started += 1
                    if err not in (0, errno.EINPROGRESS):
                        s.close()
                        self.result.failed += 1
                        continue
                    pending[s] = ["connect", b""]
                    sel.register(s, selectors.EVENT_WRITE)
                for key, _ in sel.select(timeout=0.5):
                    s = key.fileobj
                    state = pending[s]
                    try:
                        if state[0] == "connect":
                            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                            if err:
                                raise OSError(err, "connect")
                            s.send(req)  # a few dozen bytes: one send on a fresh socket
                            state[0] = "read"
                            sel.modify(s, selectors.EVENT_READ)
                            continue
                        chunk = s.recv(65536)
                        if not chunk:
                            raise HttpError("closed before the answer")
                        state[1] += chunk
                        if b"\r\n\r\n" not in state[1]:
                            continue
                        head, rest = state[1].split(b"\r\n\r\n", 1)
                        status, headers = parse_head(head)
                        if len(rest) < body_length(headers):
                            continue
                        self.result.statuses[status] = self.result.statuses.get(status, 0) + 1
                        sel.unregister(s)
                        del pending[s]
                        self.held.append(s)
                    except (OSError, HttpError):
                        sel.unregister(s)
                        del pending[s]
                        s.close()
                        self.result.failed += 1
            for s in list(pending):
                sel.unregister(s)
                s.close()
                self.result.failed += 1
        finally:
            sel.close()
        self.result.opened = len(self.held)
        self.result.seconds = time.monotonic() - t0
        return self.result

    def count_closed(self):
        """How many held connections the server has closed (readable means EOF or junk)."""
        sel = selectors.DefaultSelector()
        closed = 0
        try:
            for s in self.held:
                sel.register(s, selectors.EVENT_READ)
            for key, _ in sel.select(timeout=0):
                closed += 1
        finally:
            sel.close()
        self.result.closed_by_server = closed
        return closed

    def close(self):
        for s in self.held:
            s.close()
        self.held = []


# --- constant-rate client for the failover workload --------------------------------------------


class Answer:
    __slots__ = ("intended", "done", "status", "error", "origin")

    def __init__(self, intended, done, status=None, error=None, origin=None):
        self.intended = intended  # when the schedule said to send it (loop clock)
        self.done = done
        self.status = status
        self.error = error  # None, or a short kind: refused, reset, eof, timeout, protocol
        self.origin = origin  # X-Stub-Origin of a proxied answer


def _error_kind(exc):
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, ConnectionResetError):
        return "reset"
    if isinstance(exc, (asyncio.IncompleteReadError, EOFError)):
        return "eof"
    if isinstance(exc, HttpError):
        return "protocol"
    return "oserror"


async def _read_answer(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status, headers = parse_head(head[:-4])
    n = body_length(headers)
    if n:
        await reader.readexactly(n)
    close = headers.get("connection", "").lower() == "close"
    return status, headers, close


async def _paced(port, rate, conns, duration, kill_at, kill, timeout, max_open):
    """Open loop: request i is due at t0 + i/rate and is sent then, on an idle keep-alive
    connection, or on a new one when all are busy (a server that holds requests gets more
    connections, as it would from many independent clients)."""
    loop = asyncio.get_running_loop()
    answers = []
    marks = {}
    idle = []  # (reader, writer) ready for a request
    open_count = [0]
    req = request_bytes("GET", "/failover?x=1")

    async def connect():
        reader, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, port), timeout)
        open_count[0] += 1
        return reader, writer

    def drop(writer):
        open_count[0] -= 1
        writer.close()

    for _ in range(conns):
        idle.append(await connect())
    t0 = loop.time() + 0.1

    async def one(intended):
        conn = None
        try:
            if idle:
                conn = idle.pop()
            elif open_count[0] >= max_open:
                answers.append(Answer(intended, loop.time(), error="client-limit"))
                return
            else:
                conn = await connect()
            reader, writer = conn
            writer.write(req)
            status, headers, close = await asyncio.wait_for(_read_answer(reader), timeout)
            answers.append(Answer(intended, loop.time(), status=status,
                                  origin=headers.get("x-stub-origin")))
            if close:
                drop(writer)
            else:
                idle.append(conn)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, HttpError) as exc:
            answers.append(Answer(intended, loop.time(), error=_error_kind(exc)))
            if conn is not None:
                drop(conn[1])

    tasks = []
    killed = False
    i = 0
    while True:
        intended = t0 + i / rate
        if intended - t0 >= duration:
            break
        if not killed and intended - t0 >= kill_at:
            await asyncio.sleep(max(0.0, t0 + kill_at - loop.time()))
            marks["kill"] = loop.time()
            kill()
            killed = True
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(intended)))
        i += 1
    await asyncio.wait_for(asyncio.gather(*tasks), timeout + 5)
    for _, writer in idle:
        writer.close()
    marks["max_open"] = open_count[0]
    return t0, marks, answers


class FailoverResult:
    def __init__(self, t0, marks, answers, rate, conns):
        self.rate = rate
        self.conns = conns
        #: connections open at the end (more than conns: the server held requests)
        self.max_open = marks.get("max_open")
        kill = marks.get("kill")
        self.requests = len(answers)
        self.statuses = {}
        self.errors = {}
        for a in answers:
            if a.error:
                self.errors[a.error] = self.errors.get(a.error, 0) + 1
            else:
                self.statuses[a.status] = self.statuses.get(a.status, 0) + 1
        self.before_kill_ok = sum(1 for a in answers if a.done < kill and a.status == 200)
        self.before_kill = sum(1 for a in answers if a.done < kill)
        after = [a for a in answers if a.done >= kill]
        bad_after = [a for a in after if a.status != 307]
        good_after = [a for a in after if a.status == 307]
        #: ms from the kill to the completion of the last answer that was not a 307
        self.last_non307_ms = max(((a.done - kill) * 1000 for a in bad_after), default=0.0)
        #: ms from the kill to the send time of the last request answered with anything but a
        #: 307: every request sent after that got a 307 (0: every one after the kill did)
        self.switch_ms = max((max(0.0, (a.intended - kill) * 1000) for a in bad_after),
                             default=0.0)
        #: ms from the kill to the first 307
        self.first_307_ms = min(((a.done - kill) * 1000 for a in good_after), default=None)
        #: answers after the kill that were not 307 (errors included)
        self.non307_after = len(bad_after)
        #: worst latency (from the intended send time) among requests answered after the kill
        self.max_latency_after_ms = max(((a.done - a.intended) * 1000 for a in after),
                                        default=0.0)
        lat = sorted((a.done - a.intended) * 1000 for a in answers)
        self.p50_ms = lat[len(lat) // 2] if lat else 0.0
        self.p99_ms = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0.0
        self.held_over_100ms = sum(1 for a in after if (a.done - a.intended) > 0.1)
        self.five_xx = sum(n for s, n in self.statuses.items() if 500 <= s <= 599)
        self.error_total = sum(self.errors.values())

    def to_dict(self):
        return {k: v for k, v in self.__dict__.items()}


def run_paced(port, rate, conns, duration, kill_at, kill, timeout=5.0, max_open=2000):
    """Sends GETs at a constant `rate` per second for `duration` seconds, starting with `conns`
    keep-alive connections and opening more (up to max_open) whenever all are busy; calls
    kill() at `kill_at` seconds and returns a FailoverResult. A request that gets no answer
    within `timeout` seconds is an error ("timeout")."""
    t0, marks, answers = asyncio.run(_paced(port, rate, conns, duration, kill_at, kill, timeout,
                                            max_open))
    return FailoverResult(t0, marks, answers, rate, conns)
