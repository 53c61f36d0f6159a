"""Writes the seed corpora in tests/fuzz/corpus/<target>/ (run from anywhere; idempotent).

Seeds are named by their SHA-1, as libFuzzer names what it finds. The request and response
seeds are the inputs of tests/unit/test_http1.c and the hardening integration tests, valid and
malformed, each prefixed with the selector byte h1_fuzz.h reads (0x80: default limits, else
small ones; low bits: piece size). Route seeds are 8 state bytes then method, target, Host,
Origin and optionally Access-Control-Request-Method and -Headers, a failure (phase, flags,
attempts, retries, route, request bits) and an Idempotency-Key value, separated by NUL. Config
seeds are the embedded demo, the annotated example of docs/configuration.md and a few broken
files.
PROXY protocol seeds are the headers of tests/unit/test_proxy_proto.c's kinds (v1, v2 with every
TLV, a CRC32C, broken ones), alone and followed by a request, behind the selector byte
fuzz_proxy_proto.c reads (piece size, v2 bound), and again for fuzz_pp_acc.c (the transport's
accumulator) behind its selector byte (0: byte by byte, else drawn piece sizes). Crash reproducers found later are added by hand
next to these (see docs/security.md) and are never deleted.
"""

import hashlib
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CH = b"Transfer-Encoding: chunked\r\n"

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\r\nGET /x?y=1 HTTP/1.1\r\nHost: a.example:8080\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST / HTTP/1.1\r\nHost: a\r\n" + CH + b"\r\n5;e=v\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\na",
    b"GET http://x.example/y?z HTTP/1.1\r\nHost: a\r\n\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n"
    b"abcGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\n" + CH + b"\r\n1\r\na\r\n0\r\nConnection: close\r\n\r\n"
    b"GET /after HTTP/1.1\r\nHost: a\r\n\r\n",
    # malformed
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n",
    b"GET /\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n" + CH + b"\r\n1\r\na\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
    b"POST / HTTP/1.0\r\nHost: a\r\n" + CH + b"\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\n" + CH + b"\r\nfffffffffffffffff\r\na\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\n" + CH + b"\r\n1\r\na\r\n0\r\n\n",
    b"POST / HTTP/1.1\r\nHost: a\r\n" + CH + b"\r\n1\r\na\r\n0\r\nY : z\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\n" + CH + b"\r\n1;" + b"e" * 300 + b"\r\na\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost:\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
    b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
    b"FOO / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
]

RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + CH + b"\r\n2\r\nab\r\n0\r\nX-T: 1\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz",
    b"HTTP/1.1 200 OK\r\n\r\nuntil close",
    b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nz",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nzHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    b"HELLO\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + CH + b"\r\n2\r\nab\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + CH + b"\r\nzz\r\nab\r\n0\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n" * 17 + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX: \rContent-Length: 5\r\n\r\n",
]

ROUTES = [
    (b"\xff\xff\xff\xff\x10\x00\x00\x00", b"GET", b"/api/orders?id=1", b"shop.example.com", b""),
    (b"\x00\xff\xff\xff\x10\x00\x00\x00", b"POST", b"/api/pay", b"x.example.com",
     b"https://app.example.com"),
    (b"\x00\x00\x00\x00\x10\x00\x00\x00", b"GET", b"/", b"a", b""),
    (b"\x02\x01\x00\x01\x20\x01\x00\x00", b"GET", b"/s/img.png?sst_hop=1&h=2",
     b"static.example.com", b"https://evil.example"),
    (b"\x00\x01\x00\x00\x10\x00\x00\x00", b"PUT", b"http://Shop.Example.com:8080/api/x?a=%0D%0A",
     b"ignored", b""),
    (b"\x00\x00\x01\x00\x10\x00\x00\x00", b"GET", b"/api?sst_hop=9", b"b.example.com", b""),
    (b"\xff\xff\xff\xff\x10\x00\x00\x00", b"HEAD", b"*", b"[::1]:443", b""),
    # CORS preflights while a route redirects (issue 11): answered, malformed, repeated
    (b"\x00\x01\x01\x01\x10\x00\x00\x00", b"OPTIONS", b"/api/pay", b"x.example.com",
     b"https://app.example.com", b"POST", b"content-type,x-request-id"),
    (b"\x00\x01\x01\x01\x10\x00\x00\x00", b"OPTIONS", b"/api/pay", b"x.example.com",
     b"https://app.example.com", b"PUT", b" a , ,b\t"),
    (b"\x00\x01\x01\x01\x10\x00\x00\x01", b"OPTIONS", b"/", b"a", b"http://x", b"GET",
     b"x y"),
    # failures, idempotency keys and try-timer deadlines (issue 15)
    (b"\xff\xff\xff\xff\x10\x00\x00\x00", b"POST", b"/api/pay", b"x.example.com", b"", b"",
     b"", b"\x03\x0c\x01\x02\x00\x02", b'"8e03978e-40d5-43e8-bc93-6894a57f9324"'),
    (b"\xff\xff\xff\xff\x10\x00\x00\x00", b"GET", b"/api/x", b"x.example.com", b"", b"", b"",
     b"\x07\x05\x01\x02\x00\x01", b""),
    (b"\xff\xff\xff\xff\xf0\x00\x00\x00", b"POST", b"/", b"a", b"", b"", b"",
     b"\x07\x04\x03\x02\x00\x04", b"8e03978e-40d5-43e8-bc93-6894a57f9324"),
    (b"\xff\xff\xff\xff\x10\x00\x00\x00", b"PUT", b"/api/x", b"x.example.com", b"", b"", b"",
     b"\x07\x07\x01\x02\x00\x03", b' "a\\"b\\\\" '),
]

CONFIGS = [
    b"listen: [127.0.0.1:8080]\nregions:\n  - name: a\n    backends: [127.0.0.1:9001]\n",
    b"listen: [127.0.0.1:8080]\nregions:\n  - name: a\n    backends: [localhost:9001]\n",
    b"listen: [127.0.0.1:8080]\nregions:\n  - name: a\n    backends: [backend.internal:9001]\n",
    b"listen:\n  - address: 127.0.0.1:0\n    https_redirect: {get: 301, other: 308, port: 8443}\n"
    b"admin: {address: 10.0.0.5:9901, token_file: /etc/sidestep/token}\n"
    b"regions: [{name: a, backends: [127.0.0.1:1], health: {interval: 1x}}]\n",
    b"listen: [127.0.0.1:1]\nregions:\n  - &r {name: a, backends: [127.0.0.1:2]}\n  - *r\n",
    b"listen: [127.0.0.1:1]\nregions:\n- name: a\n  backends: [127.0.0.1:2]\n---\nx: 1\n",
    b"limits: {header_bytes: 32k, body: 100m, connections: 10000}\n"
    b"timeouts: {connect: 2s, body_total: 1h, body_min_rate: 1k}\n"
    b"trusted_proxies: [10.0.0.0/8, 'fd00::/8', 10.1.2.3/8]\n",
]

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
V4_BLOCK = bytes([192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB])
V6_BLOCK = (bytes.fromhex("20010db8000000000000000000000001")
            + bytes.fromhex("20010db8000000000000000000000002") + b"\x00\x50\x1f\x90")


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def tlv(t, v):
    return bytes([t]) + len(v).to_bytes(2, "big") + v


def v2(ver_cmd, fam, body, crc=False):
    if crc:
        body += tlv(0x03, b"\0\0\0\0")
    h = V2_SIG + bytes([ver_cmd, fam]) + len(body).to_bytes(2, "big") + body
    if crc:
        h = h[:-4] + crc32c(h).to_bytes(4, "big")
    return h


SSL = tlv(0x20, b"\x01\0\0\0\0" + tlv(0x21, b"TLSv1.3") + tlv(0x22, b"client.example")
          + tlv(0x23, b"TLS_AES_128_GCM_SHA256"))
PROXY_HEADERS = [
    b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
    b"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
    b"PROXY TCP6 ::ffff:10.1.2.3 ::1 8080 80\r\n",
    b"PROXY UNKNOWN\r\n",
    b"PROXY UNKNOWN ffff:f::f ffff:f::f 65535 65535\r\n",
    v2(0x21, 0x11, V4_BLOCK),
    v2(0x21, 0x21, V6_BLOCK),
    v2(0x20, 0x00, b""),
    v2(0x21, 0x00, b""),
    v2(0x21, 0x31, b"/run/lb.sock".ljust(216, b"\0")),
    v2(0x21, 0x11, V4_BLOCK + tlv(0x01, b"h2") + tlv(0x02, b"shop.example.com")
       + tlv(0x05, b"\xab" * 16) + SSL + tlv(0x30, b"blue") + tlv(0x04, b"")
       + tlv(0xEA, b"vpce-0123"), crc=True),
    v2(0x21, 0x21, V6_BLOCK + tlv(0x02, b"a.example"), crc=True),
    # malformed
    b"PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
    b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
    b"PROXY  UNKNOWN\r\n",
    b"PROXY UNKNOWN " + b"x" * 92 + b"\r\n",
    v2(0x21, 0x12, V4_BLOCK),
    v2(0x21, 0x11, V4_BLOCK[:11]),
    v2(0x21, 0x11, V4_BLOCK + b"\x04\x00\x05ab"),
    v2(0x21, 0x11, V4_BLOCK + tlv(0x02, b"a") + tlv(0x02, b"b")),
    v2(0x21, 0x11, V4_BLOCK + tlv(0x03, b"\0\0\0\0")),
    v2(0x21, 0x11, V4_BLOCK + tlv(0x20, b"\x01\0\0\0\0\x22\x00\x09a")),
]


def write(target, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, hashlib.sha1(data).hexdigest())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(data)


def yaml_blocks(md):
    return [m.group(1).encode() for m in re.finditer(r"```yaml\n(.*?)```", md, re.S)]


def main():
    for msg in REQUESTS:
        for sel in (0x80, 0x80 | 0x06, 0x00, 0x02):
            write("fuzz_http1_request", bytes([sel]) + msg)
    for msg in RESPONSES:
        for sel in (0x80, 0x80 | 0x40, 0x00, 0x03):
            write("fuzz_http1_response", bytes([sel]) + msg)
    for state, *fields in ROUTES:
        write("fuzz_route", state + b"\0".join(fields))
    for cfg in CONFIGS:
        write("fuzz_config", cfg)
    for hdr in PROXY_HEADERS:
        for sel in (0x00, 0x07, 0x40, 0x80 | 0x02, 0xC0):
            write("fuzz_proxy_proto", bytes([sel]) + hdr)
        write("fuzz_proxy_proto", b"\x03" + hdr + REQUESTS[0])
        for sel in (0x00, 0x05, 0x93):
            write("fuzz_pp_acc", bytes([sel]) + hdr + REQUESTS[0])
    with open(os.path.join(ROOT, "docs", "configuration.md")) as f:
        for block in yaml_blocks(f.read()):
            write("fuzz_config", block)
    with open(os.path.join(ROOT, "src", "config", "config_demo.c")) as f:
        demo = re.findall(r'^\s*"(.*)"', f.read(), re.M)
        text = "".join(demo).encode().decode("unicode_escape").encode()
        if b"regions" in text:
            write("fuzz_config", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
