"""The scripted origin (sidestep-stub) and the test harness itself, over loopback sockets."""

import hashlib
import os
import random
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import sst  # noqa: E402


class StubCase(unittest.TestCase):
    """One stub per test, stopped at the end; the stub must exit 0 (clean loop close)."""

    stub_args = []

    def setUp(self):
        self.stub = sst.Stub(name="us-east", args=self.stub_args)

    def tearDown(self):
        if self.stub.running():
            code = self.stub.stop()
            self.assertEqual(code, 0, "stub exit code; stderr:\n" + self.stub.stderr_text())

    def conn(self, timeout=5.0):
        c = sst.Conn(self.stub.port, timeout=timeout)
        self.addCleanup(c.close)
        return c

    def get(self, target="/", headers=None, method="GET", body=None):
        return sst.http(self.stub.port, method, target, headers, body)


class EchoTests(StubCase):
    def test_echo_lists_exactly_what_was_received(self):
        c = self.conn()
        c.send(b"GET /a/b?x=1&y=%20 HTTP/1.1\r\nHost: example.test\r\nX-One: 1\r\n"
               b"x-lower: v a l\r\nX-One: 2\r\nX-Empty:\r\n\r\n")
        r = c.recv_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.reason, "OK")
        self.assertEqual(r.header("Content-Type"), "text/plain")
        self.assertEqual(r.header("X-Stub-Origin"), "us-east")
        self.assertEqual(int(r.header("Content-Length")), len(r.body))
        self.assertEqual(r.text.splitlines(), [
            "origin us-east %d" % self.stub.port,
            "method GET",
            "target /a/b?x=1&y=%20",
            "http 1.1",
            "header Host: example.test",
            "header X-One: 1",
            "header x-lower: v a l",
            "header X-One: 2",
            "header X-Empty: ",
            "body-bytes 0",
            "body-sha256 " + hashlib.sha256(b"").hexdigest(),
        ])
        e = r.echo()
        self.assertEqual(e.header_all("x-one"), ["1", "2"])
        self.assertEqual(e.port, self.stub.port)

    def test_content_length_body_is_counted_and_hashed(self):
        body = os.urandom(300000)
        r = self.get("/up", method="PUT", body=body)
        e = r.echo()
        self.assertEqual((e.method, e.body_bytes, e.body_sha256), ("PUT", len(body),
                                                                   sst.sha256(body)))

    def test_trailers_are_listed_apart_from_headers(self):
        c = self.conn()
        c.request("POST", "/t", [("Transfer-Encoding", "chunked")])
        c.send(sst.chunked([b"abc", b"de"], trailers=[("X-Sum", "7")]))
        e = c.recv_response().echo()
        self.assertEqual(e.body_bytes, 5)
        self.assertEqual(e.body_sha256, sst.sha256(b"abcde"))
        self.assertEqual(e.trailers, [("X-Sum", "7")])
        self.assertIsNone(e.header("X-Sum"))

    def test_no_hash_reports_only_the_length(self):
        with sst.Stub(args=["--no-hash"]) as s:
            e = sst.http(s.port, "POST", "/", body=b"abc").echo()
            self.assertEqual(e.body_bytes, 3)
            self.assertIsNone(e.body_sha256)
            self.assertEqual(s.stop(), 0)

    def test_head_has_the_get_head_without_body(self):
        c = self.conn()
        c.request("GET", "/same")
        get = c.recv_response()
        c.request("HEAD", "/same")
        head = c.recv_response(method="HEAD")
        self.assertEqual(head.status, 200)
        self.assertEqual(head.body, b"")
        # The listing HEAD would have carried differs only in "method HEAD" (one byte longer).
        self.assertEqual(int(head.header("Content-Length")), int(get.header("Content-Length")) + 1)
        # Same connection still in sync: nothing was sent after the HEAD head.
        c.request("GET", "/after")
        self.assertEqual(c.recv_response().echo().target, "/after")

    def test_http10_closes_unless_keep_alive(self):
        c = self.conn()
        c.request("GET", "/old", version="HTTP/1.0")
        r = c.recv_response()
        self.assertEqual(r.header("Connection"), "close")
        self.assertEqual(r.echo().http, "1.0")
        self.assertTrue(c.closed())
        c2 = self.conn()
        c2.request("GET", "/ka", [("Connection", "keep-alive")], version="HTTP/1.0")
        self.assertEqual(c2.recv_response().header("Connection"), "keep-alive")
        c2.request("GET", "/ka2", [("Connection", "keep-alive")], version="HTTP/1.0")
        self.assertEqual(c2.recv_response().echo().target, "/ka2")

    def test_http10_never_gets_chunked(self):
        c = self.conn()
        c.request("GET", "/", [("X-Stub-Chunked", "1")], version="HTTP/1.0")
        r = c.recv_response()
        self.assertIsNone(r.header("Transfer-Encoding"))
        self.assertEqual(r.framing, "close")
        self.assertEqual(r.echo().target, "/")

    def test_connection_close_is_honoured(self):
        c = self.conn()
        c.send(sst.request_bytes("GET", "/1", [("Connection", "close")], host="h") +
               sst.request_bytes("GET", "/2", host="h"))
        r = c.recv_response()
        self.assertEqual(r.header("Connection"), "close")
        self.assertEqual(r.echo().target, "/1")
        self.assertTrue(c.closed(), "the pipelined second request must not be answered")

    def test_connect_and_upgrade_get_an_ordinary_answer(self):
        c = self.conn()
        c.send(b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
        self.assertEqual(c.recv_response().echo().target, "/ws")
        c.send(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n")
        self.assertEqual(c.recv_response().echo().target, "/next")


class KeepAliveTests(StubCase):
    def test_many_requests_on_one_connection(self):
        before = self.stub.stats()["connections"]
        c = self.conn()
        for i in range(200):
            c.request("GET", "/k%d" % i)
            self.assertEqual(c.recv_response().echo().target, "/k%d" % i)
        self.assertEqual(self.stub.stats()["connections"], before + 2)  # c and this stats call

    def test_pipelined_requests_are_answered_in_order(self):
        reqs = []
        expect = []
        for i in range(40):
            target = "/p%d" % i
            if i % 5 == 1:
                reqs.append(sst.request_bytes("POST", target, [("X-Stub-Delay", "30")],
                                              b"x" * i, host="h"))
                expect.append(("POST", target, i))
            elif i % 5 == 2:
                reqs.append(sst.request_bytes("HEAD", target, host="h"))
                expect.append(("HEAD", target, None))
            elif i % 5 == 3:
                reqs.append(sst.request_bytes("GET", target, [("X-Stub-Size", "70000")],
                                              host="h"))
                expect.append(("SIZE", target, 70000))
            else:
                reqs.append(sst.request_bytes("GET", target, host="h"))
                expect.append(("GET", target, 0))
        c = self.conn()
        c.send(b"".join(reqs))
        for kind, target, n in expect:
            r = c.recv_response(method="HEAD" if kind == "HEAD" else "GET")
            self.assertEqual(r.status, 200)
            if kind == "HEAD":
                self.assertEqual(r.body, b"")
            elif kind == "SIZE":
                self.assertEqual(r.body, sst.pattern(n))
            else:
                e = r.echo()
                self.assertEqual((e.method, e.target, e.body_bytes), (kind, target, n))

    def test_pipelining_a_large_batch_in_one_write(self):
        c = self.conn()
        c.send(b"".join(sst.request_bytes("GET", "/b%d" % i, host="h") for i in range(1000)))
        for i in range(1000):
            self.assertEqual(c.recv_response().echo().target, "/b%d" % i)

    def test_client_half_close_still_gets_the_answers(self):
        c = self.conn()
        c.send(sst.request_bytes("GET", "/1", host="h") +
               sst.request_bytes("GET", "/2", [("X-Stub-Delay", "50")], host="h"))
        c.shutdown_write()
        self.assertEqual(c.recv_response().echo().target, "/1")
        self.assertEqual(c.recv_response().echo().target, "/2")
        self.assertTrue(c.closed())


class BodyTests(StubCase):
    def test_64mib_chunked_body_streams_and_hashes(self):
        total = 64 * 1024 * 1024
        rnd = random.Random(7)
        block = bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * 16  # 1 MiB
        h = hashlib.sha256()
        c = self.conn(timeout=120)
        c.request("POST", "/big", [("Transfer-Encoding", "chunked")])
        sent = 0
        sizes = [1, 7, 4096, 65535, 65536, 300001, 1 << 20]
        i = 0
        while sent < total:
            n = min(sizes[i % len(sizes)], total - sent)
            off = (sent * 31) % (len(block) - n + 1)
            piece = block[off:off + n]
            c.send(b"%x;ext=1\r\n" % n + piece + b"\r\n")
            h.update(piece)
            sent += n
            i += 1
        c.send(b"0\r\n\r\n")
        e = c.recv_response(timeout=120).echo()
        self.assertEqual(e.body_bytes, total)
        self.assertEqual(e.body_sha256, h.hexdigest())

    def test_expect_100_continue(self):
        c = self.conn()
        c.request("POST", "/e", [("Expect", "100-continue"), ("Content-Length", "5")])
        interim = c.recv_response(skip_interim=False)
        self.assertEqual((interim.status, interim.reason, interim.body), (100, "Continue", b""))
        c.send(b"hello")
        r = c.recv_response()
        self.assertEqual(r.interim, [])
        self.assertEqual(r.echo().body_sha256, sst.sha256(b"hello"))

    def test_expect_without_body_sends_no_100(self):
        c = self.conn()
        c.request("GET", "/e", [("Expect", "100-continue")])
        r = c.recv_response()
        self.assertEqual((r.status, r.interim), (200, []))

    def test_no_continue_mode_ignores_expect(self):
        c = self.conn()
        c.request("POST", "/e", [("Expect", "100-continue"), ("Content-Length", "5"),
                                 ("X-Stub-Fail", "no-continue")])
        self.assertEqual(c.recv_some(0.3), b"")
        c.send(b"hello")
        r = c.recv_response()
        self.assertEqual((r.status, r.interim), (200, []))
        self.assertEqual(r.echo().body_bytes, 5)

    def test_echo_body_with_content_length(self):
        body = os.urandom(5 * 1024 * 1024)
        c = self.conn(timeout=60)
        c.request("PUT", "/x", [("X-Stub-Echo-Body", "1"), ("Content-Length", str(len(body)))])
        # Send from a thread: the echo streams back while the body is still going out.
        t = threading.Thread(target=c.send, args=(body,))
        t.start()
        r = c.recv_response()
        t.join(timeout=sst.scaled(30))
        self.assertEqual(r.header("Content-Length"), str(len(body)))
        self.assertEqual(r.header("Content-Type"), "application/octet-stream")
        self.assertEqual(r.body, body)

    def test_echo_body_chunked_answers_chunked(self):
        c = self.conn()
        c.request("POST", "/x", [("X-Stub-Echo-Body", "1"), ("Transfer-Encoding", "chunked")])
        c.send(sst.chunked([b"abc", b"", b"defg"]))
        r = c.recv_response()
        self.assertEqual((r.framing, r.body), ("chunked", b"abcdefg"))
        c.request("GET", "/after")
        self.assertEqual(c.recv_response().echo().target, "/after")

    def test_echo_body_streams_before_the_body_ends(self):
        c = self.conn()
        c.request("POST", "/x", [("X-Stub-Echo-Body", "1"), ("Transfer-Encoding", "chunked")])
        c.send(b"5\r\nfirst\r\n")
        head = c.recv_response(head_only=True)
        self.assertEqual(head.header("Transfer-Encoding"), "chunked")
        self.assertEqual(c.recv_body(10), b"5\r\nfirst\r\n")
        c.send(b"0\r\n\r\n")
        self.assertEqual(c.recv_body(5), b"0\r\n\r\n")

    def test_delayed_echo_bodies_pipelined(self):
        # The delay pauses the parser at the head, with the body already in the same read.
        c = self.conn()
        c.send(sst.request_bytes("POST", "/1", [("X-Stub-Echo-Body", "1"), ("X-Stub-Delay", "80")],
                                 b"first body", host="h") +
               sst.request_bytes("POST", "/2", [("X-Stub-Echo-Body", "1"), ("X-Stub-Delay", "20")],
                                 b"second", host="h") +
               sst.request_bytes("GET", "/3", host="h"))
        self.assertEqual(c.recv_response().body, b"first body")
        self.assertEqual(c.recv_response().body, b"second")
        self.assertEqual(c.recv_response().echo().target, "/3")

    def test_bad_chunk_in_an_echoed_body_truncates_and_closes(self):
        c = self.conn()
        c.request("POST", "/x", [("X-Stub-Echo-Body", "1"), ("Transfer-Encoding", "chunked")])
        c.send(b"3\r\nabc\r\nzz\r\n")
        with self.assertRaises(sst.ProtocolError):
            c.recv_response()
        self.assertEqual(c.close_kind, "fin")


class ScriptingTests(StubCase):
    def test_status(self):
        r = self.get(headers=[("X-Stub-Status", "503")])
        self.assertEqual((r.status, r.reason), (503, "Service Unavailable"))
        self.assertEqual(r.echo().header("X-Stub-Status"), "503")
        for status, reason in ((201, "Created"), (299, "Success"), (418, "Client Error"),
                               (599, "Server Error")):
            r = self.get(headers=[("X-Stub-Status", str(status))])
            self.assertEqual((r.status, r.reason), (status, reason))

    def test_no_content_status_has_no_body_or_length(self):
        c = self.conn()
        c.request("GET", "/", [("X-Stub-Status", "204")])
        r = c.recv_response()
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertIsNone(r.header("Content-Length"))
        self.assertIsNone(r.header("Transfer-Encoding"))
        c.request("GET", "/after")
        self.assertEqual(c.recv_response().echo().target, "/after")

    def test_size_is_the_exact_pattern(self):
        for n in (0, 1, 16, 17, 4096, 65536, 65537, 100000):
            r = self.get(headers=[("X-Stub-Size", str(n))])
            self.assertEqual(r.header("Content-Length"), str(n))
            self.assertEqual(r.body, sst.pattern(n), n)

    def test_large_size_streams(self):
        n = 40 * 1024 * 1024 + 3
        c = self.conn(timeout=60)
        c.request("GET", "/", [("X-Stub-Size", str(n))])
        r = c.recv_response()
        self.assertEqual(len(r.body), n)
        self.assertEqual(sst.sha256(r.body), sst.sha256(sst.pattern(n)))

    def test_chunked_answers(self):
        r = self.get(headers=[("X-Stub-Chunked", "1"), ("X-Stub-Size", "200000")])
        self.assertEqual(r.framing, "chunked")
        self.assertIsNone(r.header("Content-Length"))
        self.assertEqual(r.body, sst.pattern(200000))
        r = self.get("/echo", headers=[("X-Stub-Chunked", "yes")])
        self.assertEqual(r.framing, "chunked")
        self.assertEqual(r.echo().target, "/echo")

    def test_delay_holds_the_head(self):
        c = self.conn()
        t0 = time.monotonic()
        c.request("GET", "/", [("X-Stub-Delay", "300")])
        r = c.recv_response()
        self.assertGreaterEqual(time.monotonic() - t0, 0.29)
        self.assertEqual(r.status, 200)

    def test_no_length_is_close_delimited(self):
        c = self.conn()
        c.request("GET", "/", [("X-Stub-No-Length", "1"), ("X-Stub-Size", "1000")])
        r = c.recv_response()
        self.assertEqual((r.framing, r.header("Connection")), ("close", "close"))
        self.assertIsNone(r.header("Content-Length"))
        self.assertEqual(r.body, sst.pattern(1000))
        self.assertEqual(c.close_kind, "fin")

    def test_added_headers_keep_their_order(self):
        r = self.get(headers=[("X-Stub-Header", "Cache-Control: no-store"),
                              ("X-Stub-Header", "Set-Cookie: a=1"),
                              ("X-Stub-Header", "Set-Cookie: b=2"),
                              ("X-Stub-Header", "X-Empty:")])
        self.assertEqual(r.header("Cache-Control"), "no-store")
        self.assertEqual(r.header_all("Set-Cookie"), ["a=1", "b=2"])
        self.assertEqual(r.header("X-Empty"), "")

    def test_scripting_errors_are_400_and_keep_the_connection(self):
        cases = [
            ("X-Stub-Status", "abc", "bad X-Stub-Status"),
            ("X-Stub-Status", "700", "bad X-Stub-Status"),
            ("X-Stub-Status", "101", "bad X-Stub-Status"),
            ("X-Stub-Size", "-1", "bad X-Stub-Size"),
            ("X-Stub-Size", "99999999999999999999", "bad X-Stub-Size"),
            ("X-Stub-Delay", "1.5", "bad X-Stub-Delay"),
            ("X-Stub-Chunked", "maybe", "bad X-Stub-Chunked"),
            ("X-Stub-Fail", "explode", "unknown X-Stub-Fail"),
            ("X-Stub-Header", "no colon", "bad X-Stub-Header"),
            ("X-Stub-Header", "bad name: v", "bad X-Stub-Header"),
            ("X-Stub-Bogus", "1", "unknown X-Stub-* header"),
        ]
        c = self.conn()
        for name, value, text in cases:
            c.request("POST", "/", [(name, value)], body=b"body")
            r = c.recv_response()
            self.assertEqual(r.status, 400, (name, value))
            self.assertIn(text, r.text)
            self.assertIsNone(r.header("Connection"))

    def test_fail_none_overrides_nothing_by_default(self):
        r = self.get(headers=[("X-Stub-Fail", "none")])
        self.assertEqual(r.status, 200)


class BadInputTests(StubCase):
    def test_malformed_request_gets_400_and_close(self):
        for data in (b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
                     b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                     b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                     b"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n"):
            c = self.conn()
            c.send(data)
            r = c.recv_response()
            self.assertEqual(r.status, 400, data)
            self.assertEqual(r.header("Connection"), "close")
            self.assertIn("bad request", r.text)
            self.assertTrue(c.closed())

    def test_oversized_head_gets_431(self):
        c = self.conn()
        c.send(b"GET / HTTP/1.1\r\nX-Huge: " + b"a" * (300 * 1024) + b"\r\n\r\n")
        r = c.recv_response()
        self.assertEqual(r.status, 431)
        self.assertTrue(c.closed())

    def test_oversized_target_gets_414(self):
        c = self.conn()
        c.send(b"GET /" + b"a" * (300 * 1024) + b" HTTP/1.1\r\n\r\n")
        self.assertEqual(c.recv_response().status, 414)

    def test_unsupported_version(self):
        r = sst.http(self.stub.port, "GET", "/", version="HTTP/2.0")
        self.assertIn(r.status, (400, 505))

    def test_random_bytes_never_kill_the_stub(self):
        rnd = random.Random(1234)
        seeds = [b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", b"POST / HTTP/1.1\r\nTransfer-Encoding:"
                 b" chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"]
        for i in range(300):
            base = bytearray(rnd.choice(seeds) * rnd.randint(1, 3))
            for _ in range(rnd.randint(1, 8)):
                pos = rnd.randrange(len(base))
                base[pos] = rnd.randrange(256)
            if i % 3 == 0:
                base = bytearray(os.urandom(rnd.randint(1, 2000)))
            sst.raw(self.stub.port, bytes(base), timeout=0.05)
        self.assertEqual(self.get("/alive").echo().target, "/alive")


class FailModeTests(StubCase):
    def fail(self, mode, headers=(), method="GET", body=None):
        c = self.conn()
        c.request(method, "/f", [("X-Stub-Fail", mode)] + list(headers), body)
        return c

    def test_reset(self):
        c = self.fail("reset")
        self.assertEqual(c.recv_all(), b"")
        self.assertEqual(c.close_kind, "reset")

    def test_close(self):
        c = self.fail("close", method="POST", body=b"x" * 100000)
        self.assertEqual(c.recv_all(), b"")
        self.assertEqual(c.close_kind, "fin")

    def test_close_mid_body(self):
        c = self.fail("close-mid-body", [("X-Stub-Size", "100000")])
        head = c.recv_response(head_only=True)
        self.assertEqual(head.header("Content-Length"), "100000")
        self.assertEqual(c.recv_all(), sst.pattern(50000))
        self.assertEqual(c.close_kind, "fin")

    def test_close_mid_body_of_the_echo(self):
        c = self.fail("close-mid-body")
        head = c.recv_response(head_only=True)
        n = int(head.header("Content-Length"))
        self.assertEqual(len(c.recv_all()), n // 2)

    def test_reset_mid_body(self):
        c = self.fail("reset-mid-body", [("X-Stub-Size", "100000")])
        head = c.recv_response(head_only=True)
        self.assertEqual(head.header("Content-Length"), "100000")
        self.assertEqual(c.recv_all(), sst.pattern(50000))
        self.assertEqual(c.close_kind, "reset")

    def test_truncated_body_is_a_protocol_error_for_the_parser(self):
        c = self.fail("close-mid-body", [("X-Stub-Size", "1000")])
        with self.assertRaises(sst.ProtocolError):
            c.recv_response()

    def test_stall(self):
        c = self.fail("stall")
        self.assertFalse(c.closed(timeout=0.5), "a stalled request must keep the socket open")
        self.assertGreaterEqual(self.stub.stats()["active"], 2)

    def test_stall_body(self):
        c = self.fail("stall-body", [("X-Stub-Size", "1000")])
        head = c.recv_response(head_only=True)
        self.assertEqual(head.header("Content-Length"), "1000")
        self.assertFalse(c.closed(timeout=0.5))

    def test_garbage(self):
        c = self.fail("garbage")
        self.assertEqual(c.recv_all(), b"HELLO\r\n\r\n")
        self.assertEqual(c.close_kind, "fin")

    def test_bad_status(self):
        c = self.fail("bad-status")
        with self.assertRaisesRegex(sst.ProtocolError, "bad status line"):
            c.recv_response()

    def test_dup_cl(self):
        c = self.fail("dup-cl")
        with self.assertRaisesRegex(sst.ProtocolError, "conflicting Content-Length"):
            c.recv_response()

    def test_cl_te(self):
        c = self.fail("cl-te")
        with self.assertRaisesRegex(sst.ProtocolError, "both Transfer-Encoding"):
            c.recv_response()

    def test_bad_chunk(self):
        c = self.fail("bad-chunk")
        with self.assertRaisesRegex(sst.ProtocolError, "bad chunk size"):
            c.recv_response()

    def test_big_header(self):
        c = self.fail("big-header")
        r = c.recv_response()
        self.assertEqual(len(r.header("X-Stub-Big")), 65536)
        self.assertEqual(r.echo().target, "/f")
        c.request("GET", "/again")
        self.assertEqual(c.recv_response().echo().target, "/again")

    def test_many_headers(self):
        r = self.fail("many-headers").recv_response()
        many = [k for k, _ in r.headers if k.startswith("X-Stub-Many-")]
        self.assertEqual(len(many), 500)

    def test_1xx_flood(self):
        r = self.fail("1xx-flood").recv_response()
        self.assertEqual(len(r.interim), 1000)
        self.assertTrue(all(i.status == 100 for i in r.interim))
        self.assertEqual(r.status, 200)

    def test_delay_then_reset(self):
        c = self.fail("reset", [("X-Stub-Delay", "200")])
        t0 = time.monotonic()
        self.assertEqual(c.recv_all(), b"")
        self.assertGreaterEqual(time.monotonic() - t0, 0.19)
        self.assertEqual(c.close_kind, "reset")

    def test_requests_are_counted_before_failing(self):
        before = self.stub.stats()["requests"]
        self.fail("reset").recv_all()
        self.fail("stall")
        self.stub.wait_requests(before + 2)


class DefaultsTests(unittest.TestCase):
    def test_command_line_defaults(self):
        with sst.Stub(args=["--status", "503", "--size", "10"]) as s:
            r = sst.http(s.port, "GET", "/")
            self.assertEqual((r.status, r.body), (503, b"0123456789"))
            r = sst.http(s.port, "GET", "/", [("X-Stub-Status", "201"), ("X-Stub-Size", "3")])
            self.assertEqual((r.status, r.body), (201, b"012"))
            self.assertEqual(sst.http(s.port, "GET", "/healthz").status, 200)
            self.assertEqual(s.stop(), 0)

    def test_prepared_default_answer_with_pipelining(self):
        with sst.Stub(args=["--size", "100"]) as s:
            c = sst.Conn(s.port)
            c.send(b"".join(sst.request_bytes("GET", "/%d" % i, host="h") for i in range(300)) +
                   sst.request_bytes("HEAD", "/h", host="h"))
            for _ in range(300):
                r = c.recv_response()
                self.assertEqual((r.status, r.body), (200, sst.pattern(100)))
                self.assertEqual(r.header("X-Stub-Origin"), "stub")
            r = c.recv_response(method="HEAD")
            self.assertEqual((r.header("Content-Length"), r.body), ("100", b""))
            c.close()
            self.assertEqual(s.stats()["requests"], 301)
            self.assertEqual(s.stop(), 0)

    def test_default_fail_spares_control_paths(self):
        with sst.Stub(args=["--fail", "reset"]) as s:
            with sst.Conn(s.port) as c:
                c.request("GET", "/")
                self.assertEqual(c.recv_all(), b"")
                self.assertEqual(c.close_kind, "reset")
            self.assertEqual(s.stats()["requests"], 1)
            r = sst.http(s.port, "GET", "/", [("X-Stub-Fail", "none")])
            self.assertEqual(r.status, 200)
            with sst.Conn(s.port) as c:  # a broken origin is broken for probes too
                c.request("GET", "/healthz")
                self.assertEqual(c.recv_all(), b"")
                self.assertEqual(c.close_kind, "reset")
            self.assertEqual(s.stats()["health"], 1)
            self.assertEqual(s.stop(), 0)

    def test_default_delay_and_chunked(self):
        with sst.Stub(args=["--delay", "150", "--chunked"]) as s:
            t0 = time.monotonic()
            r = sst.http(s.port, "GET", "/")
            self.assertGreaterEqual(time.monotonic() - t0, 0.14)
            self.assertEqual(r.framing, "chunked")
            t0 = time.monotonic()
            r = sst.http(s.port, "GET", "/healthz")
            self.assertGreaterEqual(time.monotonic() - t0, 0.14)
            self.assertEqual((r.status, r.body, r.framing), (200, b"ok\n", "length"))
            self.assertEqual(s.stop(), 0)

    def test_bad_arguments_exit_2(self):
        for args in (["--status", "99"], ["--size", "x"], ["--fail", "nope"], ["--bogus"],
                     ["--name", "bad name"]):
            with self.assertRaises(RuntimeError, msg=args):
                sst.Stub(args=args)

    def test_busy_port_fails_cleanly(self):
        with sst.Stub() as s:
            with self.assertRaisesRegex(RuntimeError, "address already in use"):
                sst.Stub(port=s.port)

    def test_workers_share_the_port(self):
        with sst.Stub(args=["--workers", "3", "--size", "5"]) as s:
            conns = [sst.Conn(s.port) for _ in range(24)]
            for i, c in enumerate(conns):
                c.request("GET", "/w%d" % i)
            for c in conns:
                self.assertEqual(c.recv_response().body, b"01234")
                c.close()
            self.assertEqual(s.stop(), 0)


class HealthAndStatsTests(StubCase):
    def test_healthz(self):
        r = self.get("/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok\n"))
        r = self.get("/healthz?probe=1")
        self.assertEqual(r.status, 200)

    def test_health_status_option_and_runtime_switch(self):
        with sst.Stub(args=["--health-status", "503"]) as s:
            r = sst.http(s.port, "GET", "/healthz")
            self.assertEqual((r.status, r.body), (503, b"unhealthy\n"))
            self.assertEqual(sst.http(s.port, "GET", "/").status, 200)
            s.set_health(200)
            self.assertEqual(sst.http(s.port, "GET", "/healthz").status, 200)
            self.assertEqual(sst.http(s.port, "GET", "/__stub/health/42").status, 400)
            self.assertEqual(s.stop(), 0)

    def test_stats_count_requests_apart_from_health(self):
        s0 = self.stub.stats()
        self.assertEqual(s0["requests"], 0)
        for _ in range(3):
            self.get("/x")
        self.get("/healthz")
        self.get("/healthz")
        s1 = self.stub.stats()
        self.assertEqual((s1["requests"], s1["health"]), (3, 2))
        self.assertEqual(s1["connections"], s0["connections"] + 6)
        self.assertEqual(s1["name"], "us-east")


class LifecycleTests(unittest.TestCase):
    def test_restart_on_the_same_port_after_kill(self):
        with sst.Stub(name="r") as s:
            port = s.port
            with sst.Conn(port) as c:
                c.request("GET", "/")
                c.recv_response()
            s.kill()
            self.assertTrue(sst.connect_refused(port))
            s.restart()
            self.assertEqual(s.port, port)
            self.assertEqual(sst.http(port, "GET", "/again").echo().target, "/again")
            s.restart()  # from a running stub too
            self.assertEqual(sst.http(port, "GET", "/3").status, 200)
            self.assertEqual(s.stop(), 0)

    def test_sigterm_with_open_connections_exits_0(self):
        s = sst.Stub()
        idle = sst.Conn(s.port)
        idle.request("GET", "/")
        idle.recv_response()
        stalled = sst.Conn(s.port)
        stalled.request("GET", "/", [("X-Stub-Fail", "stall")])
        busy = sst.Conn(s.port)
        busy.request("GET", "/", [("X-Stub-Size", str(1 << 30))])
        busy.recv_response(head_only=True)
        delayed = sst.Conn(s.port)
        delayed.request("GET", "/", [("X-Stub-Delay", "60000")])
        s.wait_requests(4)
        self.assertEqual(s.stop(), 0, s.stderr_text())
        for c in (idle, stalled, delayed):
            self.assertTrue(c.closed())
            c.close()
        busy.close()

    def test_sigint_exits_0(self):
        s = sst.Stub()
        s.proc.send_signal(signal.SIGINT)
        self.assertEqual(s.proc.wait(timeout=sst.scaled(10)), 0)
        self.assertEqual(s.stop(), 0)  # already gone: only collects and closes the pipes


class HarnessTests(unittest.TestCase):
    """The harness parsers and helpers themselves, on crafted bytes."""

    def parse(self, data, method="GET"):
        a, b = socket.socketpair()
        self.addCleanup(a.close)
        a.sendall(data)
        a.shutdown(socket.SHUT_WR)
        with sst.Conn.from_socket(b, timeout=2) as c:
            return c.recv_response(method=method)

    def test_parses_chunked_with_extensions_and_trailers(self):
        r = self.parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"3;a=b\r\nabc\r\n0\r\nX-T: 1\r\n\r\n")
        self.assertEqual((r.body, r.trailers, r.framing), (b"abc", [("X-T", "1")], "chunked"))

    def test_rejects_malformed_responses(self):
        bad = [
            b"HTTP/1.1 200\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n folded\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX : y\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
        ]
        for data in bad:
            with self.assertRaises(sst.ProtocolError, msg=data):
                self.parse(data)

    def test_close_delimited_and_head(self):
        r = self.parse(b"HTTP/1.0 200 OK\r\n\r\nuntil close")
        self.assertEqual((r.version, r.body, r.framing), ("1.0", b"until close", "close"))
        r = self.parse(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", method="HEAD")
        self.assertEqual(r.body, b"")

    def test_yaml_emitter(self):
        doc = {
            "listen": ["127.0.0.1:0"],
            "regions": [{"name": "us-east", "backends": ["127.0.0.1:1", "127.0.0.1:2"],
                         "health": {"interval": "100ms", "rise": 1}},
                        {"name": "eu", "backends": []}],
            "on": True, "nothing": None, "ratio": 0.5, "empty": {}, "quote": 'a "b"\n',
        }
        self.assertEqual(sst.to_yaml(doc), "\n".join([
            "listen:",
            '  - "127.0.0.1:0"',
            "regions:",
            '  - name: "us-east"',
            "    backends:",
            '      - "127.0.0.1:1"',
            '      - "127.0.0.1:2"',
            "    health:",
            '      interval: "100ms"',
            "      rise: 1",
            '  - name: "eu"',
            "    backends: []",
            '"on": true',
            "nothing: null",
            "ratio: 0.5",
            "empty: {}",
            'quote: "a \\"b\\"\\n"',
        ]) + "\n")

    def test_pattern_and_free_port(self):
        self.assertEqual(sst.pattern(20), b"0123456789abcdef0123")
        self.assertEqual(sst.pattern(4, offset=14), b"ef01")
        self.assertTrue(sst.connect_refused(sst.free_port()))

    def test_sidestep_class_against_a_fake_binary(self):
        """The real proxy is tested elsewhere; this checks the harness mechanics: config file,
        ready file, stderr capture, SIGHUP, SIGTERM exit code, cleanup."""
        fake = os.path.join(tempfile.mkdtemp(prefix="sst-fake-"), "fake_sidestep.py")
        self.addCleanup(lambda: os.path.exists(fake) and os.unlink(fake))
        with open(fake, "w") as f:
            f.write(FAKE_SIDESTEP)
        os.chmod(fake, os.stat(fake).st_mode | stat.S_IXUSR)
        config = {"listen": ["127.0.0.1:0"], "admin": {"listen": "127.0.0.1:0"}}
        with sst.Sidestep(config, binary=[sys.executable, fake]) as p:
            self.assertEqual(p.ready["pid"], p.pid)
            self.assertTrue(sst.port_open(p.port))
            self.assertIsNotNone(p.admin_port)
            with open(p.config_path) as f:
                self.assertEqual(f.read(), sst.to_yaml(config))
            p.wait_stderr("started with " + p.config_path)
            p.reload()
            p.wait_stderr("reloaded")
            self.assertEqual(p.stop(), 0)
            tmpdir = p.dir
        self.assertFalse(os.path.exists(tmpdir))

    def test_sidestep_class_reports_early_exit(self):
        with self.assertRaisesRegex(RuntimeError, "exited with 3"):
            sst.Sidestep("x: 1\n", binary=[sys.executable, "-c",
                                           "import sys; sys.stderr.write('boom'); sys.exit(3)"])


FAKE_SIDESTEP = r'''
import json, os, signal, socket, sys, time
args = sys.argv[1:]
config = args[args.index("-c") + 1]
ready = args[args.index("--ready-file") + 1]
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
    s.listen(8)
info = {"pid": os.getpid(), "listen": ["127.0.0.1:%d" % socks[0].getsockname()[1]],
        "admin": "127.0.0.1:%d" % socks[1].getsockname()[1]}
with open(ready + ".tmp", "w") as f:
    json.dump(info, f)
os.replace(ready + ".tmp", ready)
signal.signal(signal.SIGHUP, lambda *a: (sys.stderr.write("reloaded\n"), sys.stderr.flush()))
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
sys.stderr.write("started with %s\n" % config)
sys.stderr.flush()
while True:
    time.sleep(0.05)
'''


class ProxyProtocolTests(StubCase):
    """--proxy-protocol: a backend behind send_proxy_protocol (bench/ measures with it)."""

    stub_args = ["--proxy-protocol"]

    def test_header_is_read_and_dropped(self):
        v1 = b"PROXY TCP4 203.0.113.7 192.0.2.1 5555 80\r\n"
        v2 = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + bytes([203, 0, 113, 7, 192, 0, 2, 1]) +
              b"\x15\xb3\x00\x50")
        for header in (v1, v2, b"PROXY UNKNOWN\r\n"):
            with self.subTest(header=header[:16]):
                c = self.conn()
                c.send(header[:5])  # in pieces, then with the request in the same write
                time.sleep(0.02)
                c.send(header[5:] + b"GET /pp HTTP/1.1\r\nHost: a\r\n\r\n")
                r = c.recv_response()
                self.assertEqual(r.status, 200)
                self.assertIn(b"target /pp\n", r.body)
                self.assertNotIn(b"PROXY", r.body)

    def test_no_header_is_closed(self):
        c = self.conn()
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        self.assertTrue(c.closed())


if __name__ == "__main__":
    unittest.main(verbosity=2)
