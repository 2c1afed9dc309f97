#!/usr/bin/env bash
# QoS 0, one publisher -> one subscriber: messages/s through the fallback broker and through
# Mosquitto + the plugin, on this machine, in the same run; prints both rates and the ratio.
#
#   bash fallback-broker/bench/ratio.sh            # release builds, 200000 messages, 3 rounds
#   PROFILE=debug MESSAGES=50000 ROUNDS=1 bash fallback-broker/bench/ratio.sh
#
# Both brokers validate the same opaque token by introspection at the test IdP
# (tests/idp, `npm ci --prefix tests/idp` once); after the first login it is cached, so the
# numbers measure the brokers' message path including the per-message ACL checks.
# Needs: cargo, node, curl, python3, mosquitto (2.x).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PROFILE=${PROFILE:-release}
MESSAGES=${MESSAGES:-200000}
ROUNDS=${ROUNDS:-3}
PAYLOAD=${PAYLOAD:-64}
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

profile_dir=$PROFILE
[ "$PROFILE" = dev ] && profile_dir=debug

# Paths of what cargo built, taken from its JSON messages.
built() { # <kind: bin|example|cdylib> <name> <cargo args...>
    local kind=$1 name=$2
    shift 2
    cargo build --quiet --profile "$PROFILE" --message-format=json "$@" | python3 -c '
import json, sys
kind, name = sys.argv[1], sys.argv[2]
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") != "compiler-artifact" or m["target"]["name"] != name:
        continue
    if kind == "cdylib":
        print([f for f in m["filenames"] if f.endswith(".so")][0])
    elif m.get("executable") and kind in m["target"]["kind"]:
        print(m["executable"])
' "$kind" "$name" | tail -n 1
}

echo "building ($PROFILE) ..." >&2
BROKER=$(built bin fallback-broker --manifest-path "$ROOT/fallback-broker/Cargo.toml" --bin fallback-broker)
PUMP=$(built example qos0_pump --manifest-path "$ROOT/fallback-broker/Cargo.toml" --example qos0_pump)
PLUGIN=$(built cdylib mosquitto_oauth --manifest-path "$ROOT/Cargo.toml" -p mosquitto-oauth-plugin)
[ -x "$BROKER" ] && [ -x "$PUMP" ] && [ -f "$PLUGIN" ] || { echo "build failed" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not open" >&2; exit 1; }

# The test IdP and one token that may publish and read bench/#.
node "$ROOT/tests/idp/server.mjs" --port 0 >"$WORK/idp.out" 2>"$WORK/idp.err" &
PIDS+=($!)
for _ in $(seq 200); do grep -q IDP_READY "$WORK/idp.out" && break; sleep 0.1; done
ISSUER=$(sed -n 's/^IDP_READY //p' "$WORK/idp.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])')
TOKEN=$(curl -sf -u device-1:device-1-secret -d grant_type=client_credentials \
    --data-urlencode "scope=mqtt:write:bench/# mqtt:read:bench/#" "$ISSUER/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

MOSQ_PORT=$(free_port)
{
    echo "listener $MOSQ_PORT 127.0.0.1"
    echo "allow_anonymous false"
    [ "$(id -u)" = 0 ] && echo "user root"
    echo "max_queued_messages 1000000"
    echo "plugin $PLUGIN"
    echo "plugin_opt_oauth_introspection_url $ISSUER/token/introspection"
    echo "plugin_opt_oauth_client_id mqtt-broker"
    echo "plugin_opt_oauth_client_secret broker-secret"
} >"$WORK/mosquitto.conf"
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)

FB_PORT=$(free_port)
cat >"$WORK/fallback.toml" <<TOML
[auth]
introspection_url = "$ISSUER/token/introspection"
client_id = "mqtt-broker"
client_secret = "broker-secret"
[[listener]]
bind = "127.0.0.1:$FB_PORT"
[log]
level = "warn"
TOML
"$BROKER" --config "$WORK/fallback.toml" >"$WORK/fallback.log" 2>&1 &
PIDS+=($!)
wait_port "$MOSQ_PORT"
wait_port "$FB_PORT"

best() { # <port>: best rate of $ROUNDS runs
    local port=$1 best=0 line rate
    for _ in $(seq "$ROUNDS"); do
        line=$("$PUMP" "$port" bench "$TOKEN" "$MESSAGES" "$PAYLOAD")
        rate=${line##* }
        echo "  port $port: $line (received, seconds, msgs/s)" >&2
        [ "${rate%.*}" -gt "$best" ] && best=${rate%.*}
    done
    echo "$best"
}

echo "Mosquitto $(mosquitto -h 2>/dev/null | sed -n 's/^mosquitto version //p' | head -1) + plugin:" >&2
MOSQ_RATE=$(best "$MOSQ_PORT")
echo "fallback broker:" >&2
FB_RATE=$(best "$FB_PORT")
python3 - "$MOSQ_RATE" "$FB_RATE" "$MESSAGES" "$PAYLOAD" "$PROFILE" <<'PY'
import sys
mosq, fb, n, size, profile = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
print(f"QoS 0, 1 -> 1, {n} messages of {size} bytes, {profile} builds, best of rounds")
print(f"mosquitto + plugin : {mosq:>10,} msgs/s")
print(f"fallback broker    : {fb:>10,} msgs/s")
print(f"ratio fallback/mosquitto: {fb / mosq:.2f}" if mosq else "ratio: n/a")
PY
