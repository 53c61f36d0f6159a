"""Hardening: slow and abusive clients over real sockets.

- slow head: 408 at a total deadline (timeouts.request_head), however steadily bytes trickle;
  a connection that sends nothing is closed without an answer;
- an idle keep-alive connection is closed at timeouts.idle; a body that stops for timeouts.body
  gets 408;
- slow body: 408 at timeouts.body_total, or when the average rate stays under
  timeouts.body_min_rate after its 5 s grace; the backend request is aborted (the backend sees
  its connection closed) and is not counted against the backend;
- slow reader: closed at timeouts.send, and the bytes sidestep holds per connection stay
  capped by limits.buffer: RSS is measured from /proc while clients read nothing of large
  streaming responses;
- a client that closes (FIN or RST) mid-body or while waiting aborts the backend request
  without a passive failure: the event log shows no DOWN and the backend keeps serving.
"""

import signal
import socket
import struct
import threading
import time
import unittest

import sst
from badbackend import BadBackend, ok
from sst import Conn, Sidestep, Stub, scaled


def config(backend_addr, timeouts=None, limits=None, passive=True):
    # active checks far apart so that passive_fall 1 is live (it needs probes to bring a
    # backend back); any passive failure would show as "up -> down" in the event log
    health = {"enabled": True, "interval": "30s", "timeout": "1s", "initial": "up",
              "passive_fall": 1 if passive else 0, "passive_fall_refused": 1 if passive else 0}
    cfg = {
        "workers": 1,
        "listen": [{"address": "127.0.0.1:0"}],
        "regions": [{"name": "us-east", "url": "http://us-east.example",
                     "backends": [backend_addr], "health": health}],
        "timeouts": dict({"linger": "300ms"}, **(timeouts or {})),
        "log": {"access": "stderr"},
    }
    if limits:
        cfg["limits"] = limits
    return cfg


def healthz_or(script):
    """Serves keep-alive: probes (/healthz) and control requests (/after) get a 200, any other
    request is handed to `script` (which may stall, or answer and return for the next)."""
    def wrapped(c):
        while True:
            q = c.read_request(timeout=30)
            if q is None:
                return
            if q.target in ("/healthz", "/after"):
                c.send(ok())
                continue
            script(c, q)
            if c.peer_closed is not None:
                return
    return wrapped


def traffic_conns(backend):
    """Connections that carried a request under test (not a probe or a control request)."""
    return [k for k in backend.conns
            if any(q.target not in ("/healthz", "/after") for q in k.requests)]


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def reset(sock):
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class SlowHead(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.backend = BadBackend(healthz_or(lambda c, q: c.send(ok())))
        cls.sst = Sidestep(config(cls.backend.addr, timeouts={"request_head": "1s"}))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.backend.stop()

    def trickle_until_answer(self, c, start, pieces):
        """Sends one piece every 100 ms until sidestep answers; returns the answer's time."""
        out = b""
        for piece in pieces:
            try:
                c.send(piece)
            except OSError:
                break
            out += c.recv_some(timeout=0.1)
            if out:
                break
        out += c.recv_all(timeout=3)
        return out, time.monotonic() - start

    def test_408_at_a_total_deadline_not_an_inactivity_timer(self):
        trickle = [b"GET / HTTP/1.1\r\n"] + [b"X-%d: y\r\n" % i for i in range(40)]
        with Conn(self.sst.port) as c:
            start = time.monotonic()
            out, elapsed = self.trickle_until_answer(c, start, trickle)
        self.assertTrue(out.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), out[:80])
        self.assertIn(b"Connection: close\r\n", out)
        self.assertGreaterEqual(elapsed, 0.95)
        self.assertLess(elapsed, scaled(1.6))

    def test_the_deadline_restarts_with_each_request_on_a_kept_connection(self):
        with Conn(self.sst.port) as c:
            for i in range(3):  # 3 x 0.5 s: longer than one deadline, each request in time
                time.sleep(0.5)
                c.request("GET", "/k%d" % i)
                self.assertEqual(c.recv_response().status, 200)
            start = time.monotonic()
            out, elapsed = self.trickle_until_answer(c, start, [b"G", b"E", b"T", b" /"] + [b"a"] * 30)
        self.assertTrue(out.startswith(b"HTTP/1.1 408 "), out[:80])
        self.assertLess(elapsed, scaled(1.6))

    def test_silent_connection_is_closed_without_an_answer(self):
        with Conn(self.sst.port) as c:
            start = time.monotonic()
            self.assertTrue(c.closed(timeout=3))
            self.assertLess(time.monotonic() - start, scaled(1.6))


class Inactivity(unittest.TestCase):
    """timeouts.idle between requests and timeouts.body while a body is read."""

    @classmethod
    def setUpClass(cls):
        cls.a = Stub("us-east")
        cls.sst = Sidestep(config(cls.a.addr, timeouts={"idle": "500ms", "body": "500ms"}))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.a.stop()

    def test_idle_keep_alive_is_closed(self):
        with Conn(self.sst.port) as c:
            c.request("GET", "/")
            c.recv_response()
            self.assertTrue(c.closed(timeout=3))

    def test_slow_body_gets_408(self):
        with Conn(self.sst.port) as c:
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nabc")
            out = c.recv_all(timeout=3)
        self.assertTrue(out.startswith(b"HTTP/1.1 408 "), out[:100])


class SlowBody(unittest.TestCase):
    def setUp(self):
        def read_body(c, q):
            c.wait_peer_closed(30)  # read_request returned at the cut; wait for the close
        self.backend = BadBackend(healthz_or(read_body))

    def tearDown(self):
        self.backend.stop()

    def drip(self, c, total, piece, delay, stop):
        sent = 0
        try:
            while sent < total and not stop.is_set():
                c.send(b"b" * piece)
                sent += piece
                time.sleep(delay)
        except OSError:
            pass
        return sent

    def assert_backend_aborted_not_blamed(self, s):
        conns = traffic_conns(self.backend)
        self.assertEqual(len(conns), 1)
        self.assertIsNotNone(conns[0].wait_peer_closed(scaled(2)), "backend request not aborted")
        self.assertFalse(conns[0].requests[-1].complete)
        time.sleep(0.2)  # a passive signal, if any, travels through the control thread
        self.assertNotIn("up -> down", s.stderr_text())
        self.assertEqual(sst.http(s.port, "GET", "/after").status, 200)

    def test_body_total_408(self):
        with Sidestep(config(self.backend.addr, timeouts={"body_total": "1s", "body": "30s"})) \
                as s, Conn(s.port) as c:
            stop = threading.Event()
            c.send(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
            start = time.monotonic()
            t = threading.Thread(target=self.drip, args=(c, 100000, 50, 0.1, stop), daemon=True)
            t.start()
            r = c.recv_response(timeout=5)
            elapsed = time.monotonic() - start
            stop.set()
            t.join(5)
            self.assertEqual((r.status, r.reason), (408, "Request Timeout"))
            self.assertEqual(r.header("Connection"), "close")
            self.assertGreaterEqual(elapsed, 0.95)
            self.assertLess(elapsed, scaled(1.8))
            self.assert_backend_aborted_not_blamed(s)

    def test_body_min_rate_408_and_a_fast_body_passes(self):
        """100 B/s against a 1000 B/s minimum: 408 once the 5 s grace is over. A 4000 B/s body
        sent alongside for as long is forwarded whole."""
        timeouts = {"body_min_rate": "1000", "body": "30s"}
        fast = BadBackend(healthz_or(lambda c, q: c.send(ok())))
        try:
            with Sidestep(config(self.backend.addr, timeouts=timeouts)) as s, \
                    Sidestep(config(fast.addr, timeouts=timeouts)) as s2, \
                    Conn(s.port, timeout=15) as slow_c, Conn(s2.port, timeout=15) as fast_c:
                stop = threading.Event()
                total = 4000 * 7
                slow_c.send(b"POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n")
                fast_c.send(b"POST /fast HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n"
                            % total)
                start = time.monotonic()
                ts = threading.Thread(target=self.drip, args=(slow_c, 100000, 20, 0.2, stop),
                                      daemon=True)
                tf = threading.Thread(target=self.drip, args=(fast_c, total, 400, 0.1, stop),
                                      daemon=True)
                ts.start()
                tf.start()
                r = slow_c.recv_response(timeout=10)
                elapsed = time.monotonic() - start
                self.assertEqual(r.status, 408)
                self.assertIn(b"minimum rate", r.body)
                self.assertGreaterEqual(elapsed, 4.9)
                self.assertLess(elapsed, scaled(7.5))
                self.assertEqual(fast_c.recv_response(timeout=10).status, 200)
                stop.set()
                ts.join(5)
                tf.join(5)
                got = [q for q in fast.requests if q.target == "/fast"]
                self.assertEqual([len(q.body) for q in got], [total])
                self.assert_backend_aborted_not_blamed(s)
        finally:
            fast.stop()


class ClientGoesAway(unittest.TestCase):
    """The client leaves; the backend request is aborted; the backend is not blamed."""

    def run_case(self, script, send, leave):
        b = BadBackend(healthz_or(script))
        try:
            with Sidestep(config(b.addr)) as s:
                sock = socket.create_connection(("127.0.0.1", s.port))
                sock.sendall(send)
                sst.wait_until(lambda: traffic_conns(b), timeout=3, what="the backend request")
                time.sleep(0.1)
                leave(sock)
                conn = traffic_conns(b)[0]
                self.assertIsNotNone(conn.wait_peer_closed(scaled(2)),
                                     "backend request not aborted")
                time.sleep(0.2)
                self.assertNotIn("up -> down", s.stderr_text())
                s.wait_stderr('" 499 ', timeout=2)  # logged as a client abort
                self.assertEqual(sst.http(s.port, "GET", "/after").status, 200)
                return conn
        finally:
            b.stop()

    def test_close_mid_body(self):
        head = b"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n"
        for how, leave in (("fin", lambda s: s.close()), ("rst", reset)):
            with self.subTest(how):
                conn = self.run_case(lambda c, q: c.wait_peer_closed(30),
                                     head + b"x" * 5000, leave)
                self.assertFalse(conn.requests[-1].complete)

    def test_close_while_waiting_for_the_response(self):
        for how, leave in (("fin", lambda s: s.close()), ("rst", reset)):
            with self.subTest(how):
                conn = self.run_case(lambda c, q: c.stall(30),
                                     b"POST /wait HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
                                     b"abc", leave)
                self.assertTrue(conn.requests[-1].complete)


class SlowReader(unittest.TestCase):
    def test_send_timeout_closes_a_client_that_reads_nothing(self):
        def stream(c, q):
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            block = b"z" * 65536
            while c.send(block):
                pass
        b = BadBackend(healthz_or(stream))
        try:
            with Sidestep(config(b.addr, timeouts={"send": "1s", "body": "30s"})) as s:
                sock = socket.create_connection(("127.0.0.1", s.port))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.sendall(b"GET /big HTTP/1.1\r\nHost: a\r\n\r\n")
                c = Conn.from_socket(sock, timeout=10)
                sst.wait_until(lambda: traffic_conns(b), timeout=3, what="the backend request")
                # sidestep's queue fills; after `send` without progress the client is cut
                start = time.monotonic()
                conn = traffic_conns(b)[0]
                self.assertIsNotNone(conn.wait_peer_closed(scaled(5)))
                self.assertLess(time.monotonic() - start, scaled(4))
                data = c.recv_all(timeout=5)
                self.assertTrue(data.startswith(b"HTTP/1.1 200 OK\r\n"))
                self.assertLess(len(data), 1000000000)
                s.wait_stderr("client send timeout", timeout=2)
                c.close()
        finally:
            b.stop()

    def test_buffered_bytes_per_connection_are_capped(self):
        """20 clients ask for 1 GiB each and read nothing. sidestep stops reading from the
        backend once limits.buffer (64 KiB) is queued per client, so its RSS stays flat while
        unbounded buffering would grow by hundreds of MiB per second."""
        stub = Stub("us-east")
        socks = []
        try:
            with Sidestep(config(stub.addr, passive=False,
                                 timeouts={"send": "60s", "body": "60s"})) as s:
                self.assertEqual(sst.http(s.port, "GET", "/warm").status, 200)
                base = rss_kib(s.pid)
                for _ in range(20):
                    sock = socket.create_connection(("127.0.0.1", s.port))
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Stub-Size: 1073741824\r\n\r\n")
                    socks.append(sock)
                time.sleep(1.0)
                mid = rss_kib(s.pid)
                time.sleep(1.5)
                end = rss_kib(s.pid)
                # each client holds at most ~limits.buffer in sidestep plus a few chunks
                bound = 24 * 1024 if not sst.SANITIZE else 96 * 1024
                self.assertLess(end - base, bound, "RSS grew %d KiB" % (end - base))
                self.assertLess(end - mid, 4 * 1024, "still growing: %d -> %d KiB" % (mid, end))
                # the streams are alive, only paused: each client can still read its bytes
                socks[0].settimeout(5)
                self.assertTrue(socks[0].recv(65536).startswith(b"HTTP/1.1 200 OK"))
                for sock in socks:
                    sock.close()
        finally:
            stub.stop()

    def test_pipelining_client_that_reads_nothing_is_bounded_and_cut(self):
        """A client pipelines GETs (each answered with 4 KB) and never reads. Once more than
        limits.buffer of answers is queued, sidestep takes no next request and reads nothing
        more; its memory stays flat however much the client sends, and the send timeout,
        which counts from the last write progress and not from the client's reads, ends it."""
        stub = Stub("us-east")
        try:
            with Sidestep(config(stub.addr, passive=False, timeouts={"send": "2s"},
                                 limits={"buffer": "64k"})) as s:
                self.assertEqual(sst.http(s.port, "GET", "/warm").status, 200)
                base = rss_kib(s.pid)
                sock = socket.create_connection(("127.0.0.1", s.port))
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.settimeout(0.2)
                batch = b"GET / HTTP/1.1\r\nHost: a\r\nX-Stub-Size: 4000\r\n\r\n" * 100
                sent, cut, start = 0, False, time.monotonic()
                while time.monotonic() - start < scaled(8):
                    try:
                        sent += sock.send(batch)
                    except socket.timeout:
                        pass  # sidestep stopped reading: the client's send buffer is full
                    except OSError:
                        cut = True  # the send timeout closed the connection
                        break
                    time.sleep(0.005)
                grown = rss_kib(s.pid) - base
                bound = 16 * 1024 if not sst.SANITIZE else 64 * 1024
                self.assertLess(grown, bound, "RSS grew %d KiB" % grown)
                # cut by the send timeout (2 s after the queue stopped moving): the client's
                # sends fail once sidestep closed with its input unread (RST)
                self.assertTrue(cut, "still connected after %.1f s" % (time.monotonic() - start))
                self.assertLess(time.monotonic() - start, scaled(6))
                sock.close()
                self.assertEqual(sst.http(s.port, "GET", "/after").status, 200)
        finally:
            stub.stop()

    def test_graceful_stop_and_close_deliver_queued_answers(self):
        """A slow reader whose answer is fully queued in sidestep (limits.buffer is large) is
        between requests. Neither a graceful stop (SIGTERM) nor a Connection: close answer may
        cut what is queued: the FIN follows the last byte, and the linger time starts only
        then, so a reader slower than timeouts.linger still gets every byte."""
        size = 12 * 1024 * 1024
        stub = Stub("us-east")
        try:
            for close in (False, True):
                s = Sidestep(config(stub.addr, passive=False,
                                    timeouts={"send": "30s", "shutdown": "20s", "linger": "300ms"},
                                    limits={"buffer": "32m"}))
                try:
                    # a 64 KiB window set before connecting: the kernel holds at most a few
                    # MiB of the answer, the rest waits in sidestep's queue
                    sock = socket.socket()
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
                    sock.connect(("127.0.0.1", s.port))
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nX-Stub-Size: %d\r\n%s\r\n"
                                 % (size, b"Connection: close\r\n" if close else b""))
                    time.sleep(scaled(1.5))  # the whole answer is read from the stub and queued
                    if not close:
                        s.proc.send_signal(signal.SIGTERM)
                    time.sleep(scaled(0.5))  # past the linger time
                    sock.settimeout(scaled(10))
                    data = bytearray()
                    while True:
                        d = sock.recv(1 << 16)
                        if not d:
                            break
                        data += d
                        time.sleep(0.003)  # a slow reader: longer than the linger time
                    head, _, body = bytes(data).partition(b"\r\n\r\n")
                    self.assertTrue(head.startswith(b"HTTP/1.1 200 OK"), head[:40])
                    self.assertEqual(len(body), size, "close=%s" % close)
                    sock.close()
                    if not close:
                        self.assertEqual(s.proc.wait(timeout=scaled(10)), 0)
                finally:
                    s.stop()
        finally:
            stub.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
