"""Foundation: sidestep proxies HTTP/1.1 to the primary region's backends, over real sockets.

Keep-alive, pipelining, chunked both ways, 100-continue, large streamed bodies checked by hash,
HEAD/204/304, Connection: close both ways, hop-by-hop fields, forwarding fields, every limit and
timeout, every error status, a backend closing mid-response, and isolation between clients.
"""

import socket
import threading
import time
import unittest

import sst
from sst import Conn, Sidestep, Stub, http, raw, scaled


def proxy_config(primary, secondary=None, limits=None, timeouts=None, extra=None, workers=1,
                 health=None):
    """A config with us-east (primary) in front of `primary` stubs and eu-west (redirect target)
    in front of `secondary`; probes are fast so that tests never wait long."""
    health = dict({"interval": "200ms", "timeout": "150ms", "rise": 1, "fall": 2}, **(health or {}))
    regions = [{"name": "us-east", "url": "http://us-east.example",
                "backends": [s.addr for s in primary], "health": dict(health),
                "failback_delay": "300ms"}]
    if secondary is not None:
        regions.append({"name": "eu-west", "url": "http://eu-west.example",
                        "backends": [s.addr for s in secondary], "health": dict(health)})
    cfg = {
        "workers": workers,
        "local_region": "us-east",
        "listen": [{"address": "127.0.0.1:0"}],
        "regions": regions,
        "routes": [{"name": "default", "match": {"host": "*", "path_prefix": "/"},
                    "primary": "us-east",
                    "failover": ["eu-west"] if secondary is not None else []}],
        "log": {"access": "stderr"},
    }
    if limits:
        cfg["limits"] = limits
    if timeouts:
        cfg["timeouts"] = timeouts
    if extra:
        cfg.update(extra)
    return cfg


class ProxyBasics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Stub("us-east")
        cls.b = Stub("us-east")
        # no probes: the backends' connection counts are the proxy's own (keep-alive test)
        cls.sst = Sidestep(proxy_config([cls.a, cls.b],
                                        health={"enabled": False, "initial": "up"}))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.a.stop()
        cls.b.stop()

    def test_get_is_forwarded_with_forwarding_fields(self):
        r = http(self.sst.port, "GET", "/path?q=1%2F2", headers={"X-Custom": "v"})
        self.assertEqual(r.status, 200)
        e = r.echo()
        self.assertEqual(e.method, "GET")
        self.assertEqual(e.target, "/path?q=1%2F2")
        self.assertEqual(e.header("X-Custom"), "v")
        self.assertEqual(e.header("X-Forwarded-For"), "127.0.0.1")
        self.assertEqual(e.header("X-Forwarded-Proto"), "http")
        self.assertEqual(e.header("X-Forwarded-Host"), "127.0.0.1:%d" % self.sst.port)
        self.assertEqual(e.header("Via"), "1.1 sidestep")
        self.assertEqual(r.header("Via"), "1.1 sidestep")

    def test_hop_by_hop_fields_are_removed(self):
        r = http(self.sst.port, "GET", "/", headers=[
            ("Connection", "X-Private, keep-alive"), ("X-Private", "secret"),
            ("Keep-Alive", "timeout=5"), ("TE", "trailers"), ("Upgrade", "websocket"),
            ("Proxy-Connection", "keep-alive"), ("Trailer", "X-T"), ("X-Public", "ok")])
        e = r.echo()
        for name in ("Connection", "X-Private", "Keep-Alive", "TE", "Upgrade",
                     "Proxy-Connection", "Trailer"):
            self.assertIsNone(e.header(name), name)
        self.assertEqual(e.header("X-Public"), "ok")

    def test_untrusted_forwarding_fields_are_replaced(self):
        r = http(self.sst.port, "GET", "/", headers=[
            ("X-Forwarded-For", "6.6.6.6"), ("Forwarded", "for=6.6.6.6"),
            ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil"), ("Via", "1.0 other")])
        e = r.echo()
        self.assertEqual(e.header("X-Forwarded-For"), "127.0.0.1")
        self.assertIsNone(e.header("Forwarded"))
        self.assertEqual(e.header("X-Forwarded-Proto"), "http")
        self.assertEqual(e.header("X-Forwarded-Host"), "127.0.0.1:%d" % self.sst.port)
        self.assertEqual(e.header("Via"), "1.0 other, 1.1 sidestep")

    def test_absolute_form_goes_upstream_in_origin_form(self):
        r = http(self.sst.port, "GET", "http://api.example:8080/a/b?c=%0D%0A",
                 headers={"Host": "ignored.example"})
        e = r.echo()
        self.assertEqual(e.target, "/a/b?c=%0D%0A")
        self.assertEqual(e.header("Host"), "api.example:8080")

    def test_keep_alive_reuses_client_and_backend_connections(self):
        before = self.a.stats()["connections"] + self.b.stats()["connections"]
        with Conn(self.sst.port) as c:
            for i in range(6):
                c.request("GET", "/ka/%d" % i)
                r = c.recv_response()
                self.assertEqual(r.status, 200)
                self.assertEqual(r.echo().target, "/ka/%d" % i)
        after = self.a.stats()["connections"] + self.b.stats()["connections"]
        # round-robin over two backends: at most one new pooled connection to each
        self.assertLessEqual(after - before, 2)

    def test_round_robin_over_backends(self):
        seen = set()
        with Conn(self.sst.port) as c:
            for _ in range(4):
                c.request("GET", "/rr")
                seen.add(c.recv_response().echo().port)
        self.assertEqual(seen, {self.a.port, self.b.port})

    def test_pipelined_requests_are_answered_in_order(self):
        with Conn(self.sst.port) as c:
            data = (sst.request_bytes("GET", "/p1", host="x") +
                    sst.request_bytes("POST", "/p2", body=b"hello", host="x") +
                    sst.request_bytes("GET", "/p3", headers={"X-Stub-Delay": "50"}, host="x") +
                    sst.request_bytes("GET", "/p4", host="x"))
            c.send(data)
            targets = [c.recv_response().echo().target for _ in range(4)]
        self.assertEqual(targets, ["/p1", "/p2", "/p3", "/p4"])

    def test_chunked_request_body_is_streamed(self):
        pieces = [b"a" * 1000, b"b" * 70000, b"c"]
        body = b"".join(pieces)
        with Conn(self.sst.port) as c:
            c.request("POST", "/up", headers={"Transfer-Encoding": "chunked"},
                      body=sst.chunked(pieces, trailers=[("X-Trailer", "t")]))
            r = c.recv_response()
        e = r.echo()
        self.assertEqual(e.header("Transfer-Encoding"), "chunked")
        self.assertEqual(e.body_bytes, len(body))
        self.assertEqual(e.body_sha256, sst.sha256(body))
        self.assertEqual(e.trailers, [])  # trailers are never forwarded

    def test_chunked_response_to_http11_and_http10(self):
        r = http(self.sst.port, "GET", "/", headers={"X-Stub-Chunked": "1",
                                                     "X-Stub-Size": "100000"})
        self.assertEqual(r.framing, "chunked")
        self.assertEqual(r.body, sst.pattern(100000))
        with Conn(self.sst.port) as c:
            c.request("GET", "/", headers={"X-Stub-Chunked": "1", "X-Stub-Size": "5000"},
                      version="HTTP/1.0")
            r = c.recv_response()
            self.assertEqual(r.framing, "close")
            self.assertEqual(r.body, sst.pattern(5000))

    def test_close_delimited_response_is_rechunked(self):
        r = http(self.sst.port, "GET", "/", headers={"X-Stub-No-Length": "1",
                                                     "X-Stub-Size": "3000"})
        self.assertEqual(r.framing, "chunked")
        self.assertEqual(r.body, sst.pattern(3000))

    def test_expect_100_continue(self):
        body = b"x" * 5000
        with Conn(self.sst.port) as c:
            c.send(sst.request_bytes("POST", "/expect", headers={
                "Expect": "100-continue", "Content-Length": str(len(body))}, host="x"))
            interim = c.recv_response(skip_interim=False, head_only=True)
            self.assertEqual(interim.status, 100)
            c.send(body)
            r = c.recv_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo().body_sha256, sst.sha256(body))
        self.assertIsNone(r.echo().header("Expect"))

    def test_head_204_304_have_no_body(self):
        with Conn(self.sst.port) as c:
            c.request("HEAD", "/h")
            r = c.recv_response(method="HEAD")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b"")
            self.assertIsNotNone(r.header("Content-Length"))
            c.request("GET", "/n", headers={"X-Stub-Status": "204"})
            r = c.recv_response()
            self.assertEqual((r.status, r.body), (204, b""))
            c.request("GET", "/n", headers={"X-Stub-Status": "304"})
            r = c.recv_response()
            self.assertEqual((r.status, r.body), (304, b""))
            c.request("GET", "/after")  # the connection is still in sync
            self.assertEqual(c.recv_response().echo().target, "/after")

    def test_connection_close_from_client(self):
        with Conn(self.sst.port) as c:
            c.request("GET", "/", headers={"Connection": "close"})
            r = c.recv_response()
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed())

    def test_http10_keep_alive(self):
        with Conn(self.sst.port) as c:
            c.request("GET", "/1", headers={"Connection": "keep-alive"}, version="HTTP/1.0")
            r = c.recv_response()
            self.assertEqual(r.header("Connection"), "keep-alive")
            c.request("GET", "/2", version="HTTP/1.0")
            r = c.recv_response()
            self.assertEqual(r.echo().target, "/2")
            self.assertTrue(c.closed())

    def test_backend_connection_close_keeps_the_client(self):
        with Conn(self.sst.port) as c:
            c.request("GET", "/bc", headers={"X-Stub-Header": "Connection: close"})
            self.assertEqual(c.recv_response().status, 200)
            c.request("GET", "/bc2")
            self.assertEqual(c.recv_response().echo().target, "/bc2")

    def test_large_bodies_both_ways(self):
        size = 64 * 1024 * 1024
        block = sst.pattern(1 << 20)
        import hashlib
        h = hashlib.sha256()
        with Conn(self.sst.port, timeout=60) as c:
            c.send(sst.request_bytes("PUT", "/big", headers={"Content-Length": str(size)},
                                     host="x"))
            for _ in range(size // len(block)):
                c.send(block)
                h.update(block)
            r = c.recv_response(timeout=60)
            self.assertEqual(r.echo().body_sha256, h.hexdigest())
            self.assertEqual(r.echo().body_bytes, size)
            c.request("GET", "/big", headers={"X-Stub-Size": str(size)})
            r = c.recv_response(timeout=60)
            self.assertEqual(len(r.body), size)
            self.assertEqual(sst.sha256(r.body), sst.sha256(sst.pattern(size)))

    def test_bad_request_does_not_affect_other_clients(self):
        with Conn(self.sst.port) as good:
            good.request("GET", "/slow", headers={"X-Stub-Delay": "200"})
            out = raw(self.sst.port, b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n")
            self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
            self.assertEqual(good.recv_response().echo().target, "/slow")

    def test_access_log_line(self):
        http(self.sst.port, "GET", "/logged?x=1")
        self.sst.wait_stderr('"GET /logged?x=1 HTTP/1.1" 200')
        line = [l for l in self.sst.stderr_text().splitlines() if "/logged?x=1" in l][0]
        for field in ("127.0.0.1", "in=", "out=", "dur=", "route=default", "decision=proxy",
                      "region=us-east", "backend=127.0.0.1:"):
            self.assertIn(field, line)


class Limits(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Stub("us-east")
        cls.sst = Sidestep(proxy_config([cls.a], limits={
            "request_line": "1k", "header_field": "1k", "header_bytes": "4k", "headers": 20,
            "body": "10k"}))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.a.stop()

    def expect(self, data, status):
        out = raw(self.sst.port, data)
        self.assertTrue(out.startswith(b"HTTP/1.1 %d " % status), out[:200])
        self.assertIn(b"Connection: close", out)
        return out

    def test_request_line_414(self):
        self.expect(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414)

    def test_header_field_431(self):
        self.expect(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 2000 + b"\r\n\r\n", 431)

    def test_head_431(self):
        fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 500) for i in range(10))
        self.expect(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", 431)

    def test_field_count_431(self):
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(30))
        self.expect(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", 431)

    def test_body_413_before_reading(self):
        before = self.a.stats()["requests"]
        self.expect(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 20000\r\n\r\n", 413)
        self.assertEqual(self.a.stats()["requests"], before)

    def test_chunked_body_413_at_the_crossing(self):
        with Conn(self.sst.port) as c:
            c.send(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            c.send(b"2000\r\n" + b"a" * 0x2000 + b"\r\n")
            c.send(b"2000\r\n" + b"a" * 0x2000 + b"\r\n")
            out = c.recv_all(timeout=5)
        self.assertIn(b"HTTP/1.1 413 ", out)

    def test_body_within_limit(self):
        r = http(self.sst.port, "POST", "/", body=b"z" * 10000)
        self.assertEqual(r.status, 200)


class Timeouts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Stub("us-east")
        cls.sst = Sidestep(proxy_config([cls.a], timeouts={
            "request_head": "600ms", "idle": "500ms", "body": "500ms",
            "upstream_response": "500ms", "connect": "300ms", "linger": "200ms"}))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.a.stop()

    def test_slow_head_gets_408_at_a_total_deadline(self):
        with Conn(self.sst.port) as c:
            start = time.monotonic()
            c.send(b"GET / HTTP/1.1\r\n")
            try:
                for _ in range(20):  # a trickle that an inactivity timer would never stop
                    time.sleep(0.1)
                    c.send(b"X: y\r\n")
            except OSError:
                pass
            out = c.recv_all(timeout=3)
            elapsed = time.monotonic() - start
        self.assertTrue(out.startswith(b"HTTP/1.1 408 "), out[:100])
        self.assertLess(elapsed, scaled(1.5))

    def test_silent_connection_is_closed_without_an_answer(self):
        with Conn(self.sst.port) as c:
            self.assertTrue(c.closed(timeout=3))

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

    def test_upstream_response_timeout_504(self):
        r = http(self.sst.port, "GET", "/", headers={"X-Stub-Fail": "stall"})
        self.assertEqual(r.status, 504)

    def test_connect_timeout_504(self):
        # a listener whose accept queue is full: the kernel drops further SYNs
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        port = lsock.getsockname()[1]
        fillers = []
        try:
            for _ in range(3):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                fillers.append(s)
            time.sleep(0.1)
            with Sidestep(self._blackhole_config(port)) as s:
                start = time.monotonic()
                r = http(s.port, "GET", "/")
                self.assertIn(r.status, (502, 503, 504))
                self.assertEqual(r.status, 504)
                self.assertLess(time.monotonic() - start, scaled(2))
        finally:
            for s in fillers:
                s.close()
            lsock.close()

    @staticmethod
    def _blackhole_config(port):
        return {
            "workers": 1,
            "listen": [{"address": "127.0.0.1:0"}],
            "regions": [{"name": "us-east", "url": "http://us-east.example",
                         "backends": ["127.0.0.1:%d" % port],
                         "health": {"enabled": False, "initial": "up"}}],
            "timeouts": {"connect": "300ms"},
            "log": {"access": "stderr"},
        }


class BackendFailures(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.a = Stub("us-east")
        # passive ejection off here: each case stands alone (test_failover covers ejection)
        cls.sst = Sidestep(proxy_config([cls.a], health={"passive_fall": 0,
                                                         "passive_fall_refused": 0}))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.a.stop()

    def test_close_mid_body_aborts_the_client(self):
        with Conn(self.sst.port) as c:
            c.request("GET", "/", headers={"X-Stub-Fail": "close-mid-body",
                                           "X-Stub-Size": "100000"})
            head = c.recv_response(head_only=True)
            self.assertEqual(head.status, 200)
            data = c.recv_all(timeout=3)
        self.assertLess(len(data), 100000)

    def test_chunked_close_mid_body_has_no_final_chunk(self):
        with Conn(self.sst.port) as c:
            c.request("GET", "/", headers={"X-Stub-Fail": "close-mid-body",
                                           "X-Stub-Chunked": "1", "X-Stub-Size": "100000"})
            with self.assertRaises((sst.ProtocolError, TimeoutError)):
                c.recv_response(timeout=3)

    def test_garbage_is_502(self):
        for mode in ("garbage", "bad-status", "dup-cl", "cl-te", "big-header", "many-headers"):
            r = http(self.sst.port, "GET", "/", headers={"X-Stub-Fail": mode})
            self.assertEqual(r.status, 502, mode)

    def test_bad_chunk_after_the_head_aborts_the_client(self):
        with Conn(self.sst.port) as c:
            c.request("GET", "/", headers={"X-Stub-Fail": "bad-chunk"})
            with self.assertRaises((sst.ProtocolError, TimeoutError)):
                c.recv_response(timeout=3)
            self.assertEqual(c.close_kind, "reset")

    def test_1xx_flood_is_502(self):
        r = http(self.sst.port, "GET", "/", headers={"X-Stub-Fail": "1xx-flood"})
        self.assertEqual(r.status, 502)

    def test_reset_before_response_is_502_for_post(self):
        r = http(self.sst.port, "POST", "/", body=b"abc", headers={"X-Stub-Fail": "reset"})
        self.assertEqual(r.status, 502)


if __name__ == "__main__":
    unittest.main(verbosity=2)
