#!/usr/bin/env bash
# mosquitto-oauth demo: a local OAuth server (oidc-provider), Mosquitto with the plugin, a device
# publishing with its access token, and the three ways a request is refused. Everything runs on
# 127.0.0.1 and is stopped at the end. Run as root on Debian bookworm (installs what is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }

if ! command -v mosquitto >/dev/null || ! command -v mosquitto_pub >/dev/null \
    || ! dpkg -s libclang-dev >/dev/null 2>&1 || ! command -v curl >/dev/null; then
    say "Installing Mosquitto, clang and curl (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        mosquitto mosquitto-clients clang libclang-dev curl ca-certificates >/dev/null
fi
command -v node >/dev/null || { apt-get install -y -qq nodejs npm >/dev/null; }
if [ ! -d tests/idp/node_modules/oidc-provider ]; then
    say "Installing the demo OAuth server (npm ci in tests/idp)"
    npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
fi

say "Building the plugin (cargo build -p mosquitto-oauth-plugin)"
cargo build -q -p mosquitto-oauth-plugin
PLUGIN="$ROOT/target/debug/libmosquitto_oauth.so"

WORK=$(mktemp -d /tmp/mosquitto-oauth-demo.XXXXXX)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for <seconds> <command...>
    local deadline=$((SECONDS + $1)); shift
    until "$@" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "timed out waiting for: $*" >&2; return 1; }
        sleep 0.1
    done
}

say "Starting the OAuth 2.0 authorization server (oidc-provider) on 127.0.0.1"
node tests/idp/server.mjs --port 0 >"$WORK/idp.out" 2>"$WORK/idp.err" &
PIDS+=($!)
wait_for 20 grep -q IDP_READY "$WORK/idp.out"
ISSUER=$(sed -n 's/^IDP_READY //p' "$WORK/idp.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])')
note "issuer: $ISSUER"

MQTT_PORT=$(free_port)
cat >"$WORK/mosquitto.conf" <<CONF
$( [ "$(id -u)" -eq 0 ] && echo "user root" )
log_dest file $WORK/mosquitto.log
log_type error
log_type warning
log_type notice
log_type information
log_type subscribe
listener $MQTT_PORT 127.0.0.1
allow_anonymous false
plugin $PLUGIN
plugin_opt_oauth_introspection_url $ISSUER/token/introspection
plugin_opt_oauth_client_id mqtt-broker
plugin_opt_oauth_client_secret broker-secret
plugin_opt_oauth_http_timeout_ms 2000
CONF
say "Starting Mosquitto $(mosquitto -h | head -1 | awk '{print $3}') with the plugin on 127.0.0.1:$MQTT_PORT"
sed 's/^/   | /' "$WORK/mosquitto.conf" | grep -v '^   | $'
mosquitto -c "$WORK/mosquitto.conf" 2>"$WORK/mosquitto.err" &
PIDS+=($!)
wait_for 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MQTT_PORT"

say "The device 'device-1' gets an access token (client credentials grant)"
SCOPES="mqtt:write:devices/demo/# mqtt:read:devices/demo/#"
TOKEN=$(curl -sf -u device-1:device-1-secret -d grant_type=client_credentials \
    --data-urlencode "scope=$SCOPES" "$ISSUER/token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
note "scopes: $SCOPES"
note "token:  ${TOKEN:0:6}... (${#TOKEN} characters; the broker never logs it)"

say "Allowed: subscribe to devices/demo/# and publish to devices/demo/temperature"
mosquitto_sub -p "$MQTT_PORT" -i demo-sub -u device-1 -P "$TOKEN" -t 'devices/demo/#' -C 1 -W 10 -v >"$WORK/sub.out" &
SUB=$!
wait_for 10 grep -q "demo-sub 0 devices/demo/#" "$WORK/mosquitto.log"
mosquitto_pub -p "$MQTT_PORT" -i device-1 -u device-1 -P "$TOKEN" -t devices/demo/temperature -m '21.5' -q 1
wait "$SUB" || true
note "subscriber received: $(cat "$WORK/sub.out")"

say "Denied: publishing outside the grant (devices/other/temperature, MQTT 5, QoS 1)"
if out=$(mosquitto_pub -V mqttv5 -p "$MQTT_PORT" -i device-1 -u device-1 -P "$TOKEN" \
        -t devices/other/temperature -m 99 -q 1 2>&1); then
    note "mosquitto_pub: ${out:-message dropped by the broker (PUBACK reason 0x87, not authorized)}"
else
    note "mosquitto_pub: $out"
fi

say "Denied: subscribing wider than the grant (devices/#)"
out=$(mosquitto_sub -V mqttv5 -p "$MQTT_PORT" -i device-1 -u device-1 -P "$TOKEN" -t 'devices/#' -C 1 -W 2 2>&1 || true)
note "mosquitto_sub: $out"

say "Refused: connecting with a token the authorization server does not know"
out=$(mosquitto_pub -p "$MQTT_PORT" -i intruder -u device-1 -P "not-a-valid-token" -t devices/demo/x -m 1 2>&1 || true)
note "mosquitto_pub: $out"

say "What the broker logged (lines from the plugin start with 'oauth:')"
grep -E "oauth:|not authorised" "$WORK/mosquitto.log" | sed 's/^[0-9]*: /   /'

say "Done: stopping Mosquitto and the authorization server"
