"""Hardening: backend faults, scripted byte by byte with tests/support/badbackend.py.

- connect refused, or reset before the response: the request goes to another backend of the
  primary when that is safe (nothing sent, or an idempotent method); a non-idempotent request
  that may have reached the backend gets 502 and is never sent twice; a request reset before it
  was fully written gets an in-flight 307 to the next healthy region;
- connect timeout, a listener that never accepts, a backend that hangs after the request: 504
  at the configured timeout;
- garbage, bad status lines, duplicate Content-Length, Content-Length with Transfer-Encoding,
  other codings, too many or too large header fields, obs-fold, 101 unasked, a flood of 1xx:
  502, the backend connection discarded, a passive failure counted (the event log shows the
  backend going down with passive_fall 1);
- a bad chunk, a reset or a close mid-body after the head was relayed: the client connection is
  aborted (short body, no final chunk, RST), never presented as a clean end, HTTP/1.0 included;
- a response without a length: re-chunked to HTTP/1.1 clients, close-delimited to HTTP/1.0.
"""

import select
import socket
import threading
import time
import unittest

import sst
from badbackend import BadBackend, ok, respond
from sst import Conn, Sidestep, scaled

TIMEOUTS = {"connect": "300ms", "upstream_response": "500ms", "body": "2s", "linger": "300ms"}


def config(primary, secondary=None, passive_fall=0, timeouts=None, retries=2):
    # Passive ejection works only with active checks on (nothing else could bring the backend
    # back): with passive_fall the probes run, far apart, and the backends answer /healthz.
    health = {"enabled": False, "initial": "up", "passive_fall": passive_fall,
              "passive_fall_refused": passive_fall}
    if passive_fall:
        health.update({"enabled": True, "interval": "30s", "timeout": "1s"})
    regions = [{"name": "us-east", "url": "http://us-east.example",
                "backends": [b if isinstance(b, str) else b.addr for b in primary],
                "health": dict(health)}]
    failover = []
    if secondary is not None:
        regions.append({"name": "eu-west", "url": "http://eu-west.example",
                        "backends": [secondary.addr], "health": dict(health)})
        failover = ["eu-west"]
    return {
        "workers": 1,
        "local_region": "us-east",
        "listen": [{"address": "127.0.0.1:0"}],
        "regions": regions,
        "routes": [{"name": "default", "primary": "us-east", "failover": failover,
                    "retries": retries}],
        "timeouts": dict(TIMEOUTS, **(timeouts or {})),
        "log": {"access": "stderr"},
    }


def read_then(action):
    """A script: read one request (head and body), then "reset" or "close" without answering."""
    def script(c):
        if c.read_request() is not None:
            getattr(c, action)()
    return script


def head_then_reset(c):
    """Reads only the request head, then resets: the request is never fully written."""
    if c.read_request(body=False) is not None:
        c.reset()


def serving_health(script):
    """Answers /healthz probes with 200 and hands any other request to `script`, which gets
    the connection and the request already read."""
    def wrapped(c):
        while True:
            q = c.read_request()
            if q is None:
                return
            if q.target == "/healthz":
                c.send(ok())
                continue
            script(c, q)
            return
    return wrapped


def traffic_conns(backend):
    """The backend connections that carried a request other than a probe."""
    return [k for k in backend.conns if any(q.target != "/healthz" for q in k.requests)]


def hang(c):
    c.read_request()
    c.stall(timeout=30)


class Retries(unittest.TestCase):
    """One fresh sidestep per test: the first pick of smooth round-robin is backends[0]."""

    def test_refused_connect_goes_to_another_backend_whatever_the_method(self):
        good = BadBackend(respond(ok(b"good"), then="keep"))
        dead = sst.free_port()
        try:
            with Sidestep(config(["127.0.0.1:%d" % dead, good])) as s:
                for method in ("GET", "POST", "PATCH"):
                    r = sst.http(s.port, method, "/r", body=b"xyz" if method != "GET" else None)
                    self.assertEqual((r.status, r.body), (200, b"good"), method)
                self.assertEqual([q.method for q in good.requests], ["GET", "POST", "PATCH"])
                self.assertEqual(good.requests[1].body, b"xyz")
        finally:
            good.stop()

    def test_reset_after_an_idempotent_request_is_retried(self):
        bad = BadBackend(read_then("reset"))
        good = BadBackend(respond(ok(b"good"), then="keep"))
        try:
            with Sidestep(config([bad, good])) as s:
                for method in ("GET", "PUT", "DELETE"):
                    r = sst.http(s.port, method, "/i", body=b"v" if method == "PUT" else None)
                    self.assertEqual((r.status, r.body), (200, b"good"), method)
                self.assertGreaterEqual(len(bad.requests), 1)  # backends[0] is tried first
                self.assertEqual([q.method for q in good.requests], ["GET", "PUT", "DELETE"])
        finally:
            bad.stop()
            good.stop()

    def test_reset_after_a_post_is_502_and_never_sent_twice(self):
        first = BadBackend(read_then("reset"))
        second = BadBackend(read_then("reset"))
        try:
            with Sidestep(config([first, second])) as s:
                for action in ("POST", "PATCH"):
                    r = sst.http(s.port, action, "/once", body=b"charge the card")
                    self.assertEqual(r.status, 502, action)
                # each non-idempotent request reached exactly one backend, once
                got = [q.method for q in first.requests + second.requests]
                self.assertEqual(sorted(got), ["PATCH", "POST"])
        finally:
            first.stop()
            second.stop()

    def test_close_without_answer_after_a_post_is_502(self):
        b = BadBackend(read_then("close"))
        try:
            with Sidestep(config([b])) as s:
                self.assertEqual(sst.http(s.port, "POST", "/", body=b"x").status, 502)
                self.assertEqual(len(b.requests), 1)
        finally:
            b.stop()

    def test_every_backend_resetting_an_idempotent_request_ends_in_502(self):
        bs = [BadBackend(read_then("reset")) for _ in range(3)]
        try:
            with Sidestep(config(bs, retries=2)) as s:
                self.assertEqual(sst.http(s.port, "GET", "/all").status, 502)
                self.assertEqual([len(b.requests) for b in bs], [1, 1, 1])
        finally:
            for b in bs:
                b.stop()


class EarlyAnswer(unittest.TestCase):
    """A backend may answer before it has read the whole body (a 413, a redirect) and close.
    Its answer reaches the client; sidestep's failing body writes must not turn it into a 502.
    (Found by test_hardening_diff: HAProxy as an origin answers at once and closes.)"""

    def run_case(self, linger):
        answer = (b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 4\r\n"
                  b"Connection: close\r\n\r\nbig!")

        def script(c):
            if c.read_request(body=False) is None:
                return
            c.send(answer)
            if linger:  # FIN, then drain what the proxy still sends, like nginx's lingering
                c.sock.shutdown(socket.SHUT_WR)
                c.read_some(timeout=0.3)
            c.close()
        b = BadBackend(script)
        body_len = 4 * 1024 * 1024
        try:
            with Sidestep(config([b])) as s, Conn(s.port, timeout=10) as c:
                c.send(b"PUT /up HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                       % body_len)

                def pump():
                    try:
                        block = b"p" * 65536
                        for _ in range(body_len // len(block)):
                            c.sock.sendall(block)
                    except OSError:
                        pass
                t = threading.Thread(target=pump, daemon=True)
                t.start()
                r = c.recv_response(timeout=10)
                t.join(10)
                return r
        finally:
            b.stop()

    def test_early_answer_then_close_is_relayed(self):
        for linger in (True, False):  # FIN after draining, or a close that resets
            for _ in range(5):  # the race between the failing write and the read is the point
                r = self.run_case(linger=linger)
                self.assertEqual((r.status, r.body), (413, b"big!"), "linger=%s" % linger)


class InFlightFailover(unittest.TestCase):
    def setUp(self):
        self.eu = BadBackend(respond(ok(b"eu"), then="keep"), name="eu")

    def tearDown(self):
        self.eu.stop()

    def test_reset_before_the_request_was_fully_written_gets_307(self):
        """The backend reads only the head and resets while the 8 MiB body is still flowing:
        the request cannot have been processed, so the client is sent to the next healthy
        region (it still holds its body); the connection closes after the answer."""
        b = BadBackend(head_then_reset)
        body_len = 8 * 1024 * 1024
        try:
            with Sidestep(config([b], secondary=self.eu)) as s, Conn(s.port, timeout=10) as c:
                c.send(b"POST /upload?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                       % body_len)

                def pump():
                    try:
                        block = b"b" * 65536
                        for _ in range(body_len // len(block)):
                            c.sock.sendall(block)
                    except OSError:
                        pass  # sidestep may stop reading once it has answered
                t = threading.Thread(target=pump, daemon=True)
                t.start()
                r = c.recv_response(timeout=10)
                self.assertEqual(r.status, 307)
                self.assertEqual(r.header("Location"), "http://eu-west.example/upload?x=1")
                self.assertEqual(r.header("Connection"), "close")
                t.join(10)
                self.assertEqual(len(b.requests), 1)
                self.assertLess(len(b.conns[0].received), body_len // 2)
                self.assertEqual(self.eu.requests, [])
        finally:
            b.stop()

    def test_retry_sends_the_head_before_any_body_byte(self):
        """Backend A reads the head of a 100-continue PUT and resets; the retry's connect to B
        is held back (B's accept queue is full, so the SYN is retransmitted after about 1 s)
        while the client sends its body. B must see the request head first and the body as its
        body, never client bytes where a request line belongs."""
        a = BadBackend(head_then_reset)
        b = socket.socket()
        b.bind(("127.0.0.1", 0))
        b.listen(0)
        filler = socket.create_connection(b.getsockname())  # fills B's accept queue
        body = b"GET /smuggled HTTP/1.1\r\nHost: internal\r\n\r\n"
        try:
            cfg = config([a, "127.0.0.1:%d" % b.getsockname()[1]],
                         timeouts={"connect": "5s", "upstream_response": "3s"})
            with Sidestep(cfg) as s, Conn(s.port, timeout=10) as c:
                c.send(b"PUT /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                       b"Content-Length: %d\r\n\r\n" % len(body))
                self.assertEqual(c.recv_head().status, 100)
                sst.wait_until(lambda: a.conns and a.conns[0].done, 5, what="A reset")
                time.sleep(scaled(0.2))  # the retry is connecting to B
                c.send(body)
                time.sleep(scaled(0.2))
                held, _ = b.accept()  # the filler's slot frees: the retransmitted SYN gets in
                held.close()
                b.settimeout(scaled(5))
                conn, _ = b.accept()
                conn.settimeout(scaled(3))
                got = b""
                while b"\r\n\r\n" not in got or not got.endswith(body):
                    d = conn.recv(4096)
                    if not d:
                        break
                    got += d
                self.assertTrue(got.startswith(b"PUT /upload HTTP/1.1\r\n"), got[:80])
                self.assertTrue(got.endswith(b"\r\n\r\n" + body), got[-120:])
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                r = c.recv_response()
                self.assertEqual((r.status, r.body), (200, b"ok"))
                conn.close()
        finally:
            a.stop()
            filler.close()
            b.close()

    def test_reset_after_a_fully_written_post_is_502_not_307(self):
        """The request may have been processed: no redirect (the client would repeat it)."""
        b = BadBackend(read_then("reset"))
        try:
            with Sidestep(config([b], secondary=self.eu)) as s:
                r = sst.http(s.port, "POST", "/pay", body=b"card")
                self.assertEqual(r.status, 502)
                self.assertTrue(b.requests[0].complete)
        finally:
            b.stop()

    def test_idempotent_request_reset_everywhere_in_the_primary_gets_307(self):
        b = BadBackend(read_then("reset"))
        try:
            with Sidestep(config([b], secondary=self.eu)) as s:
                r = sst.http(s.port, "GET", "/page")
                self.assertEqual(r.status, 307)
                self.assertEqual(r.header("Location"), "http://eu-west.example/page")
        finally:
            b.stop()


class Timeouts(unittest.TestCase):
    def timed(self, backend_addr, want, low, high, method="GET"):
        with Sidestep(config([backend_addr])) as s:
            start = time.monotonic()
            r = sst.http(s.port, method, "/t", body=b"x" if method == "POST" else None)
            elapsed = time.monotonic() - start
        self.assertEqual(r.status, want)
        self.assertGreaterEqual(elapsed, low)
        self.assertLess(elapsed, scaled(high))
        return r

    def test_connect_timeout_504(self):
        """A listener with a full accept queue: the kernel drops further SYNs."""
        b = BadBackend(accept=False, backlog=0)
        fillers = []
        try:
            for _ in range(4):
                f = socket.socket()
                f.setblocking(False)
                try:
                    f.connect(("127.0.0.1", b.port))
                except BlockingIOError:
                    pass
                fillers.append(f)
            time.sleep(0.1)
            self.timed(b.addr, 504, 0.28, 1.2)
        finally:
            for f in fillers:
                f.close()
            b.stop()

    def test_never_accepted_504(self):
        """The kernel completes the handshake and takes the request; nothing ever reads it."""
        b = BadBackend(accept=False, backlog=16)
        try:
            self.timed(b.addr, 504, 0.48, 1.4)
            self.timed(b.addr, 504, 0.48, 1.4, method="POST")
        finally:
            b.stop()

    def test_backend_that_stops_reading_the_body_504(self):
        """The kernel accepts for a backend that never reads: a 32 MiB body fills the buffers
        and sidestep's queue, then nothing moves. After timeouts.body (2 s) without progress
        the attempt ends with 504, the client's body notwithstanding.

        sidestep then sends its FIN and drains the client for timeouts.linger (300 ms here)
        before it closes. The client here does what HTTP clients do while uploading: it looks
        for an answer before every send, and stops sending once one is there. (This test used
        to look only when a send timed out: once sidestep drained it, every send succeeded, the
        client went on sending past the linger and died on the BrokenPipeError of the reset
        that ends it, issue 11 item 5. The 504 was readable all along, and still is after the
        reset, which the EPIPE branch below keeps covered.)"""
        b = BadBackend(accept=False, backlog=16)
        try:
            with Sidestep(config([b.addr])) as s:
                c = socket.create_connection(("127.0.0.1", s.port))
                total = 32 * 1024 * 1024
                c.sendall(b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % total)
                c.settimeout(0.05)
                block = b"a" * 65536
                sent, start, answer = 0, time.monotonic(), b""
                while time.monotonic() - start < scaled(8) and not answer:
                    if select.select([c], [], [], 0)[0]:
                        c.settimeout(scaled(2))
                        answer = c.recv(4096)  # sidestep answered: stop sending
                        break
                    try:
                        sent += c.send(block)
                    except socket.timeout:
                        pass  # sidestep stopped reading: is it answering? (select, above)
                    except (BrokenPipeError, ConnectionResetError):
                        c.settimeout(scaled(2))
                        answer = c.recv(4096)  # the answer came before the reset
                        break
                elapsed = time.monotonic() - start
                self.assertLess(sent, total)
                self.assertTrue(answer.startswith(b"HTTP/1.1 504 "), answer[:60])
                self.assertGreaterEqual(elapsed, 1.9)
                self.assertLess(elapsed, scaled(5))
                c.close()
        finally:
            b.stop()

    def test_hang_after_the_request_504(self):
        b = BadBackend(hang)
        try:
            self.timed(b.addr, 504, 0.48, 1.4)
            conns = b.wait_connections(1)
            self.assertIsNotNone(conns[0].wait_peer_closed(scaled(2)),
                                 "the timed-out backend connection was not closed")
        finally:
            b.stop()


BAD_RESPONSES = [
    ("garbage", b"HELLO\r\n\r\n"),
    ("status 2000", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
    ("status 20", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
    ("status not a number", b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"),
    ("HTTP/2.0", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("lower-case name", b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("bare LF status line", b"HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n"),
    ("duplicate Content-Length", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3"
                                 b"\r\n\r\nabc"),
    ("Content-Length list", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nab"),
    ("CL with TE", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\nab\r\n0\r\n\r\n"),
    ("TE gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab"),
    ("TE twice", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
                 b"\r\n\r\n0\r\n\r\n"),
    ("too many fields", b"HTTP/1.1 200 OK\r\n" +
     b"".join(b"X-%d: v\r\n" % i for i in range(101)) + b"Content-Length: 0\r\n\r\n"),
    ("head too large", b"HTTP/1.1 200 OK\r\n" +
     b"".join(b"X-%d: %s\r\n" % (i, b"v" * 4000) for i in range(9)) +
     b"Content-Length: 0\r\n\r\n"),
    ("field too large", b"HTTP/1.1 200 OK\r\nX: " + b"v" * 9000 + b"\r\nContent-Length: 0"
                        b"\r\n\r\n"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    ("NUL in a field", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 0\r\n\r\n"),
    ("bare CR in a field", b"HTTP/1.1 200 OK\r\nX: \rContent-Length: 0\r\n\r\n"),
    ("space before the colon", b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n"),
    ("101 unasked", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
    ("1xx flood", b"HTTP/1.1 100 Continue\r\n\r\n" * 17 +
     b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
]


class BadResponses(unittest.TestCase):
    def run_case(self, name, data):
        def script(c, q):
            c.send(data)
            c.stall()
        b = BadBackend(serving_health(script))
        try:
            with Sidestep(config([b], passive_fall=1)) as s:
                r = sst.http(s.port, "GET", "/bad")
                self.assertEqual((r.status, r.reason), (502, "Bad Gateway"), name)
                conns = traffic_conns(b)
                self.assertEqual(len(conns), 1)
                # the backend connection is discarded, not pooled
                self.assertIsNotNone(conns[0].wait_peer_closed(scaled(2)), name)
                s.wait_stderr("backend us-east/%s up -> down reason=PASSIVE_RESET" % b.addr,
                              timeout=2)
        finally:
            b.stop()

    def test_malformed_responses_are_502_and_counted(self):
        for name, data in BAD_RESPONSES:
            with self.subTest(name):
                self.run_case(name, data)

    def test_the_connection_is_not_reused_after_a_bad_response(self):
        """With passive ejection off, the next request opens a new backend connection."""
        state = {"n": 0}
        lock = threading.Lock()

        def script(c):
            while c.read_request() is not None:
                with lock:
                    state["n"] += 1
                    first = state["n"] == 1
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"
                       if first else ok())
        b = BadBackend(script)
        try:
            with Sidestep(config([b])) as s, Conn(s.port) as c:
                c.request("GET", "/1")
                self.assertEqual(c.recv_response().status, 502)
                c.request("GET", "/2")
                self.assertEqual(c.recv_response().status, 200)
                self.assertEqual(len(b.conns), 2)
                self.assertEqual([len(k.requests) for k in b.conns], [1, 1])
        finally:
            b.stop()


class CutMidBody(unittest.TestCase):
    """After the head was relayed, a failure can only be shown by cutting the connection."""

    def cut(self, head, sent_body, action, version="HTTP/1.1", passive_fall=0, then=b"",
            event=None):
        """The backend sends head + sent_body, pauses (so the head reaches the client on its
        own), sends `then`, and closes or resets."""
        def script(c, q):
            c.send(head + sent_body)
            time.sleep(0.1)
            if then:
                c.send(then)
                time.sleep(0.05)
            getattr(c, action)()
        b = BadBackend(serving_health(script))
        try:
            with Sidestep(config([b], passive_fall=passive_fall)) as s, Conn(s.port) as c:
                c.request("GET", "/cut", version=version)
                r = c.recv_response(head_only=True)
                self.assertEqual(r.status, 200)
                rest = c.recv_all(timeout=3)
                if event is not None:
                    s.wait_stderr(event % b.addr, timeout=2)
                return s, r, rest, c.close_kind
        finally:
            b.stop()

    def test_reset_or_close_mid_body_with_content_length(self):
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
        for action in ("reset", "close"):
            with self.subTest(action):
                s, r, rest, kind = self.cut(head, b"x" * 5000, action)
                self.assertEqual(r.header("Content-Length"), "100000")
                self.assertEqual(rest, b"x" * 5000)
                self.assertEqual(kind, "reset")

    def test_reset_or_close_mid_chunked_body_has_no_final_chunk(self):
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        for action in ("reset", "close"):
            with self.subTest(action):
                s, r, rest, kind = self.cut(head, b"5\r\nhello\r\n", action)
                self.assertEqual(rest, b"5\r\nhello\r\n")
                self.assertNotIn(b"0\r\n\r\n", rest)
                self.assertEqual(kind, "reset")

    def test_http10_client_sees_a_reset_not_a_clean_close(self):
        """To an HTTP/1.0 client the body is close-delimited: only a reset tells it the body
        is short. Chunked and close-delimited backend bodies alike."""
        for head, body in ((b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                            b"5\r\nhello\r\n"),
                           (b"HTTP/1.1 200 OK\r\n\r\n", b"hello")):
            with self.subTest(head=head):
                s, r, rest, kind = self.cut(head, body, "reset", version="HTTP/1.0")
                self.assertIsNone(r.header("Content-Length"))
                self.assertEqual(rest, b"hello")
                self.assertEqual(kind, "reset")

    def test_close_delimited_body_cut_by_a_reset(self):
        s, r, rest, kind = self.cut(b"HTTP/1.1 200 OK\r\n\r\n", b"partial", "reset")
        self.assertEqual(r.header("Transfer-Encoding"), "chunked")
        self.assertEqual(rest, b"7\r\npartial\r\n")
        self.assertEqual(kind, "reset")

    def test_bad_chunk_after_the_head_aborts_and_counts(self):
        """A malformed chunk is a broken backend: the client sees the cut, and the failure is
        counted like a malformed head (passive_fall 1 takes the backend down)."""
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        s, r, rest, kind = self.cut(head, b"5\r\nhello\r\n", "close", passive_fall=1,
                                    then=b"zz\r\nmore\r\n",
                                    event="backend us-east/%s up -> down reason=PASSIVE_RESET")
        self.assertEqual(rest, b"5\r\nhello\r\n")
        self.assertEqual(kind, "reset")


class NoLength(unittest.TestCase):
    def test_close_delimited_response_is_rechunked_or_closed(self):
        def script(c):
            if c.read_request() is None:
                return
            c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
            c.send(b"first part, ")
            time.sleep(0.05)
            c.send(b"second part")
            c.close()
        b = BadBackend(script)
        try:
            with Sidestep(config([b])) as s:
                with Conn(s.port) as c:
                    c.request("GET", "/11")
                    r = c.recv_response()
                    self.assertEqual(r.framing, "chunked")
                    self.assertEqual(r.body, b"first part, second part")
                    self.assertIsNone(r.header("Connection"))
                    c.request("GET", "/again")  # still usable: the framing was re-created
                    self.assertEqual(c.recv_response().body, b"first part, second part")
                with Conn(s.port) as c:
                    c.request("GET", "/10", version="HTTP/1.0")
                    r = c.recv_response()
                    self.assertEqual(r.framing, "close")
                    self.assertEqual(r.body, b"first part, second part")
                    self.assertEqual(c.close_kind, "fin")
        finally:
            b.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
