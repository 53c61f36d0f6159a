#!/usr/bin/env python3
"""Fleet mode's propagation time (issue 13): N sidestep instances on this machine share a fleet
through one etcd; each trial forces the primary region down fleet-wide through instance 1 and
measures, on every instance, when its answers turned into redirects. The time until all N
redirect is the trial's figure; the report gives p50, p99 and max over the trials.

    python3 bench/fleet.py                       10 instances, 20 trials (about a minute)
    python3 bench/fleet.py --instances 3 --trials 5
    python3 bench/fleet.py --json out.json

The measure is `sidestep drill --fleet` itself: its traffic (one libuv client thread per
instance, --rate requests per second each, every request on a new connection) and its
convergence figures (from just before the force-down request to the first answer of the
unbroken run of redirects, per instance), so the resolution is 1000/rate ms. etcd comes from
Debian's etcd-server; every process started here is stopped by PID at the end, on Ctrl-C and on
errors too. The machine's load (/proc/loadavg, and the CPU other processes used during the
trials) is reported with the figures. See docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from benchlib import procs  # noqa: E402


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((procs.LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise RuntimeError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.05)


def http_json(port, path, timeout=5.0):
    """GET path from 127.0.0.1:port; the decoded JSON body, or None."""
    try:
        with socket.create_connection((procs.LOOPBACK, port), timeout=timeout) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path)
                      .encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        return None
    try:
        return json.loads(body.decode())
    except ValueError:
        return None


def percentile(sorted_values, pct):
    """Nearest rank."""
    k = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(k) - 1]


class Bench:
    def __init__(self, a):
        self.a = a
        self.procs = procs.Procs()
        self.dir = tempfile.mkdtemp(prefix="sidestep-fleet-bench-")
        self.instances = []  # (name, proc, listen port, admin port)
        self.stubs = []

    def start_etcd(self):
        client, peer = free_port(), free_port()
        url, purl = "http://127.0.0.1:%d" % client, "http://127.0.0.1:%d" % peer
        argv = [self.a.etcd, "--name", "bench", "--data-dir", os.path.join(self.dir, "etcd"),
                "--listen-client-urls", url, "--advertise-client-urls", url,
                "--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
                "--initial-cluster", "bench=%s" % purl, "--initial-cluster-state", "new",
                "--logger", "zap", "--log-outputs", "stderr"]
        proc = self.procs.start("etcd", argv, os.path.join(self.dir, "etcd.log"))

        def healthy():
            if not proc.running():
                raise RuntimeError("etcd exited: see %s" % os.path.join(self.dir, "etcd.log"))
            try:
                with socket.create_connection((procs.LOOPBACK, client), timeout=0.5):
                    return True
            except OSError:
                return False
        wait_for(healthy, 20, "etcd")
        self.etcd_url = url
        self.etcd = proc

    def start_stub(self, name):
        """Starts a stub on an ephemeral port; returns the port (its process joins self.stubs)."""
        argv = [self.a.stub, "--listen", "127.0.0.1:0", "--name", name]
        proc = self.procs.start("stub-" + name, argv, os.path.join(self.dir, name + ".log"),
                                stdout=subprocess.PIPE)
        line = procs.read_first_line(proc, 10)
        if not line.isdigit():
            raise RuntimeError("stub %s did not start: %r" % (name, line))
        self.stubs.append(proc)
        return int(line)

    def start_instance(self, i, us, eu):
        name = "lb-%d" % (i + 1)
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        cfg = {
            "listen": ["127.0.0.1:0"],
            "admin": {"address": "127.0.0.1:0"},
            "workers": 1,
            "local_region": "us-east",
            "health": {"path": "/healthz", "interval": "500ms", "timeout": "400ms",
                       "rise": 1, "fall": 3},
            "regions": [
                {"name": "us-east", "url": "http://127.0.0.1:1",
                 "backends": ["127.0.0.1:%d" % us], "failback_delay": "0s"},
                {"name": "eu-west", "url": "http://127.0.0.1:%d" % eu,
                 "backends": ["127.0.0.1:%d" % eu], "failback_delay": "0s"},
            ],
            "routes": [{"name": "default", "match": {"host": "*", "path_prefix": "/"},
                        "primary": "us-east", "failover": ["eu-west"]}],
            "fleet": {"name": "bench", "instance": name,
                      "etcd": {"endpoints": [self.etcd_url], "lease_ttl": "10s"},
                      "startup_wait": "5s"},
            "log": {"access": "off"},
        }
        path = os.path.join(d, "sidestep.json")
        with open(path, "w") as f:
            json.dump(cfg, f)  # JSON is YAML
        ready = os.path.join(d, "ready.json")
        proc = self.procs.start(name, [self.a.sidestep, "-c", path, "--ready-file", ready],
                                os.path.join(d, "sidestep.log"))

        def read_ready():
            if not proc.running():
                raise RuntimeError("%s exited: see %s" % (name, os.path.join(d, "sidestep.log")))
            try:
                with open(ready) as f:
                    return json.load(f)
            except (OSError, ValueError):
                return None
        r = wait_for(read_ready, 10, name + " ready")
        port = int(r["listen"][0].rsplit(":", 1)[1])
        admin = int(r["admin"].rsplit(":", 1)[1])
        self.instances.append((name, proc, port, admin))

    def setup(self):
        self.start_etcd()
        us, eu = self.start_stub("us-east"), self.start_stub("eu-west")
        for i in range(self.a.instances):
            self.start_instance(i, us, eu)
        first_admin = self.instances[0][3]

        def all_live():
            f = http_json(first_admin, "/fleet")
            return f is not None and sum(1 for m in f["instances"] if m.get("live")) == \
                self.a.instances
        wait_for(all_live, 20, "every instance in /fleet")
        for name, _, _, admin in self.instances:
            def routable():
                st = http_json(admin, "/status")
                return st is not None and all(r["routable"] for r in st["regions"])
            wait_for(routable, 10, name + " routable")

    def trial(self, n):
        name, _, port, admin = self.instances[0]
        out = os.path.join(self.dir, "trial-%02d.json" % n)
        argv = [self.a.sidestep, "drill", "--fleet", "--admin", "127.0.0.1:%d" % admin,
                "--url", "http://127.0.0.1:%d/bench" % port, "--rate", str(self.a.rate),
                "--hold", "200ms", "--failover-timeout", "10s", "--json", out]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        with open(os.path.join(self.dir, "trial-%02d.log" % n), "w") as f:
            f.write(p.stdout + p.stderr)
        try:
            with open(out) as f:
                rep = json.load(f)
        except (OSError, ValueError):
            raise RuntimeError("trial %d: no report (exit %d):\n%s" % (n, p.returncode,
                                                                      p.stdout + p.stderr))
        return rep

    def run(self):
        load_before = open("/proc/loadavg").read().split()[:3]
        self.setup()
        ours = [pid for _, proc, _, _ in self.instances for pid in proc.pids()]
        ours += self.etcd.pids() + [pid for proc in self.stubs for pid in proc.pids()]
        before = procs.Sample(ours)
        others = procs.Others()
        trials = []
        for n in range(self.a.trials):
            rep = self.trial(n)
            per = [i["failover_ms"] for i in rep["instances"]]
            ok = rep["result"] == "pass" and None not in per and len(per) == self.a.instances
            trials.append({"result": rep["result"] if ok else "fail",
                           "all_ms": max(p for p in per if p is not None)
                           if any(p is not None for p in per) else None,
                           "ack_ms": rep.get("force_down_acked_ms"),
                           "instances_ms": per, "problems": rep["problems"]})
            print("trial %2d: %s, all %d redirect after %s ms (etcd acknowledged the write "
                  "after %s ms; per instance: %s)"
                  % (n + 1, "ok" if ok else "FAIL", self.a.instances, trials[-1]["all_ms"],
                     trials[-1]["ack_ms"], ", ".join(str(p) for p in per)), flush=True)
        after = procs.Sample(ours)
        others_pct, steal_pct = others.finish(after.cpu_seconds_since(before))
        load_after = open("/proc/loadavg").read().split()[:3]
        good = sorted(t["all_ms"] for t in trials if t["result"] == "pass")
        each = sorted(p for t in trials if t["result"] == "pass" for p in t["instances_ms"])
        acks = sorted(t["ack_ms"] for t in trials if t["result"] == "pass")
        summary = {
            "instances": self.a.instances, "trials": self.a.trials, "passed": len(good),
            "rate_per_instance": self.a.rate,
            "all_redirect_ms": {"p50": percentile(good, 50), "p99": percentile(good, 99),
                                "max": good[-1]} if good else None,
            "per_instance_ms": {"p50": percentile(each, 50), "p99": percentile(each, 99),
                                "max": each[-1]} if each else None,
            "etcd_ack_ms": {"p50": percentile(acks, 50), "p99": percentile(acks, 99),
                            "max": acks[-1]} if acks else None,
            "loadavg_before": load_before, "loadavg_after": load_after,
            "others_cpu_pct": round(others_pct, 1), "steal_pct": round(steal_pct, 1),
            "when": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        }
        return summary, trials

    def close(self):
        self.procs.stop_all()
        shutil.rmtree(self.dir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--instances", type=int, default=10)
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--rate", type=int, default=200, help="requests/s sent to each instance")
    p.add_argument("--sidestep", default=os.environ.get("SST_BIN",
                                                        os.path.join(ROOT, "build", "sidestep")))
    p.add_argument("--stub", default=os.environ.get(
        "SST_STUB", os.path.join(ROOT, "build", "tests", "sidestep-stub")))
    p.add_argument("--etcd", default=os.environ.get("SST_ETCD") or shutil.which("etcd") or
                   "/usr/bin/etcd")
    p.add_argument("--json", help="also write the summary and every trial to this file")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    a = p.parse_args()
    if not (1 <= a.instances <= 64 and 1 <= a.trials <= 1000 and 1 <= a.rate <= 5000):
        p.error("--instances 1..64, --trials 1..1000, --rate 1..5000")
    for path in (a.sidestep, a.stub, a.etcd):
        if not os.access(path, os.X_OK):
            p.error("%s is not there: build first, and install etcd-server "
                    "(scripts/install-deps.sh test)" % path)
    procs.raise_nofile()
    b = Bench(a)
    try:
        summary, trials = b.run()
    finally:
        if a.keep:
            print("run directory: %s" % b.dir)
            b.procs.stop_all()
        else:
            b.close()
    s = summary
    print("\n%d instances, %d trials (%d passed), %d req/s per instance, %s"
          % (s["instances"], s["trials"], s["passed"], s["rate_per_instance"], s["when"]))
    if s["all_redirect_ms"]:
        print("time until all %d redirect: p50 %d ms, p99 %d ms, max %d ms"
              % (s["instances"], s["all_redirect_ms"]["p50"], s["all_redirect_ms"]["p99"],
                 s["all_redirect_ms"]["max"]))
        print("each instance:            p50 %d ms, p99 %d ms, max %d ms"
              % (s["per_instance_ms"]["p50"], s["per_instance_ms"]["p99"],
                 s["per_instance_ms"]["max"]))
        print("of which the write (admin API to etcd's ack): p50 %d ms, p99 %d ms, max %d ms"
              % (s["etcd_ack_ms"]["p50"], s["etcd_ack_ms"]["p99"], s["etcd_ack_ms"]["max"]))
    print("load average before %s, after %s; CPU outside the bench's processes during the "
          "trials %.1f%% (other jobs, and the kernel's loopback work for the trials' own "
          "traffic), steal %.1f%%" % (" ".join(s["loadavg_before"]), " ".join(s["loadavg_after"]),
                                     s["others_cpu_pct"], s["steal_pct"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"summary": summary, "trials": trials}, f, indent=2)
    return 0 if s["passed"] == s["trials"] else 1


if __name__ == "__main__":
    sys.exit(main())
