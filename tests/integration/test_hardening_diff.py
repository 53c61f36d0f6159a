"""Hardening: differential tests against nginx and HAProxy on loopback.

The same malformed inputs go through sidestep, nginx and HAProxy, each a reverse proxy in front
of the same recording backend (tests/support/badbackend.py):

- requests: each proxy either forwards a complete request or rejects. sidestep's verdict is
  pinned per case, and whenever nginx or HAProxy rejects an input that sidestep forwards, the
  case must be listed in FORWARDED_ON_PURPOSE with the reason. A new gap (the parser starts
  accepting something another proxy refuses) therefore fails here;
- responses: malformed backend answers; where nginx and HAProxy both refuse one (502 or a cut),
  sidestep must refuse it too;
- origins: everything sidestep forwards must be accepted by nginx and HAProxy acting as strict
  origins (sidestep re-emits requests from parsed fields, never a tolerated shape).

Skipped when nginx or haproxy is not installed. The gaps this found are regression cases in
tests/unit/test_http1.c and docs/security.md.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import sst
from badbackend import BadBackend, ok, respond
from sst import Conn, Sidestep, scaled

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                      if os.path.exists("/usr/sbin/haproxy") else None)

F, R = "forward", "reject"
CH = b"Transfer-Encoding: chunked\r\n"


def post(headers, body=b""):
    return b"POST / HTTP/1.1\r\nHost: a\r\n" + headers + b"\r\n" + body


def get(line=b"GET / HTTP/1.1", headers=b"Host: a\r\n"):
    return line + b"\r\n" + headers + b"\r\n"


REQUESTS = [
    # Content-Length
    ("CL then TE", post(b"Content-Length: 3\r\n" + CH, b"1\r\na\r\n0\r\n\r\n"), R),
    ("TE then CL", post(CH + b"Content-Length: 3\r\n", b"1\r\na\r\n0\r\n\r\n"), R),
    ("two equal CL", post(b"Content-Length: 1\r\nContent-Length: 1\r\n", b"a"), R),
    ("two CL", post(b"Content-Length: 1\r\nContent-Length: 2\r\n", b"ab"), R),
    ("CL list", post(b"Content-Length: 1,1\r\n", b"a"), R),
    ("CL +1", post(b"Content-Length: +1\r\n", b"a"), R),
    ("CL -1", post(b"Content-Length: -1\r\n", b"a"), R),
    ("CL hex", post(b"Content-Length: 0x1\r\n", b"a"), R),
    ("CL 1 1", post(b"Content-Length: 1 1\r\n", b"a"), R),
    ("CL empty", post(b"Content-Length: \r\n", b"a"), R),
    ("CL 2^64", post(b"Content-Length: 18446744073709551616\r\n", b"a"), R),
    ("CL padded", post(b"Content-Length:  03 \r\n", b"abc"), F),
    # Transfer-Encoding
    ("TE twice", post(CH + CH, b"0\r\n\r\n"), R),
    ("TE chunked, chunked", post(b"Transfer-Encoding: chunked, chunked\r\n", b"0\r\n\r\n"), R),
    ("TE identity", post(b"Transfer-Encoding: identity\r\n", b"0\r\n\r\n"), R),
    ("TE xchunked", post(b"Transfer-Encoding: xchunked\r\n", b"0\r\n\r\n"), R),
    ("TE quoted", post(b'Transfer-Encoding: "chunked"\r\n', b"0\r\n\r\n"), R),
    ("TE with a parameter", post(b"Transfer-Encoding: chunked;q=1\r\n", b"0\r\n\r\n"), R),
    ("TE empty element", post(b"Transfer-Encoding: ,chunked\r\n", b"0\r\n\r\n"), R),
    ("TE trailing comma", post(b"Transfer-Encoding: chunked,\r\n", b"0\r\n\r\n"), R),
    ("TE space before colon", post(b"Transfer-Encoding : chunked\r\n", b"0\r\n\r\n"), R),
    ("TE vertical tab", post(b"Transfer-Encoding: \x0bchunked\r\n", b"0\r\n\r\n"), R),
    ("TE obs-fold", post(b"Transfer-Encoding:\r\n chunked\r\n", b"0\r\n\r\n"), R),
    ("TE in HTTP/1.0", b"POST / HTTP/1.0\r\nHost: a\r\n" + CH + b"\r\n0\r\n\r\n", R),
    ("TE trailing space", post(b"Transfer-Encoding: chunked \r\n", b"0\r\n\r\n"), F),
    # chunks
    ("chunk size z", post(CH, b"z\r\na\r\n0\r\n\r\n"), R),
    ("chunk size -1", post(CH, b"-1\r\na\r\n0\r\n\r\n"), R),
    ("chunk size 0x1", post(CH, b"0x1\r\na\r\n0\r\n\r\n"), R),
    ("chunk size overflow", post(CH, b"10000000000000001\r\na\r\n0\r\n\r\n"), R),
    ("chunk size SP", post(CH, b"1 \r\na\r\n0\r\n\r\n"), R),
    ("chunk size HTAB", post(CH, b"1\t\r\na\r\n0\r\n\r\n"), R),
    ("chunk data too long", post(CH, b"1\r\nab\r\n0\r\n\r\n"), R),
    ("chunk bare LF", post(CH, b"1\na\r\n0\r\n\r\n"), R),
    ("chunk bare CR", post(CH, b"1\ra\r\n0\r\n\r\n"), R),
    ("chunk data bare CR", post(CH, b"1\r\na\r\r\n0\r\n\r\n"), R),
    ("last chunk bare LF", post(CH, b"1\r\na\r\n0\n\n"), R),
    ("body ends with bare LF", post(CH, b"1\r\na\r\n0\r\n\n"), R),
    ("chunk ext control", post(CH, b'1;a="\x01"\r\na\r\n0\r\n\r\n'), R),
    ("chunk ext 5000", post(CH, b"1;" + b"a" * 5000 + b"\r\na\r\n0\r\n\r\n"), R),
    ("leading zeros", post(CH, b"0000000000000000000001\r\na\r\n0\r\n\r\n"), F),
    # trailers
    ("trailer CL", post(CH, b"5\r\nhello\r\n0\r\nContent-Length: 10\r\n\r\n"), F),
    ("trailer SP before colon", post(CH, b"1\r\na\r\n0\r\nY : z\r\n\r\n"), R),
    ("trailer empty name", post(CH, b"1\r\na\r\n0\r\n: z\r\n\r\n"), R),
    ("trailer obs-fold", post(CH, b"1\r\na\r\n0\r\nX: a\r\n b\r\n\r\n"), R),
    ("trailer bare LF", post(CH, b"1\r\na\r\n0\r\nX: y\nZ: w\r\n\r\n"), R),
    ("trailer control", post(CH, b"1\r\na\r\n0\r\nX: \x01\r\n\r\n"), R),
    ("trailers 300 x 1000", post(CH, b"1\r\na\r\n0\r\n" +
                                 b"".join(b"T%d: %s\r\n" % (i, b"v" * 1000) for i in range(300)) +
                                 b"\r\n"), R),
    # head bytes
    ("value bare CR", get(headers=b"Host: a\r\nX: a\rb\r\n"), R),
    ("value NUL", get(headers=b"Host: a\r\nX: a\x00b\r\n"), R),
    ("obs-fold", get(headers=b"Host: a\r\nX: a\r\n b\r\n"), R),
    ("bare LF after version", b"GET / HTTP/1.1\nHost: a\r\n\r\n", R),
    ("bare LF in head", b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", R),
    ("bare LF ends head", b"GET / HTTP/1.1\r\nHost: a\r\n\n", R),
    ("name SP colon", get(headers=b"Host: a\r\nX : y\r\n"), R),
    ("name control", get(headers=b"Host: a\r\nX\x01: y\r\n"), R),
    ("name @", get(headers=b"Host: a\r\nX@: y\r\n"), R),
    ("empty name", get(headers=b"Host: a\r\n: y\r\n"), R),
    # Host
    ("no Host", get(headers=b""), R),
    ("two Host", get(headers=b"Host: a\r\nHost: a\r\n"), R),
    ("Host list", get(headers=b"Host: a, b\r\n"), R),
    ("Host folded", get(headers=b"Host: a,b\r\n"), R),
    ("empty Host", get(headers=b"Host:\r\n"), R),
    ("Host slash", get(headers=b"Host: a/b\r\n"), R),
    ("Host userinfo", get(headers=b"Host: u@a\r\n"), R),
    ("Host bad port", get(headers=b"Host: a:8x\r\n"), R),
    ("Host HTAB", get(headers=b"Host: \ta\t\r\n"), F),
    ("Host trailing SP", get(headers=b"Host: a \r\n"), F),
    ("Host empty port", get(headers=b"Host: a:\r\n"), F),
    # request-line
    ("version-less", get(line=b"GET /a"), R),
    ("HTTP/0.9", b"GET /\r\n\r\n", R),
    ("double SP", get(line=b"GET  / HTTP/1.1"), R),
    ("trailing SP", get(line=b"GET / HTTP/1.1 "), R),
    ("HTAB separator", get(line=b"GET\t/ HTTP/1.1"), R),
    ("HTTP/1.2", get(line=b"GET / HTTP/1.2"), R),
    ("HTTP/2.0", get(line=b"GET / HTTP/2.0"), R),
    ("lower-case version", get(line=b"GET / http/1.1"), R),
    ("unknown method", get(line=b"FOO / HTTP/1.1"), R),
    ("lower-case method", get(line=b"get / HTTP/1.1"), R),
    ("CONNECT", get(line=b"CONNECT a:443 HTTP/1.1", headers=b"Host: a:443\r\n"), R),
    ("target relative", get(line=b"GET a/b HTTP/1.1"), R),
    ("target fragment", get(line=b"GET /a#f HTTP/1.1"), R),
    ("target raw UTF-8", get(line=b"GET /caf\xc3\xa9 HTTP/1.1"), R),
    ("target ftp", get(line=b"GET ftp://b/ HTTP/1.1"), R),
    ("target userinfo", get(line=b"GET http://u@b/ HTTP/1.1"), R),
    ("target empty host", get(line=b"GET http:// HTTP/1.1"), R),
    ("absolute no Host", b"GET http://b/ HTTP/1.1\r\n\r\n", R),
    ("asterisk GET", get(line=b"GET * HTTP/1.1"), R),
    ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", R),
    ("TLS ClientHello", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40), R),
    ("absolute-form", get(line=b"GET http://b/x HTTP/1.1"), F),
    ("encoded CRLF", get(line=b"GET /a?b=%0D%0AX:%20y HTTP/1.1"), F),
    ("encoded NUL", get(line=b"GET /a%00b HTTP/1.1"), F),
    ("dot segments", get(line=b"GET /a/../../etc HTTP/1.1"), F),
    ("TRACE", get(line=b"TRACE / HTTP/1.1"), F),
    ("HTTP/1.0 no Host", b"GET / HTTP/1.0\r\n\r\n", F),
]

# Inputs sidestep forwards although nginx or HAProxy (in the versions tested) refuses them.
FORWARDED_ON_PURPOSE = {
    "CL padded": "OWS around a valid length is allowed (RFC 9110 §5.5)",
    "TE trailing space": "OWS after the last coding is allowed (RFC 9110 §5.5)",
    "leading zeros": "1*HEXDIG allows leading zeros (RFC 9112 §7.1)",
    "trailer CL": "trailers are dropped, never honoured; the request ends at the empty line",
    "Host HTAB": "OWS around the value is not part of it (RFC 9110 §5.5)",
    "Host trailing SP": "OWS around the value is not part of it (RFC 9110 §5.5)",
    "Host empty port": "port = *DIGIT: an empty port is valid (RFC 3986 §3.2.3)",
    "absolute-form": "forwarded in origin-form, Host from the authority (RFC 9112 §3.2.2)",
    "encoded NUL": "forwarded still encoded; decoding and path rules are the backend's",
    "dot segments": "sidestep routes by prefix and never normalises: routing is not access control",
    "TRACE": "a method like any other; answering or refusing it is the backend's call",
}


# What nginx as an origin refuses by its own policy, not because the request is malformed.
ORIGIN_POLICY = {("nginx", "encoded NUL"), ("nginx", "dot segments"), ("nginx", "TRACE")}


def start_nginx(conf_body, tmp):
    port = sst.free_port()
    conf = os.path.join(tmp, "nginx-%d.conf" % port)
    with open(conf, "w") as f:
        f.write("""
daemon off; master_process off; worker_processes 1; pid %(d)s/nginx-%(port)d.pid;
error_log stderr crit;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %(d)s/cb; proxy_temp_path %(d)s/pt; fastcgi_temp_path %(d)s/ft;
  uwsgi_temp_path %(d)s/ut; scgi_temp_path %(d)s/st;
  server { listen 127.0.0.1:%(port)d; %(body)s }
}
""" % {"d": tmp, "port": port, "body": conf_body})
    proc = subprocess.Popen([NGINX, "-c", conf, "-p", tmp], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sst.wait_until(lambda: sst.port_open(port), timeout=5, what="nginx on %d" % port)
    return proc, port


def start_haproxy(backend_section, tmp):
    port = sst.free_port()
    conf = os.path.join(tmp, "haproxy-%d.cfg" % port)
    with open(conf, "w") as f:
        f.write("""
global
  maxconn 256
defaults
  mode http
  timeout connect 2s
  timeout client 5s
  timeout server 5s
  timeout http-request 5s
frontend fe
  bind 127.0.0.1:%(port)d
%(backend)s
""" % {"port": port, "backend": backend_section})
    proc = subprocess.Popen([HAPROXY, "-f", conf, "-db"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    sst.wait_until(lambda: sst.port_open(port), timeout=5, what="haproxy on %d" % port)
    return proc, port


def sidestep_config(addr):
    return {
        "workers": 1,
        "listen": [{"address": "127.0.0.1:0"}],
        "regions": [{"name": "us-east", "url": "http://us-east.example", "backends": [addr],
                     "health": {"enabled": False, "initial": "up"}}],
        "timeouts": {"linger": "200ms"},
        "log": {"access": "off"},
    }


def stop(proc):
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def response_of(port, data, timeout=0.7):
    """(status, body) of the first response, or ("closed"/"timeout", b"")."""
    with Conn(port, timeout=timeout) as c:
        try:
            c.send(data)
        except OSError:
            return "closed", b""
        try:
            r = c.recv_response(timeout=timeout)
            return r.status, r.body
        except TimeoutError:
            return "timeout", b""
        except (sst.ProtocolError, OSError):
            return "closed", c.buf


@unittest.skipUnless(NGINX and HAPROXY, "nginx and haproxy are needed for differential tests")
class Differential(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sst-diff-")
        cls.procs = []
        cls.backend = BadBackend(cls.backend_script(), name="recorder")
        proxy = ("location / { proxy_pass http://%s; proxy_http_version 1.1; "
                 "proxy_set_header Connection \"\"; proxy_request_buffering off; "
                 "proxy_buffering off; }" % cls.backend.addr)
        ng, ng_port = start_nginx(proxy, cls.tmp)
        hp, hp_port = start_haproxy("  default_backend be\nbackend be\n  server s1 %s"
                                    % cls.backend.addr, cls.tmp)
        cls.procs = [ng, hp]
        cls.sst = Sidestep(sidestep_config(cls.backend.addr))
        cls.ports = {"sidestep": cls.sst.port, "nginx": ng_port, "haproxy": hp_port}
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        for p in cls.procs:
            stop(p)
        cls.backend.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    @classmethod
    def backend_script(cls):
        return respond(ok(), then="keep")

    def barrier(self, port):
        """A valid request through the same proxy: once answered, whatever the proxy was
        going to forward for the previous input has reached the backend."""
        type(self).n += 1
        target = "/barrier/%d" % self.n
        status, _ = response_of(port, get(line=b"GET %s HTTP/1.1" % target.encode()),
                                timeout=scaled(5))
        self.assertEqual(status, 200, "barrier through port %d" % port)
        return target


class Requests(Differential):
    def verdict(self, proxy, data):
        port = self.ports[proxy]
        before = len(self.backend.requests)
        status, body = response_of(port, data)
        target = self.barrier(port)
        got = [q for q in self.backend.requests[before:] if q.target != target]
        complete = [q for q in got if q.complete]
        forwarded = status == 200 and body == b"ok" and len(complete) >= 1
        return (F if forwarded else R), status, got

    def test_requests(self):
        table = []
        surprises = []
        for name, data, want in REQUESTS:
            row = {p: self.verdict(p, data) for p in ("sidestep", "nginx", "haproxy")}
            table.append("%-26s sidestep=%s(%s) nginx=%s(%s) haproxy=%s(%s)" % (
                name, row["sidestep"][0], row["sidestep"][1], row["nginx"][0],
                row["nginx"][1], row["haproxy"][0], row["haproxy"][1]))
            verdict, status, got = row["sidestep"]
            if verdict != want:
                surprises.append("%s: sidestep %s (status %s), pinned %s" %
                                 (name, verdict, status, want))
            if verdict == R:
                for q in got:
                    if q.complete:
                        surprises.append("%s: rejected but a complete request reached the "
                                         "backend" % name)
            others_reject = [p for p in ("nginx", "haproxy") if row[p][0] == R]
            if verdict == F and others_reject and name not in FORWARDED_ON_PURPOSE:
                surprises.append("%s: sidestep forwards what %s rejects" %
                                 (name, ", ".join(others_reject)))
        if os.environ.get("SST_DIFF_TABLE"):
            print("\n" + "\n".join(table))
        self.assertEqual(surprises, [], "\n" + "\n".join(table))

    def test_allowlist_is_current(self):
        """Every FORWARDED_ON_PURPOSE entry names a case that sidestep forwards."""
        pinned = {name: want for name, _, want in REQUESTS}
        for name in FORWARDED_ON_PURPOSE:
            self.assertEqual(pinned.get(name), F, name)


RESPONSES = [
    ("garbage", b"HELLO\r\n\r\n"),
    ("status 2000", b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n"),
    ("status abc", b"HTTP/1.1 abc OK\r\nContent-Length: 0\r\n\r\n"),
    ("HTTP/2.0", b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("two CL", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc"),
    ("CL with TE", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"2\r\nab\r\n0\r\n\r\n"),
    ("TE gzip", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 2\r\n\r\nab"),
    ("NUL in a field", b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nab"),
    ("bare CR", b"HTTP/1.1 200 OK\r\nX: \rContent-Length: 2\r\n\r\nab"),
    ("SP before colon", b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nab"),
    ("bare LF head", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nab"),
    ("1xx flood", b"HTTP/1.1 100 Continue\r\n\r\n" * 17 +
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"),
    ("101 unasked", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
    ("bad chunk", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n"),
    ("chunk too long", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n0\r\n\r\n"),
    ("valid", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab"),
]


def good_response(status, body):
    return status == 200 and body == b"ab"


class Responses(Differential):
    @classmethod
    def backend_script(cls):
        def script(c):
            q = c.read_request()
            if q is None:
                return
            if q.target.startswith("/barrier/"):
                c.send(ok())
            else:
                c.send(RESPONSES[int(q.target.rsplit("/", 1)[1])][1])
            c.close()
        return script

    def test_responses(self):
        table, surprises = [], []
        for i, (name, data) in enumerate(RESPONSES):
            req = get(line=b"GET /r/%d HTTP/1.1" % i)
            row = {p: response_of(self.ports[p], req, timeout=2) for p in self.ports}
            ok_ = {p: good_response(*row[p]) for p in row}
            table.append("%-16s %s" % (name, "  ".join(
                "%s=%s%s" % (p, row[p][0], "" if ok_[p] else "!") for p in row)))
            if name == "valid":
                if not all(ok_.values()):
                    surprises.append("the valid response did not pass everywhere")
                continue
            if ok_["sidestep"] and not ok_["nginx"] and not ok_["haproxy"]:
                surprises.append("%s: sidestep passes what nginx and haproxy refuse" % name)
            if not ok_["sidestep"] and row["sidestep"][0] not in (502, "closed"):
                surprises.append("%s: sidestep answered %s" % (name, row["sidestep"][0]))
        if os.environ.get("SST_DIFF_TABLE"):
            print("\n" + "\n".join(table))
        self.assertEqual(surprises, [], "\n" + "\n".join(table))


@unittest.skipUnless(NGINX and HAPROXY, "nginx and haproxy are needed for differential tests")
class StrictOrigins(unittest.TestCase):
    """nginx and HAProxy as origins behind sidestep: whatever sidestep forwards, they accept."""

    def test_forwarded_requests_are_acceptable_to_strict_origins(self):
        tmp = tempfile.mkdtemp(prefix="sst-origins-")
        procs = []
        try:
            ng, ng_port = start_nginx("location / { return 200 \"ok\"; }", tmp)
            procs.append(ng)
            hp, hp_port = start_haproxy(
                "  http-request return status 200 content-type text/plain string ok", tmp)
            procs.append(hp)
            for origin, port in (("nginx", ng_port), ("haproxy", hp_port)):
                with Sidestep(sidestep_config("127.0.0.1:%d" % port)) as s:
                    for name, data, want in REQUESTS:
                        if want != F or (origin, name) in ORIGIN_POLICY:
                            continue
                        with self.subTest(origin=origin, case=name):
                            status, body = response_of(s.port, data, timeout=2)
                            self.assertEqual((status, body), (200, b"ok"))
        finally:
            for p in procs:
                stop(p)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
