#!/usr/bin/env bash
# Runs a 3-node fallback-broker cluster on loopback, to try the cluster on one machine.
#
# Usage: bash fallback-broker/local-cluster.sh COMMON.toml [DIR]
#   COMMON.toml  what every node shares: [auth], and [users], [anonymous], [log], [metrics] as
#                wanted; no [[listener]] and no [cluster] (this script writes those per node).
#   DIR          where the node configurations and logs go (default: a new temporary directory).
#
# Node n (1, 2, 3) serves MQTT on 127.0.0.1:$MQTT_PORT+n-1 (1883, 1884, 1885 by default), its
# gRPC service on 127.0.0.1:$GRPC_PORT+n-1 (5363...) and raft on 127.0.0.1:$RAFT_PORT+n-1
# (6003...). The broker is $FALLBACK_BROKER (default target/release/fallback-broker; build it
# with `cargo build --release -p fallback-broker`). Ctrl-C stops all three.
set -euo pipefail

COMMON=${1:?usage: local-cluster.sh COMMON.toml [DIR]}
DIR=${2:-$(mktemp -d -t fallback-cluster-XXXXXX)}
BROKER=${FALLBACK_BROKER:-target/release/fallback-broker}
MQTT_PORT=${MQTT_PORT:-1883}
GRPC_PORT=${GRPC_PORT:-5363}
RAFT_PORT=${RAFT_PORT:-6003}

[ -x "$BROKER" ] || { echo "no broker at $BROKER: cargo build --release -p fallback-broker" >&2; exit 2; }
if grep -Eq '^\s*\[(\[listener\]|cluster)\]' "$COMMON"; then
    echo "$COMMON must not have [[listener]] or [cluster]: this script writes them" >&2
    exit 2
fi
mkdir -p "$DIR"

nodes=""
for n in 1 2 3; do
    nodes+="    { id = $n, grpc = \"127.0.0.1:$((GRPC_PORT + n - 1))\", raft = \"127.0.0.1:$((RAFT_PORT + n - 1))\" },"$'\n'
done
for n in 1 2 3; do
    {
        cat "$COMMON"
        printf '\n[[listener]]\nbind = "127.0.0.1:%d"\n\n' $((MQTT_PORT + n - 1))
        printf '[cluster]\nnode_id = %d\nnodes = [\n%s]\n' "$n" "$nodes"
    } >"$DIR/node-$n.toml"
    "$BROKER" check-config "$DIR/node-$n.toml" >/dev/null
done

pids=()
stop() {
    kill "${pids[@]}" 2>/dev/null || true
    wait
}
trap stop EXIT INT TERM
for n in 1 2 3; do
    "$BROKER" --config "$DIR/node-$n.toml" >"$DIR/node-$n.log" 2>&1 &
    pids+=($!)
done
for n in 1 2 3; do
    until grep -q " running on " "$DIR/node-$n.log"; do
        if ! kill -0 "${pids[$((n - 1))]}" 2>/dev/null; then
            echo "node $n exited:" >&2
            tail -n 20 "$DIR/node-$n.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    echo "node $n: MQTT on 127.0.0.1:$((MQTT_PORT + n - 1)), log $DIR/node-$n.log"
done
echo "cluster running; Ctrl-C stops it"
wait
