"""Proxying HTTP/1.1 to the primary region's backends, over real sockets: forwarding fields,
keep-alive on both sides, round-robin, pipelining, chunked both ways, 100-continue, large
streamed bodies checked by hash, HEAD/204/304, Connection: close both ways, the access log line,
and isolation between clients.

Elsewhere, one home each: head limits, malformed heads and forwarded fields in
test_hardening_head.py; body framing and limits.body in test_hardening_framing.py; client
timeouts in test_hardening_slow.py; backend timeouts and faults in test_hardening_backend.py.
"""

import unittest

import sst
from sst import Conn, Sidestep, Stub, http, raw


def proxy_config(primary, health=None):
    """A config with us-east (primary) in front of `primary` stubs; probes are fast so that
    tests never wait long."""
    health = dict({"interval": "200ms", "timeout": "150ms", "rise": 1, "fall": 2}, **(health or {}))
    return {
        "workers": 1,
        "local_region": "us-east",
        "listen": [{"address": "127.0.0.1:0"}],
        "regions": [{"name": "us-east", "url": "http://us-east.example",
                     "backends": [s.addr for s in primary], "health": health,
                     "failback_delay": "300ms"}],
        "routes": [{"name": "default", "match": {"host": "*", "path_prefix": "/"},
                    "primary": "us-east", "failover": []}],
        "log": {"access": "stderr"},
    }


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


if __name__ == "__main__":
    unittest.main(verbosity=2)
