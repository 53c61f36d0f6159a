"""The fault relay of the gray-failure benchmark (bench/failover.py): a TCP pass-through in front
of each backend that, when told, makes its backend fail in one of the gray ways at a known
instant. It counts every request that reaches it by the harness's request id, so a request sent
twice to the backends shows. It never decides anything about the servers under test.

Run as a process (standard library only):

    python3 faults.py --relay NAME=LISTEN_PORT=UPSTREAM_PORT [--relay ...] [--delay 2.0]

It binds 127.0.0.1:LISTEN_PORT for each relay, prints one JSON line {"ports": {NAME: port}},
then reads commands on stdin, one per line, and answers each with one JSON line on stdout:

    fault KIND NAME[,NAME...]   inject KIND into those relays now; answers {"at": T, ...}, T
                                the CLOCK_MONOTONIC second at which the relay began to apply
                                it (applied_ms later it is in force everywhere)
    stats                       {"relays": {NAME: counters}, "ids": {ID: [NAME, ...]}}

and exits when stdin closes. Faults (they stay until the process exits):

    refused    the listener is closed and open connections are reset, as when the backend
               process dies: a new connect is refused at once
    silence    connections are still accepted and read, but nothing is forwarded, answered or
               closed any more, on new and already open connections alike
    syn-drop   the listener is replaced by one with a backlog of 0 whose accept queue is
               filled by a connection of the relay's own and never accepted: the kernel drops
               new SYNs, so a connect hangs until the client's connect timeout; open
               connections go silent as above (a blackholed host)
    latency    every response byte is delayed by --delay seconds (requests are forwarded
               at once: the backend acts, its answer comes late)
    reset      each response that starts after the fault is forwarded up to its head and
               half its body, then the connection is reset (SO_LINGER 0)
"""

import argparse
import collections
import heapq
import itertools
import json
import os
import selectors
import socket
import struct
import sys
import time

LOOPBACK = "127.0.0.1"
KINDS = ("refused", "silence", "syn-drop", "latency", "reset")
ID_HEADER = b"x-bench-id"
HEAD_MAX = 64 * 1024
OUT_MAX = 1 << 20  # stop reading a side while this much waits to be written to the other
RESET_GRACE = 0.01  # seconds between the partial response and the RST, so it is read first


def linger_reset(sock):
    """Closes sock with SO_LINGER 0: the kernel sends an RST instead of a FIN."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def listen_overflows():
    """The kernel's TcpExt ListenOverflows counter (SYNs or ACKs dropped on full accept queues,
    machine-wide), or None when /proc/net/netstat does not have it."""
    try:
        with open("/proc/net/netstat") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for names, values in zip(lines[0::2], lines[1::2]):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:]))
            if "ListenOverflows" in table:
                return int(table["ListenOverflows"])
    return None


class HttpStream:
    """Incremental HTTP/1.1 message framing for one direction of a connection: finds each
    head, calls on_head(first_line, headers, head_len, body_len) and skips the body
    (Content-Length or chunked). body_len is None for a chunked or close-delimited body.
    After a malformed head it stops parsing (self.broken)."""

    def __init__(self, on_head, responses=False):
        self.on_head = on_head
        self.responses = responses
        self.buf = b""
        self.state = "head"
        self.left = 0  # body bytes (or chunk bytes) still to skip
        self.broken = False

    def feed(self, data):
        if self.broken:
            return
        self.buf += data
        while self.buf and not self.broken:
            if self.state == "head":
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(self.buf) > HEAD_MAX:
                        self.broken = True
                    return
                head, self.buf = self.buf[:end], self.buf[end + 4:]
                self._head(head, end + 4)
            elif self.state == "body":
                n = min(self.left, len(self.buf))
                self.left -= n
                self.buf = self.buf[n:]
                if self.left == 0:
                    self.state = "head"
            elif self.state == "close":
                self.buf = b""  # close-delimited: the rest of the stream is body
            elif self.state in ("chunk-size", "trailer"):
                end = self.buf.find(b"\r\n")
                if end < 0:
                    if len(self.buf) > HEAD_MAX:
                        self.broken = True
                    return
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if self.state == "trailer":
                    if not line:
                        self.state = "head"
                    continue
                try:
                    size = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    self.broken = True
                    return
                if size == 0:
                    self.state = "trailer"
                else:
                    self.left = size + 2  # the data and its CRLF
                    self.state = "chunk-data"
            elif self.state == "chunk-data":
                n = min(self.left, len(self.buf))
                self.left -= n
                self.buf = self.buf[n:]
                if self.left == 0:
                    self.state = "chunk-size"

    def _head(self, head, head_len):
        lines = head.split(b"\r\n")
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                self.broken = True
                return
            headers[name.strip().lower()] = value.strip()
        te = headers.get(b"transfer-encoding", b"").lower()
        cl = headers.get(b"content-length")
        body_len = None
        if te.endswith(b"chunked"):
            self.state = "chunk-size"
        elif cl is not None and cl.isdigit():
            body_len = int(cl)
            self.left = body_len
            self.state = "body" if body_len else "head"
        elif self.responses:
            status = lines[0].split(b" ", 2)[1:2]
            if status and status[0] in (b"204", b"304") or status and status[0][:1] == b"1":
                body_len = 0
            else:
                self.state = "close"
        else:
            body_len = 0
        self.on_head(lines[0], headers, head_len, body_len)


class Relay:
    """One listener in front of one backend, and its counters."""

    def __init__(self, name, port, upstream):
        self.name = name
        self.port = port
        self.upstream = upstream
        self.kind = None  # the fault in force, None while passing traffic
        self.fault_at = None
        self.sock = None
        self.blocker = []  # syn-drop: the backlog-0 listener and the connection filling it
        self.pairs = set()
        self.c = collections.Counter()

    def counters(self):
        out = dict(self.c)
        out.update({"fault": self.kind, "fault_at": self.fault_at, "open": len(self.pairs)})
        return out


class Pair:
    """A client connection (down: the server under test, or its probes) and the connection to
    the backend (up) the relay made for it."""

    def __init__(self, relay, down):
        self.relay = relay
        self.down = down
        self.up = None
        self.up_ready = False
        self.to_up = bytearray()
        self.to_down = bytearray()
        self.mode = "pass"  # pass, silent, latency, reset
        self.reset_from = None  # reset mode: response stream offset where cutting begins
        self.resp_pos = 0  # response bytes received from up so far
        self.cut_at = None  # offset at which the current response is cut
        self.closed = False
        self.req = HttpStream(self._on_request)
        self.resp = HttpStream(self._on_response, responses=True)
        self.resp_start = 0

    def _on_request(self, line, headers, head_len, body_len):
        r = self.relay
        parts = line.split(b" ")
        target = parts[1] if len(parts) > 1 else b""
        rid = headers.get(ID_HEADER)
        after = r.kind is not None
        if rid is not None:
            r.c["requests"] += 1
            if after:
                r.c["requests_after_fault"] += 1
            Loop.current.ids.setdefault(rid.decode("latin-1"), []).append(r.name)
        elif target.startswith(b"/healthz"):
            r.c["probes"] += 1
            if after:
                r.c["probes_after_fault"] += 1
        else:
            r.c["other_requests"] += 1

    def _on_response(self, line, headers, head_len, body_len):
        start = self.resp_start
        self.resp_start = start + head_len + (body_len or 0)
        if self.mode == "reset" and self.cut_at is None and start >= self.reset_from:
            # head and half the body; a body of 0 or 1 byte: half the head, so it is never
            # a complete response either
            self.cut_at = start + head_len + body_len // 2 if body_len and body_len > 1 \
                else start + head_len // 2


class Loop:
    """The relay process: a selector loop over every listener and connection."""

    current = None

    def __init__(self, relays, delay):
        Loop.current = self
        self.relays = relays
        self.delay = delay
        self.sel = selectors.DefaultSelector()
        self.timers = []  # heap of (due, seq, callable)
        self.seq = itertools.count()
        self.ids = {}
        self.cmd_buf = b""
        self.done = False
        for r in relays.values():
            r.sock = self._listener(r.port, 511)
            self.sel.register(r.sock, selectors.EVENT_READ, ("listen", r))
        os.set_blocking(0, False)
        self.sel.register(0, selectors.EVENT_READ, ("cmd", None))

    @staticmethod
    def _listener(port, backlog):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, port))
        s.listen(backlog)
        s.setblocking(False)
        return s

    def at(self, due, fn):
        heapq.heappush(self.timers, (due, next(self.seq), fn))

    # --- connections ---------------------------------------------------------------------------

    def accept(self, r):
        try:
            down, _ = r.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            r.c["accept_errors"] += 1
            return
        down.setblocking(False)
        down.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        p = Pair(r, down)
        r.pairs.add(p)
        r.c["accepted"] += 1
        if r.kind is not None:
            r.c["accepted_after_fault"] += 1
        if r.kind in ("silence", "syn-drop"):
            p.mode = "silent"
        else:
            self._connect_up(p)
            if r.kind == "latency":
                p.mode = "latency"
            elif r.kind == "reset":
                p.mode = "reset"
                p.reset_from = 0
        self._interest(p)

    def _connect_up(self, p):
        up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        up.setblocking(False)
        up.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = up.connect_ex((LOOPBACK, p.relay.upstream))
        if err not in (0, 115):  # EINPROGRESS
            up.close()
            p.relay.c["upstream_errors"] += 1
            self.close(p, reset=True)
            return
        p.up = up
        p.up_ready = err == 0

    def _interest(self, p):
        if p.closed:
            return
        ev = 0
        if len(p.to_up) < OUT_MAX:
            ev |= selectors.EVENT_READ
        if p.to_down and p.mode != "silent":
            ev |= selectors.EVENT_WRITE
        self._set(p.down, ev, ("down", p))
        if p.up is not None:
            ev = 0
            if not p.up_ready or p.to_up:
                ev |= selectors.EVENT_WRITE
            if p.up_ready and len(p.to_down) < OUT_MAX:
                ev |= selectors.EVENT_READ
            self._set(p.up, ev, ("up", p))

    def _set(self, sock, ev, data):
        try:
            key = self.sel.get_key(sock)
        except KeyError:
            if ev:
                self.sel.register(sock, ev, data)
            return
        if not ev:
            self.sel.unregister(sock)
        elif key.events != ev:
            self.sel.modify(sock, ev, data)

    def close(self, p, reset=False):
        if p.closed:
            return
        p.closed = True
        for s in (p.down, p.up):
            if s is None:
                continue
            try:
                self.sel.unregister(s)
            except (KeyError, ValueError):
                pass
        if reset:
            linger_reset(p.down)
        else:
            p.down.close()
        if p.up is not None:
            p.up.close()
        p.relay.pairs.discard(p)

    def on_down(self, p, mask):
        if mask & selectors.EVENT_READ:
            try:
                data = p.down.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close(p)
                return
            if data == b"":
                if p.mode == "silent":
                    # never close: keep the socket, stop watching it (a half-closed client)
                    self._set(p.down, 0, None)
                    return
                self.close(p)
                return
            if data:
                p.req.feed(data)
                if p.mode != "silent":
                    p.to_up += data
                    self._flush_up(p)
        if mask & selectors.EVENT_WRITE and not p.closed:
            self._flush_down(p)
        self._interest(p)

    def on_up(self, p, mask):
        if mask & selectors.EVENT_WRITE and not p.up_ready:
            err = p.up.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                p.relay.c["upstream_errors"] += 1
                self.close(p, reset=True)
                return
            p.up_ready = True
        if mask & selectors.EVENT_WRITE:
            self._flush_up(p)
        if mask & selectors.EVENT_READ and not p.closed:
            try:
                data = p.up.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close(p, reset=True)
                return
            if data == b"":
                self._upstream_eof(p)
                return
            if data:
                self._from_up(p, data)
        self._interest(p)

    def _upstream_eof(self, p):
        if p.mode == "latency":
            # the close travels behind the delayed bytes
            self.at(time.monotonic() + self.delay, lambda: self.close(p))
            p.up.close()
            try:
                self.sel.unregister(p.up)
            except (KeyError, ValueError):
                pass
            p.up = None
            return
        self._flush_down(p)
        self.close(p)

    def _from_up(self, p, data):
        p.resp.feed(data)
        if p.mode == "latency":
            self.at(time.monotonic() + self.delay, lambda: self._late(p, data))
            return
        if p.mode == "reset" and p.cut_at is not None:
            keep = max(0, p.cut_at - p.resp_pos)
            p.resp_pos += len(data)
            if keep < len(data):
                p.to_down += data[:keep]
                self._flush_down(p)
                self._cut(p)
                return
        else:
            p.resp_pos += len(data)
        p.to_down += data
        self._flush_down(p)

    def _cut(self, p):
        """The reset fault: stop reading the backend, reset the client shortly after the
        partial response has gone out."""
        p.mode = "cutting"
        p.relay.c["responses_cut"] += 1
        if p.up is not None:
            try:
                self.sel.unregister(p.up)
            except (KeyError, ValueError):
                pass
            p.up.close()
            p.up = None
        self.at(time.monotonic() + RESET_GRACE, lambda: self.close(p, reset=True))

    def _late(self, p, data):
        if p.closed:
            return
        p.to_down += data
        self._flush_down(p)
        self._interest(p)

    def _flush_up(self, p):
        if not p.up_ready or not p.to_up or p.up is None:
            return
        try:
            n = p.up.send(p.to_up)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(p, reset=True)
            return
        del p.to_up[:n]

    def _flush_down(self, p):
        if not p.to_down or p.closed or p.mode == "silent":
            return
        try:
            n = p.down.send(p.to_down)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(p)
            return
        del p.to_down[:n]

    # --- faults --------------------------------------------------------------------------------

    def inject(self, kind, names):
        if kind not in KINDS:
            return {"error": "unknown fault %r (known: %s)" % (kind, ", ".join(KINDS))}
        relays = []
        for n in names:
            if n not in self.relays:
                return {"error": "unknown relay %r" % n}
            if self.relays[n].kind is not None:
                return {"error": "relay %r already has fault %s" % (n, self.relays[n].kind)}
            relays.append(self.relays[n])
        before = listen_overflows()
        # the instant is read first: a reset sent while the fault is being applied can reach
        # the client before a clock read afterwards
        at = time.monotonic()
        for r in relays:
            getattr(self, "_fault_" + kind.replace("-", "_"))(r)
        applied = time.monotonic()
        for r in relays:
            r.kind = kind
            r.fault_at = at
        out = {"at": at, "applied_ms": (applied - at) * 1000, "kind": kind, "relays": names}
        if kind == "syn-drop":
            out["blocked"] = all(r.blocker for r in relays)
            after = listen_overflows()
            if before is not None and after is not None:
                out["listen_overflows_at_fill"] = after - before
        return out

    def _close_listener(self, r):
        self.sel.unregister(r.sock)
        r.sock.close()
        r.sock = None

    def _fault_refused(self, r):
        self._close_listener(r)
        for p in list(r.pairs):
            self.close(p, reset=True)

    def _silence_open(self, r):
        for p in list(r.pairs):
            p.mode = "silent"
            p.to_down.clear()
            p.to_up.clear()
            if p.up is not None:
                try:
                    self.sel.unregister(p.up)
                except (KeyError, ValueError):
                    pass
                p.up.close()
                p.up = None
            self._interest(p)

    def _fault_silence(self, r):
        self._silence_open(r)

    def _fault_syn_drop(self, r):
        self._close_listener(r)
        blocker = self._listener(r.port, 0)
        # Linux queues backlog + 1 connections: one completed handshake fills it, and the
        # kernel then drops every SYN (TcpExt ListenOverflows counts them)
        filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        filler.settimeout(1.0)
        try:
            filler.connect((LOOPBACK, r.port))
        except OSError:
            filler.close()
            blocker.close()
            raise
        r.blocker = [blocker, filler]
        self._silence_open(r)

    def _fault_latency(self, r):
        for p in r.pairs:
            if p.mode == "pass":
                p.mode = "latency"

    def _fault_reset(self, r):
        for p in r.pairs:
            if p.mode == "pass":
                p.mode = "reset"
                # a response whose head was already parsed is left whole; the next one is cut
                p.reset_from = p.resp_start

    # --- commands ------------------------------------------------------------------------------

    def on_cmd(self):
        try:
            data = os.read(0, 4096)
        except (BlockingIOError, InterruptedError):
            return
        if not data:
            self.done = True
            return
        self.cmd_buf += data
        while b"\n" in self.cmd_buf:
            line, self.cmd_buf = self.cmd_buf.split(b"\n", 1)
            words = line.decode("ascii", "replace").split()
            if not words:
                continue
            if words[0] == "fault" and len(words) == 3:
                try:
                    out = self.inject(words[1], words[2].split(","))
                except OSError as e:
                    out = {"error": "fault %s: %s" % (words[1], e)}
            elif words[0] == "stats":
                out = {"relays": {n: r.counters() for n, r in self.relays.items()},
                       "ids": self.ids, "at": time.monotonic()}
            else:
                out = {"error": "unknown command %r" % line[:80]}
            sys.stdout.write(json.dumps(out) + "\n")
            sys.stdout.flush()

    def run(self):
        while not self.done:
            now = time.monotonic()
            while self.timers and self.timers[0][0] <= now:
                _, _, fn = heapq.heappop(self.timers)
                fn()
            timeout = max(0.0, self.timers[0][0] - time.monotonic()) if self.timers else 1.0
            for key, mask in self.sel.select(min(timeout, 1.0)):
                kind, obj = key.data
                if kind == "listen":
                    if key.fileobj is obj.sock:  # not closed by a fault earlier in this batch
                        self.accept(obj)
                elif kind == "cmd":
                    self.on_cmd()
                elif kind == "down" and not obj.closed:
                    self.on_down(obj, mask)
                elif kind == "up" and not obj.closed and key.fileobj is obj.up:
                    self.on_up(obj, mask)


# --- the harness's side ---------------------------------------------------------------------


class RelayError(Exception):
    pass


class Control:
    """The harness's handle on one relay process started through a procs.Procs registry:
    `ports` maps each relay name to its listening port."""

    def __init__(self, registry, label, relays, log_path, cpus=None, delay=2.0):
        import subprocess

        argv = [sys.executable, "-u", os.path.abspath(__file__), "--delay", repr(delay)]
        for name, listen, upstream in relays:
            argv += ["--relay", "%s=%d=%d" % (name, listen, upstream)]
        self.proc = registry.start(label, argv, log_path, cpus=cpus, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
        self.registry = registry
        self.buf = b""
        first = self.reply(10.0)
        self.ports = first.get("ports") or {}
        want = {name: listen for name, listen, _ in relays}
        if self.ports != want:
            raise RelayError("relay listens on %r, wanted %r" % (self.ports, want))

    def send(self, line):
        """Writes one command; does not wait for the answer (the load generator calls this at
        the fault instant and must not stall)."""
        try:
            os.write(self.proc.popen.stdin.fileno(), (line + "\n").encode("ascii"))
        except OSError as e:
            raise RelayError("relay gone: %s\n%s" % (e, self.proc.log_text()[-1500:]))

    def reply(self, timeout=5.0):
        """The next JSON answer line."""
        import select

        fd = self.proc.popen.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise RelayError("relay did not answer within %.0f s:\n%s"
                                 % (timeout, self.proc.log_text()[-1500:]))
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RelayError("relay exited:\n%s" % self.proc.log_text()[-1500:])
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        out = json.loads(line)
        if "error" in out:
            raise RelayError(out["error"])
        return out

    def inject(self, kind, names):
        self.send("fault %s %s" % (kind, ",".join(names)))
        return self.reply()

    def stats(self):
        self.send("stats")
        return self.reply(10.0)

    def stop(self):
        self.registry.stop(self.proc)


# --- checking that each fault does what it says, on this kernel -------------------------------


def _get(port, timeout):
    """One GET /healthz on a new connection: (what happened, seconds, bytes received)."""
    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    got = b""
    try:
        try:
            s.connect((LOOPBACK, port))
        except ConnectionRefusedError:
            return "refused", time.monotonic() - t0, got
        except socket.timeout:
            return "connect-timeout", time.monotonic() - t0, got
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: relay\r\n\r\n")
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                return "silent" if not got else "stalled", time.monotonic() - t0, got
            except ConnectionResetError:
                return "reset", time.monotonic() - t0, got
            if not chunk:
                return "eof", time.monotonic() - t0, got
            got += chunk
            if got.endswith(b"ok\n"):
                return "answered", time.monotonic() - t0, got
    finally:
        s.close()


def verify(registry, stub_port, ports, out_dir, cpus=None, delay=2.0):
    """For each fault, a relay in front of the stub at stub_port, the fault injected, then one
    GET through it from here: returns {kind: {"ok": bool, "seen": ..., "seconds": ...}}.
    `ports` hands out the relay's listening port (procs.Ports)."""
    expect = {
        # kind: (outcome, check on (seconds, bytes))
        "refused": ("refused", lambda t, b: t < 0.5),
        "silence": ("silent", lambda t, b: not b),
        "syn-drop": ("connect-timeout", lambda t, b: True),
        "latency": ("answered", lambda t, b: delay - 0.05 <= t <= delay + 0.5),
        "reset": ("reset", lambda t, b: b.startswith(b"HTTP/1.1 200") and not b.endswith(b"ok\n")),
    }
    out = {}
    for kind in KINDS:
        port = ports.take()
        ctl = Control(registry, "relay-verify-" + kind, [("r", port, stub_port)],
                      os.path.join(out_dir, "relay-verify.log"), cpus=cpus, delay=delay)
        try:
            seen0, _, _ = _get(port, 2.0)
            overflows = listen_overflows()
            info = ctl.inject(kind, ["r"])
            seen, secs, got = _get(port, delay + 1.0 if kind == "latency" else 1.5)
            grown = listen_overflows()
            want, check = expect[kind]
            row = {"before": seen0, "seen": seen, "seconds": round(secs, 3),
                   "bytes": len(got), "ok": seen0 == "answered" and seen == want and
                   check(secs, got)}
            if kind == "syn-drop":
                row["listen_overflows"] = grown - overflows if None not in (grown, overflows) \
                    else None
                row["ok"] = row["ok"] and bool(info.get("blocked")) and \
                    (row["listen_overflows"] is None or row["listen_overflows"] > 0)
            out[kind] = row
        finally:
            ctl.stop()
    return out


def main(argv):
    ap = argparse.ArgumentParser(description="fault relay (see the module docstring)")
    ap.add_argument("--relay", action="append", required=True,
                    help="NAME=LISTEN_PORT=UPSTREAM_PORT (127.0.0.1 both)")
    ap.add_argument("--delay", type=float, default=2.0, help="latency fault, seconds")
    a = ap.parse_args(argv)
    relays = {}
    for spec in a.relay:
        parts = spec.split("=")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            ap.error("bad --relay %r" % spec)
        relays[parts[0]] = Relay(parts[0], int(parts[1]), int(parts[2]))
    loop = Loop(relays, a.delay)
    sys.stdout.write(json.dumps({"ports": {n: r.sock.getsockname()[1]
                                           for n, r in relays.items()}}) + "\n")
    sys.stdout.flush()
    try:
        loop.run()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
