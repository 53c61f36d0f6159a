"""The servers under test: configs rendered from bench/templates/ with the ports filled in,
started pinned (or not), ready-checked, and described by their process tree."""

import json
import os
import re
import shutil
import socket
import time

from . import procs

TEMPLATES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "templates")
_PLACEHOLDER = re.compile(r"\{\{([A-Z0-9_]+)\}\}")


def render(template, values):
    """The template text with every {{NAME}} replaced; an unknown name is an error."""
    with open(os.path.join(TEMPLATES, template)) as f:
        text = f.read()

    def sub(m):
        if m.group(1) not in values:
            raise KeyError("template %s: no value for {{%s}}" % (template, m.group(1)))
        return str(values[m.group(1)])

    return _PLACEHOLDER.sub(sub, text)


def wait_port(port, proc, timeout):
    """Waits until port accepts a connection; False if proc exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            return False
        try:
            with socket.create_connection((procs.LOOPBACK, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


class Running:
    """A started server: `proc` (the top process), the port clients use, its kind."""

    def __init__(self, kind, proc, port, config_path):
        self.kind = kind
        self.proc = proc
        self.port = port
        self.config_path = config_path

    def pids(self):
        return self.proc.pids()


class Launcher:
    """Starts servers and stubs for one benchmark run directory."""

    def __init__(self, registry, ports, sidestep_bin, stub_bin, out_dir, nofile, maxconn):
        self.procs = registry
        self.ports = ports
        self.sidestep_bin = sidestep_bin
        self.stub_bin = stub_bin
        self.out_dir = out_dir
        self.nofile = nofile
        self.maxconn = maxconn
        self.seq = 0

    def _dir(self, label):
        self.seq += 1
        d = os.path.join(self.out_dir, "%03d-%s" % (self.seq, label))
        if os.path.isdir(d):
            shutil.rmtree(d)  # left by an earlier run into the same --out: no stale ready file
        os.makedirs(d)
        os.chmod(d, 0o755)  # nginx workers drop privileges and must reach their temp dirs
        return d

    def stub(self, name, workers, cpus, size=256):
        """A sidestep-stub answering `size` fixed bytes, bodies not hashed."""
        d = self._dir("stub-" + name)
        port = self.ports.take()
        argv = [self.stub_bin, "--listen", "%s:%d" % (procs.LOOPBACK, port), "--name", name,
                "--workers", str(workers), "--size", str(size), "--no-hash"]
        import subprocess

        proc = self.procs.start("stub-" + name, argv, os.path.join(d, "stub.log"), cpus=cpus,
                                stdout=subprocess.PIPE)
        line = procs.read_first_line(proc, 10.0)
        if line != str(port):
            self.procs.stop(proc)
            raise RuntimeError("stub %s did not start (printed %r): %s"
                               % (name, line, proc.log_text()[-2000:]))
        return Running("stub", proc, port, None)

    def server(self, kind, mode, workers, cpus, stub_port=None, stub2_port=None, extra=None):
        """Starts `kind` (sidestep, nginx, haproxy) in `mode` (redirect, proxy, failover-*, gray,
        or any mode with a template of its own, KIND-MODE.yaml/.conf/.cfg, such as redirect-tls);
        `extra` adds template values (gray: the relays' ports and optional keys)."""
        d = self._dir("%s-%s-w%d" % (kind, mode, workers))
        port = self.ports.take()
        values = {"WORKERS": workers, "PORT": port, "DIR": d, "NOFILE": self.nofile,
                  "MAXCONN": self.maxconn}
        values.update(extra or {})
        if stub_port is not None:
            values["STUB"] = stub_port
        if stub2_port is not None:
            values["STUB2"] = stub2_port
        if extra:
            values.update(extra)
        if kind == "sidestep":
            return self._sidestep(d, mode, values, cpus)
        if kind == "nginx":
            return self._nginx(d, mode, values, cpus)
        if kind == "haproxy":
            return self._haproxy(d, mode, values, cpus)
        raise ValueError("unknown server %r" % kind)

    def _sidestep(self, d, mode, values, cpus):
        template = "sidestep-%s.yaml" % mode
        values["CLOSED"] = self.ports.take()  # never listened on: connections are refused
        values["CLOSED2"] = self.ports.take()
        cfg = os.path.join(d, "sidestep.yaml")
        with open(cfg, "w") as f:
            f.write(render(template, values))
        ready = os.path.join(d, "ready.json")
        argv = [self.sidestep_bin, "-c", cfg, "--ready-file", ready, "--workers",
                str(values["WORKERS"])]
        proc = self.procs.start("sidestep", argv, os.path.join(d, "sidestep.log"), cpus=cpus)
        deadline = time.monotonic() + 10.0
        while True:
            if not proc.running():
                raise RuntimeError("sidestep exited with %s before it was ready:\n%s"
                                   % (proc.popen.returncode, proc.log_text()[-2000:]))
            try:
                with open(ready) as f:
                    info = json.load(f)
                break
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                self.procs.stop(proc)
                raise RuntimeError("sidestep not ready after 10s:\n%s" % proc.log_text()[-2000:])
            time.sleep(0.02)
        if info.get("listen") != ["%s:%d" % (procs.LOOPBACK, values["PORT"])]:
            raise RuntimeError("sidestep listens on %r, wanted port %d"
                               % (info.get("listen"), values["PORT"]))
        return Running("sidestep", proc, values["PORT"], cfg)

    def _nginx(self, d, mode, values, cpus):
        template = "nginx-%s.conf" % mode
        if mode == "failover":
            values["REDIR"] = self.ports.take()
        cfg = os.path.join(d, "nginx.conf")
        with open(cfg, "w") as f:
            f.write(render(template, values))
        argv = ["nginx", "-p", d, "-c", cfg, "-e", os.path.join(d, "nginx-error.log")]
        proc = self.procs.start("nginx", argv, os.path.join(d, "nginx.log"), cpus=cpus)
        ok = wait_port(values["PORT"], proc, 10.0)
        # the master forks its workers after binding: wait until all of them exist
        deadline = time.monotonic() + 10.0
        while ok and len(proc.pids()) < 1 + values["WORKERS"] and time.monotonic() < deadline:
            time.sleep(0.02)
        if not ok or len(proc.pids()) < 1 + values["WORKERS"]:
            log = proc.log_text() + _read(os.path.join(d, "nginx-error.log"))
            self.procs.stop(proc)
            raise RuntimeError("nginx did not start:\n%s" % log[-2000:])
        return Running("nginx", proc, values["PORT"], cfg)

    def _haproxy(self, d, mode, values, cpus):
        variant = None
        if mode.startswith("failover-"):
            variant = mode.split("-", 1)[1]
            mode = "failover"
        template = "haproxy-%s.cfg" % mode
        if mode == "failover":
            values["REDIR"] = self.ports.take()
            values.update(_haproxy_variant(variant, values["REDIR"]))
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(render(template, values))
        argv = ["haproxy", "-db", "-f", cfg]
        proc = self.procs.start("haproxy", argv, os.path.join(d, "haproxy.log"), cpus=cpus)
        if not wait_port(values["PORT"], proc, 10.0):
            log = proc.log_text()
            self.procs.stop(proc)
            raise RuntimeError("haproxy did not start:\n%s" % log[-2000:])
        return Running("haproxy", proc, values["PORT"], cfg)


def _haproxy_variant(variant, redir_port):
    backup = "    server b 127.0.0.1:%d backup" % redir_port
    if variant == "backup":
        return {"MODE_FRONTEND": "", "MODE_BACKEND": "", "MODE_SERVERS": backup}
    if variant == "redispatch":
        return {"MODE_FRONTEND": "", "MODE_BACKEND": "    option redispatch\n    retries 3",
                "MODE_SERVERS": backup}
    if variant == "nbsrv":
        return {"MODE_FRONTEND": "    http-request redirect prefix http://eu-west.example "
                                 "code 307 if { nbsrv(primary) lt 1 }",
                "MODE_BACKEND": "", "MODE_SERVERS": ""}
    raise ValueError("unknown HAProxy failover variant %r" % variant)


def _read(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def versions(sidestep_bin):
    """Version strings of the programs compared."""
    import subprocess

    def run(argv):
        try:
            out = subprocess.run(argv, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "unavailable (%s)" % e
        text = (out.stdout + out.stderr).decode("utf-8", "replace").strip()
        return text.splitlines()[0] if text else "unknown"

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return {
        "sidestep": run([sidestep_bin, "--version"]),
        "sidestep_commit": run(["git", "-C", root, "describe", "--always", "--dirty"]),
        "nginx": run(["nginx", "-v"]),
        "haproxy": run(["haproxy", "-v"]),
        "wrk": run(["wrk", "-v"]),
    }
