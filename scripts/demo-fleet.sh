#!/bin/sh
# Fleet mode on loopback: one etcd and three sidestep instances in fleet "demo" (lb-1, lb-2,
# lb-3), in front of the embedded demo's regions. Runs until Ctrl-C, then stops what it started,
# by PID. `./run.sh demo --fleet` builds and runs it; docs/fleet.md walks through it.
#
#   etcd            127.0.0.1:12379 (data in a temporary directory)
#   embedded demo   proxy 127.0.0.1:8080, admin :9901; its origins us-east :9001 :9002 and
#                   eu-west :9101 are the fleet's backends
#   lb-1, -2, -3    proxies 127.0.0.1:8081-8083, admin APIs 127.0.0.1:9911-9913
set -eu
cd "$(dirname "$0")/.."
BIN=${SST_BIN:-./build/sidestep}
ETCD=${SST_ETCD:-$(command -v etcd || echo /usr/bin/etcd)}
ETCD_PORT=12379

[ -x "$BIN" ] || { echo "demo-fleet: $BIN is not built (./run.sh demo --fleet builds it)" >&2; exit 1; }
[ -x "$ETCD" ] || { echo "demo-fleet: etcd not found: install the Debian package etcd-server" >&2; exit 1; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/sidestep-fleet-demo.XXXXXX")
PIDS=""

stop_all() {
    trap - EXIT INT TERM
    for pid in $PIDS; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $PIDS; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$DIR"
}
trap stop_all EXIT
trap 'exit 0' INT TERM

# Waits up to 20 s for a file to exist (a ready file) or a log line to appear.
wait_for() { # description, test command...
    what=$1
    shift
    i=0
    while ! "$@" 2>/dev/null; do
        i=$((i + 1))
        if [ "$i" -gt 200 ]; then
            echo "demo-fleet: $what did not come up; logs in $DIR" >&2
            trap - EXIT
            exit 1
        fi
        sleep 0.1
    done
}

"$ETCD" --name demo --data-dir "$DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "demo=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --logger zap --log-outputs stderr 2>"$DIR/etcd.log" &
PIDS="$PIDS $!"
wait_for etcd grep -q "serving client traffic" "$DIR/etcd.log"

"$BIN" --ready-file "$DIR/demo.ready" 2>"$DIR/demo.log" &
PIDS="$PIDS $!"
wait_for "the embedded demo" test -s "$DIR/demo.ready"

for i in 1 2 3; do
    cat >"$DIR/lb-$i.yaml" <<EOF
listen: [127.0.0.1:808$i]
admin: {address: 127.0.0.1:991$i}
local_region: us-east
health: {path: /healthz, interval: 1s, timeout: 500ms, rise: 1, fall: 2}
regions:
  - {name: us-east, url: "http://127.0.0.1:9001", backends: [127.0.0.1:9001, 127.0.0.1:9002],
     failback_delay: 2s}
  - {name: eu-west, url: "http://127.0.0.1:9101", backends: [127.0.0.1:9101], failback_delay: 2s}
routes:
  - {name: default, match: {host: "*", path_prefix: /}, primary: us-east, failover: [eu-west]}
log: {access: "off"}
fleet:
  name: demo
  instance: lb-$i
  etcd: {endpoints: ["http://127.0.0.1:$ETCD_PORT"], lease_ttl: 10s}
  health_quorum: majority
  startup_wait: 5s
EOF
    "$BIN" -c "$DIR/lb-$i.yaml" --ready-file "$DIR/lb-$i.ready" 2>"$DIR/lb-$i.log" &
    PIDS="$PIDS $!"
done
for i in 1 2 3; do
    wait_for "lb-$i" test -s "$DIR/lb-$i.ready"
done

cat >&2 <<EOF

sidestep fleet demo: etcd on 127.0.0.1:$ETCD_PORT, fleet "demo" of lb-1, lb-2, lb-3
  proxies    http://127.0.0.1:8081  http://127.0.0.1:8082  http://127.0.0.1:8083
  admin      127.0.0.1:9911  127.0.0.1:9912  127.0.0.1:9913
  the fleet: $BIN ctl --admin 127.0.0.1:9911 fleet
  fail over everywhere through lb-1:
             $BIN ctl --admin 127.0.0.1:9911 force-down region us-east --reason demo --ttl 2m
             curl -i http://127.0.0.1:8083/hello     (lb-3 answers 307 to eu-west)
  one instance only (local wins there):
             $BIN ctl --admin 127.0.0.1:9912 --scope local force-up region us-east --reason x
  back:      $BIN ctl --admin 127.0.0.1:9911 clear region us-east --reason done
  a drill:   $BIN drill --fleet --admin 127.0.0.1:9911 --url http://127.0.0.1:8081/drill
  logs:      $DIR/*.log      Ctrl-C stops everything.

EOF
wait
