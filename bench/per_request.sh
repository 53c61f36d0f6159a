#!/bin/sh
# System calls or user-space instructions per request of a one-worker sidestep under wrk
# keep-alive (16 connections), for A/B comparisons of two binaries (docs/benchmarks.md):
#
#   bench/per_request.sh strace    SIDESTEP STUB WORKLOAD   strace -c -f, per request
#   bench/per_request.sh callgrind SIDESTEP STUB WORKLOAD   callgrind Ir, per request
#   bench/per_request.sh cpu       SIDESTEP STUB WORKLOAD   CPU time (user + system), per request
#
# WORKLOAD: get307 (every request answered 307), proxy-get (proxied to the stub over pooled
# keep-alive connections), proxy-get-pp (the same with send_proxy_protocol: v2 towards a stub
# that reads the header, issue 16); get307-tls or proxy-get-tls, the first two over HTTPS (a
# self-signed ECDSA P-256 certificate made by tests/support/certs.py, TLS 1.3 as wrk speaks it;
# needs the openssl command). CLOSE=1 makes wrk close its connection after every request
# (Connection: close), so that pooling across client connections shows: the proxied workloads
# then also print how many backend connections sidestep opened, from its metrics.
#
# strace counts every call the server makes while wrk runs 3 s (the server pinned to core 1,
# wrk and the stub to core 0). callgrind counts the instructions the server executes for the
# requests of a 4 s wrk run after a 2 s warm-up: unlike CPU time on a shared machine, that
# figure barely moves between runs. cpu reads the server's utime + stime from /proc around a 5 s
# wrk run (server on core 1, wrk and the stub on core 0): it moves with the machine's load, so
# compare runs made back to back. Ports BASE..BASE+3 on 127.0.0.1 (BASE=24100 unless set, so
# that two runs on one machine can use two ranges). Every process started here is stopped by
# PID.
set -eu
MODE=$1
SST=$2
STUB=$3
WORK=$4
D=$(mktemp -d)
BASE=${BASE:-24100}
PORT=$BASE
BPORT=$((BASE + 1))
B2=$((BASE + 2))
APORT=$((BASE + 3))
CLOSE=${CLOSE:-0}
STUBPID=""
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    [ -n "$STUBPID" ] && kill "$STUBPID" 2>/dev/null && wait "$STUBPID" 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT INT TERM

LISTEN="\"127.0.0.1:$PORT\""
SCHEME=http
case "$WORK" in
*-tls)
    python3 "$(dirname "$0")/../tests/support/certs.py" --out "$D/certs" >/dev/null
    LISTEN="{address: \"127.0.0.1:$PORT\", tls: {certificates: [{cert: \"$D/certs/selfsigned.pem\", key: \"$D/certs/selfsigned.key\"}]}}"
    SCHEME=https
    ;;
esac
STUBARGS=""
case "$WORK" in
get307 | get307-tls) INITIAL="    health: {enabled: false, initial: down}" ;;
proxy-get | proxy-get-tls) INITIAL="" ;;
proxy-get-pp)
    INITIAL="    send_proxy_protocol: v2"
    STUBARGS="--proxy-protocol"
    ;;
*)
    echo "workload: get307, proxy-get, proxy-get-pp, get307-tls or proxy-get-tls" >&2
    exit 2
    ;;
esac
PROXIED=1
case "$WORK" in get307*) PROXIED=0 ;; esac
if [ "$PROXIED" = 1 ]; then
    # shellcheck disable=SC2086 # STUBARGS is one optional word
    taskset -c 0 "$STUB" --listen 127.0.0.1:$BPORT --name us-east --size 256 --no-hash \
        $STUBARGS >"$D/stub.log" 2>&1 &
    STUBPID=$!
fi
# runs "$@" (a wrk command line) against $URL, closing after each request with CLOSE=1
wrk_run() {
    if [ "$CLOSE" = 1 ]; then
        "$@" -H "Connection: close" "$URL"
    else
        "$@" "$URL"
    fi
}
cat >"$D/s.yaml" <<EOF
workers: 1
listen: [$LISTEN]
regions:
  - name: us-east
    backends: ["127.0.0.1:$BPORT"]
$INITIAL
  - name: eu-west
    url: http://eu-west.example
    backends: ["127.0.0.1:$B2"]
    health: {enabled: false, initial: up}
routes:
  - name: default
    primary: us-east
    failover: [eu-west]
    redirect_status: 307
log: {access: off}
admin: {address: "127.0.0.1:$APORT"}
EOF
URL=$SCHEME://127.0.0.1:$PORT/bench/get?id=12345

case "$MODE" in
strace)
    taskset -c 1 "$SST" -c "$D/s.yaml" --workers 1 >"$D/sst.log" 2>&1 &
    SPID=$!
    sleep 1
    strace -c -f -p "$SPID" -o "$D/strace" 2>/dev/null &
    TPID=$!
    sleep 1
    wrk_run taskset -c 0 wrk -t1 -c16 -d3s >"$D/wrk"
    kill -INT "$TPID"
    wait "$TPID" || true
    REQ=$(awk '/requests in/{print $1}' "$D/wrk")
    echo "$WORK: $REQ requests"
    # strace -c: "% time, seconds, usecs/call, calls, [errors], syscall"; calls is field 4
    awk -v r="$REQ" '$4 ~ /^[0-9]+$/ && $NF != "syscall" {
        printf "  %-12s %9d  %6.3f per request\n", $NF, $4, $4 / r }' "$D/strace"
    ;;
callgrind)
    valgrind --tool=callgrind --callgrind-out-file="$D/cg.%p" "$SST" -c "$D/s.yaml" --workers 1 \
        >"$D/sst.log" 2>&1 &
    SPID=$!
    sleep 4
    wrk_run wrk -t1 -c16 -d2s >/dev/null
    callgrind_control -z "$SPID" >/dev/null 2>&1
    wrk_run wrk -t1 -c16 -d4s >"$D/wrk"
    callgrind_control -d "$SPID" >/dev/null 2>&1
    REQ=$(awk '/requests in/{print $1}' "$D/wrk")
    IR=$(awk '/^summary:/{print $2}' "$D/cg.$SPID.1")
    echo "$WORK: $REQ requests, $IR instructions, $((IR / REQ)) per request"
    ;;
cpu)
    taskset -c 1 "$SST" -c "$D/s.yaml" --workers 1 >"$D/sst.log" 2>&1 &
    SPID=$!
    sleep 1
    wrk_run taskset -c 0 wrk -t1 -c16 -d1s >/dev/null
    T0=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
    wrk_run taskset -c 0 wrk -t1 -c16 -d5s >"$D/wrk"
    T1=$(awk '{print $14 + $15}' "/proc/$SPID/stat")
    REQ=$(awk '/requests in/{print $1}' "$D/wrk")
    HZ=$(getconf CLK_TCK)
    awk -v t="$((T1 - T0))" -v hz="$HZ" -v r="$REQ" -v w="$WORK" 'BEGIN {
        printf "%s: %d requests, %.2f s CPU, %.1f us per request\n", w, r, t / hz,
               t / hz * 1e6 / r }'
    ;;
*)
    echo "mode: strace, callgrind or cpu" >&2
    exit 2
    ;;
esac
if [ "$PROXIED" = 1 ]; then
    # backend connections opened and requests sent, over the whole run (warm-up included)
    curl -s "http://127.0.0.1:$APORT/metrics" | awk '
        /^sidestep_upstream_connects_total/ { c += $2 }
        /^sidestep_upstream_requests_total/ { r += $2 }
        END { printf "  backend connections: %d for %d requests (%.3f per request)\n", c, r,
              r ? c / r : 0 }'
fi
