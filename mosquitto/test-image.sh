#!/usr/bin/env bash
# Builds the mosquitto-oauth image with podman and checks it end to end, on a Debian bookworm
# machine with no Docker engine and no container registry (only Debian mirrors, crates.io and
# npm). Run as root: bash mosquitto/test-image.sh
#
#  1. prerequisites  apt: podman runc debootstrap mosquitto-clients curl nodejs npm;
#                    npm ci for the test OAuth server (tests/idp)
#  2. base images    no base image can be pulled, so two are made locally (kept for later runs):
#                    debian  debootstrap --variant=minbase bookworm, trimmed like bookworm-slim
#                    rust    that image plus this machine's Rust toolchain (rustc --print sysroot)
#                            and local CAs (/usr/local/share/ca-certificates),
#                            because rustup cannot download inside a build here
#  3. image          podman build of mosquitto/Dockerfile, the same multi-stage path as on a
#                    Docker host, with RUST_IMAGE/DEBIAN_IMAGE pointing at the local bases
#  4. checks         the test OAuth server on 127.0.0.1, then three containers (--network host):
#                    default config (token devices on one port, the "human" operator on another),
#                    examples/jwt.conf and examples/token-username.conf, the fallback broker
#                    binary; then two configuration errors must stop the container
#
# Environment: IMAGE (default localhost/mosquitto-oauth:test), REBUILD_BASE=1 to remake the
# base images, DEBIAN_MIRROR (default http://deb.debian.org/debian), KEEP_WORK=1 to keep the
# temporary directory (logs, rendered files). Prints the time of every phase.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${IMAGE:-localhost/mosquitto-oauth:test}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_DEBIAN=localhost/mosquitto-oauth-base/debian:bookworm-slim
RUN_ID=mosquitto-oauth-test-$$

WORK=$(mktemp -d "/tmp/$RUN_ID.XXXXXX")
# shellcheck source=mosquitto/container-test-lib.sh
source mosquitto/container-test-lib.sh
PIDS=()
CONTAINERS=()
SECRETS=()
cleanup() {
    local rc=$?
    trap - EXIT
    phase ""
    for name in "${CONTAINERS[@]}"; do pm rm -f -t 0 "$name" >/dev/null 2>&1 || true; done
    for name in "${SECRETS[@]}"; do pm secret rm "$name" >/dev/null 2>&1 || true; done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then note "kept $WORK"; else rm -rf "$WORK"; fi
    print_timings
    if [ "$rc" -eq 0 ]; then
        printf '\n\033[32mPASS\033[0m: image %s verified\n' "$IMAGE"
    else
        printf '\n\033[31mFAILED\033[0m (exit %s)\n' "$rc"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# ---------------------------------------------------------------------------------------------
phase "Prerequisites (apt, npm)"

install_prerequisites podman:podman runc:runc debootstrap:debootstrap \
    mosquitto_pub:mosquitto-clients curl:curl node:nodejs npm:npm
command -v rustc >/dev/null || fail "rustc not found: the local Rust base image copies this machine's toolchain (install it with rustup)"
note "$(podman --version), $(rustc --version)"

# ---------------------------------------------------------------------------------------------
phase "Base images (debootstrap, Rust toolchain)"

RUST_VERSION=$(rustc --version | awk '{print $2}')
BASE_RUST=localhost/mosquitto-oauth-base/rust:$RUST_VERSION-bookworm
if [ "${REBUILD_BASE:-0}" = 1 ]; then
    pm rmi -f "$BASE_RUST" "$BASE_DEBIAN" >/dev/null 2>&1 || true
fi

if ! pm image exists "$BASE_DEBIAN"; then
    pm rmi -f "$BASE_RUST" >/dev/null 2>&1 || true # built on the previous Debian base
fi
make_debian_base

if pm image exists "$BASE_RUST"; then
    note "$BASE_RUST exists"
else
    # Laid out like the official rust image (CARGO_HOME=/usr/local/cargo, cargo on PATH), but
    # the toolchain is a copy of this machine's, without rustup and without its documentation.
    ctx=$WORK/rust-base
    mkdir -p "$ctx/rust"
    sysroot=$(rustc --print sysroot)
    tar -C "$sysroot" --exclude=./share/doc -c . | tar -C "$ctx/rust" -x
    # Local CAs of this machine (e.g. of a TLS-intercepting egress proxy), so that cargo in the
    # build stage reaches crates.io like cargo on the host does; the Dockerfile's ca-certificates
    # install picks them up. They stay in the build stage, never in the runtime image.
    mkdir -p "$ctx/local-ca"
    if [ -d /usr/local/share/ca-certificates ]; then
        cp -r /usr/local/share/ca-certificates/. "$ctx/local-ca/"
    fi
    cat >"$ctx/Containerfile" <<CONTAINERFILE
FROM $BASE_DEBIAN
ENV CARGO_HOME=/usr/local/cargo \\
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    RUST_VERSION=$RUST_VERSION
COPY rust /usr/local/rust
COPY local-ca /usr/local/share/ca-certificates
RUN mkdir -p /usr/local/cargo/bin \\
 && ln -s /usr/local/rust/bin/cargo /usr/local/rust/bin/rustc /usr/local/rust/bin/rustdoc /usr/local/cargo/bin/ \\
 && rustc --version && cargo --version
CONTAINERFILE
    pm build --runtime runc --network host --pull=never -f "$ctx/Containerfile" -t "$BASE_RUST" "$ctx" \
        >"$WORK/rust-base.log" 2>&1 || { tail -20 "$WORK/rust-base.log"; fail "building $BASE_RUST failed"; }
    rm -rf "$ctx"
    note "made $BASE_RUST"
fi

# ---------------------------------------------------------------------------------------------
phase "Image build (podman build)"

pm build --runtime runc --network host --pull=never \
    --build-arg "RUST_IMAGE=$BASE_RUST" --build-arg "DEBIAN_IMAGE=$BASE_DEBIAN" \
    -f mosquitto/Dockerfile -t "$IMAGE" . >"$WORK/build.log" 2>&1 \
    || { tail -40 "$WORK/build.log"; fail "podman build failed (log: $WORK/build.log)"; }
note "$IMAGE: $(pm image inspect "$IMAGE" --format '{{.Size}}' | awk '{printf "%.0f MB", $1/1e6}')"
note "user $(pm image inspect "$IMAGE" --format '{{.Config.User}}'), ports $(pm image inspect "$IMAGE" --format '{{json .Config.ExposedPorts}}'), volumes $(pm image inspect "$IMAGE" --format '{{json .Config.Volumes}}')"
pm run --rm --runtime runc --ulimit host --entrypoint "" "$IMAGE" \
    sh -c 'mosquitto -h | head -1; ls -l /usr/lib/mosquitto/libmosquitto_oauth.so; ldd /usr/lib/mosquitto/libmosquitto_oauth.so' \
    >"$WORK/inspect.out"
head -2 "$WORK/inspect.out" | sed 's/^/   /'
! grep -q "not found" "$WORK/inspect.out" || { cat "$WORK/inspect.out"; fail "the plugin has unresolved libraries"; }

# ---------------------------------------------------------------------------------------------
phase "Test OAuth server (tests/idp)"

free_port() { node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
json_field() { node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const v=JSON.parse(s)[process.argv[1]];if(v===undefined)process.exit(1);console.log(v)})' "$1"; }
wait_for() { # wait_for <seconds> <command...>
    local deadline=$((SECONDS + $1)); shift
    until "$@" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

node tests/idp/server.mjs --port 0 >"$WORK/idp.out" 2>"$WORK/idp.err" &
PIDS+=($!)
wait_for 30 grep -q IDP_READY "$WORK/idp.out" || { cat "$WORK/idp.err"; fail "the test OAuth server did not start"; }
ISSUER=$(sed -n 's/^IDP_READY //p' "$WORK/idp.out" | json_field issuer)
note "issuer $ISSUER"

token() { # token <device> <scopes> [curl args...]: a client-credentials access token
    curl -sf -u "$1:$1-secret" -d grant_type=client_credentials --data-urlencode "scope=$2" \
        "${@:3}" "$ISSUER/token" | json_field access_token
}
introspections() { curl -sf "$ISSUER/__test/stats" | json_field introspections; }

# ---------------------------------------------------------------------------------------------
# Container and MQTT helpers

start_container() { # start_container <name> <device port> <operator port> <podman run args...>
    local name=$1 dport=$2 oport=$3; shift 3
    CONTAINERS+=("$name")
    pm run -d --name "$name" --runtime runc --ulimit host --network host \
        -e MQTT_BIND_ADDRESS=127.0.0.1 -e MQTT_DEVICE_PORT="$dport" -e MQTT_OPERATOR_PORT="$oport" \
        "$@" >/dev/null
    local port
    for port in "$dport" "$oport"; do
        [ -n "$port" ] || continue
        if ! wait_for 20 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port"; then
            pm logs "$name" 2>&1 | tail -30
            fail "$name: nothing listens on 127.0.0.1:$port"
        fi
    done
    note "$name listening on 127.0.0.1:$dport${oport:+ and 127.0.0.1:$oport}"
}

SUBS=()
start_sub() { # start_sub <label> <mosquitto_sub args...>: waits for one message in the background
    local label=$1; shift
    mosquitto_sub -h 127.0.0.1 -C 1 -W 30 -v "$@" >"$WORK/$label.out" 2>"$WORK/$label.err" &
    PIDS+=($!)
    SUBS+=("$label")
}

# deliver <topic> <payload> <mosquitto_pub args...>: publishes every 0.2 s until every started
# subscriber got "<topic> <payload>" (subscriptions take effect asynchronously), then checks.
deliver() {
    local topic=$1 payload=$2; shift 2
    local deadline=$((SECONDS + 20)) label done_all out
    while :; do
        out=$(mosquitto_pub -h 127.0.0.1 -q 1 -t "$topic" -m "$payload" "$@" 2>&1) \
            || fail "publish to $topic refused: $out"
        done_all=1
        for label in "${SUBS[@]}"; do
            grep -qxF "$topic $payload" "$WORK/$label.out" || done_all=0
        done
        [ $done_all = 1 ] && break
        [ $SECONDS -lt $deadline ] || break
        sleep 0.2
    done
    for label in "${SUBS[@]}"; do
        grep -qxF "$topic $payload" "$WORK/$label.out" \
            || fail "$label did not receive $topic: $(cat "$WORK/$label.out" "$WORK/$label.err")"
        ok "$label received '$topic $payload'"
    done
    SUBS=()
}

refused() { # refused <what> <mosquitto_pub args...>: the CONNECT must be refused
    local what=$1 out; shift
    if out=$(mosquitto_pub -h 127.0.0.1 -t probe -m x "$@" 2>&1); then
        fail "$what: the broker accepted the connection"
    fi
    grep -q "not authori" <<<"$out" || fail "$what: unexpected answer: $out"
    ok "$what: refused ($(head -1 <<<"$out"))"
}

sub_denied() { # sub_denied <what> <mosquitto_sub args...>: MQTT 5 SUBACK must refuse the filter
    local what=$1 out; shift
    out=$(mosquitto_sub -h 127.0.0.1 -V mqttv5 -C 1 -W 3 "$@" 2>&1 || true)
    grep -qi "denied\|not authori" <<<"$out" || fail "$what: expected a refused subscription, got: $out"
    ok "$what: refused ($out)"
}

no_secrets_in_logs() { # no_secrets_in_logs <container> <secrets...>
    local name=$1 logs; shift
    logs=$(pm logs "$name" 2>&1)
    grep -q "oauth:" <<<"$logs" || fail "$name: no oauth: line in the broker log"
    for secret in "$@"; do
        ! grep -qF -- "$secret" <<<"$logs" || fail "$name: a token or secret appears in the log"
    done
    ok "$name: plugin log lines present, no token or secret in the log"
}

HUMAN_PASSWORD='op: s3cret & "quoted"'

# ---------------------------------------------------------------------------------------------
phase "Check mosquitto.conf (device and operator ports)"

D1=$(free_port); O1=$(free_port)
pm secret rm "$RUN_ID" >/dev/null 2>&1 || true
printf 'broker-secret\n' | pm secret create "$RUN_ID" - >/dev/null
SECRETS+=("$RUN_ID")
start_container "$RUN_ID-default" "$D1" "$O1" \
    --secret "$RUN_ID,target=oauth_client_secret" \
    -e OAUTH_INTROSPECTION_URL="$ISSUER/token/introspection" -e OAUTH_CLIENT_ID=mqtt-broker \
    -e MQTT_HUMAN_PASSWORD="$HUMAN_PASSWORD" \
    "$IMAGE"
C=$RUN_ID-default

uid=$(pm exec "$C" stat -c %u /proc/1)
[ "$uid" = 1883 ] || fail "mosquitto runs as uid $uid, expected 1883 (mosquitto)"
pm exec "$C" sh -c '! grep -qa -e MQTT_HUMAN_PASSWORD= -e OAUTH_CLIENT_SECRET= /proc/1/environ' \
    || fail "a secret was left in the broker's environment"
pm exec "$C" grep -q '^plugin_opt_oauth_client_secret_file /run/secrets/oauth_client_secret$' \
    /run/mosquitto-oauth/mosquitto.conf || fail "the rendered config does not use the mounted secret"
ok "broker is PID 1 as uid 1883 (mosquitto); secrets only in files"

T1=$(token device-1 "mqtt:write:devices/device-1/# mqtt:read:devices/device-1/#")
T2=$(token device-2 "mqtt:read:devices/#")
start_sub device-2-token -p "$D1" -i device-2 -u device-2 -P "$T2" -t 'devices/+/temperature'
start_sub human -p "$O1" -u human -P "$HUMAN_PASSWORD" -t 'devices/#'
deliver devices/device-1/temperature 21.5 -p "$D1" -i device-1 -u device-1 -P "$T1"

start_sub device-1-token -p "$D1" -i device-1-sub -u device-1 -P "$T1" -t 'devices/device-1/#'
deliver devices/device-1/cmd reboot -p "$O1" -i operator -u human -P "$HUMAN_PASSWORD"

sub_denied "device-1 subscribing outside its read grant (devices/#)" \
    -p "$D1" -i device-1 -u device-1 -P "$T1" -t 'devices/#'
refused "unknown token on the device port" -p "$D1" -i intruder -u device-1 -P not-a-valid-token
refused "human's password on the device port" -p "$D1" -u human -P "$HUMAN_PASSWORD"
refused "wrong human password on the operator port" -p "$O1" -u human -P wrong
refused "device token on the operator port" -p "$O1" -u device-1 -P "$T1"
refused "anonymous on the operator port" -p "$O1"
no_secrets_in_logs "$C" "$T1" "$T2" broker-secret "$HUMAN_PASSWORD"
pm exec "$C" test -s /mosquitto/log/mosquitto.log || fail "/mosquitto/log/mosquitto.log is empty"
ok "log file /mosquitto/log/mosquitto.log written"
pm rm -f -t 0 "$C" >/dev/null

# ---------------------------------------------------------------------------------------------
phase "Check examples/jwt.conf (local JWT verification)"

D2=$(free_port); O2=$(free_port)
start_container "$RUN_ID-jwt" "$D2" "$O2" \
    -e OAUTH_ISSUER="$ISSUER" -e OAUTH_AUDIENCE=urn:mqtt:broker -e OAUTH_JWKS_URL="$ISSUER/jwks" \
    "$IMAGE" mosquitto -c /usr/share/mosquitto-oauth/examples/jwt.conf
C=$RUN_ID-jwt
J1=$(token device-1 "mqtt:write:devices/device-1/# mqtt:read:devices/device-1/#" -d resource=urn:mqtt:broker)
[ "$(tr -cd . <<<"$J1" | wc -c)" = 2 ] || fail "the test server did not issue a JWT"
before=$(introspections)
start_sub device-1-jwt -p "$D2" -i device-1-sub -u device-1 -P "$J1" -t 'devices/device-1/#'
deliver devices/device-1/state up -p "$D2" -i device-1 -u device-1 -P "$J1"
[ "$(introspections)" = "$before" ] || fail "JWT mode introspected a token"
ok "no introspection call in JWT mode"
J_OTHER=$(token device-1 "mqtt:write:devices/device-1/#" -d resource=urn:mqtt:other)
refused "JWT for another audience" -p "$D2" -i device-1 -u device-1 -P "$J_OTHER"
no_secrets_in_logs "$C" "$J1" "$J_OTHER"
pm rm -f -t 0 "$C" >/dev/null

# ---------------------------------------------------------------------------------------------
phase "Check examples/token-username.conf (one port)"

D3=$(free_port)
start_container "$RUN_ID-token-username" "$D3" "" \
    -e OAUTH_INTROSPECTION_URL="$ISSUER/token/introspection" -e OAUTH_CLIENT_ID=mqtt-broker \
    -e OAUTH_CLIENT_SECRET=broker-secret -e MQTT_HUMAN_PASSWORD="$HUMAN_PASSWORD" \
    "$IMAGE" mosquitto -c /usr/share/mosquitto-oauth/examples/token-username.conf
C=$RUN_ID-token-username
T3=$(token device-3 "mqtt:write:devices/device-3/# mqtt:read:devices/device-3/#")
start_sub human-same-port -p "$D3" -i operator -u human -P "$HUMAN_PASSWORD" -t 'devices/#'
start_sub device-3-token -p "$D3" -i device-3-sub -u oauth2 -P "$T3" -t 'devices/device-3/#'
deliver devices/device-3/temperature 19 -p "$D3" -i device-3 -u oauth2 -P "$T3"
before=$(introspections)
refused "wrong human password" -p "$D3" -u human -P wrong
mosquitto_pub -h 127.0.0.1 -p "$D3" -u human -P "$HUMAN_PASSWORD" -t devices/x -m 1 \
    || fail "human login on the shared port refused"
[ "$(introspections)" = "$before" ] || fail "a password login was sent to the authorization server"
ok "password logins never reach the authorization server"
refused "token under another username" -p "$D3" -i device-3 -u device-3 -P "$T3"
no_secrets_in_logs "$C" "$T3" broker-secret "$HUMAN_PASSWORD"
pm exec "$C" sh -c '! grep -rqF broker-secret /run/mosquitto-oauth/token-username.conf' \
    || fail "the client secret was written into the rendered config"
ok "OAUTH_CLIENT_SECRET went to a file, not into the config"

# ---------------------------------------------------------------------------------------------
phase "Check the fallback broker binary (no Mosquitto)"

D4=$(free_port)
cat >"$WORK/fallback.toml" <<TOML
[auth]
introspection_url = "$ISSUER/token/introspection"
client_id = "mqtt-broker"
client_secret_file = "/run/secrets/oauth_client_secret"
token_username = "oauth2"

[[listener]]
type = "tcp"
bind = "127.0.0.1:$D4"
TOML
chmod 0644 "$WORK/fallback.toml"
start_container "$RUN_ID-fallback" "$D4" "" \
    --secret "$RUN_ID,target=oauth_client_secret" \
    -v "$WORK/fallback.toml:/etc/fallback-broker.toml:ro" --entrypoint /usr/local/bin/fallback-broker \
    "$IMAGE" --config /etc/fallback-broker.toml
C=$RUN_ID-fallback
T4=$(token device-1 "mqtt:write:devices/device-4/# mqtt:read:devices/device-4/#")
start_sub device-4-token -p "$D4" -i device-4-sub -u oauth2 -P "$T4" -t 'devices/device-4/#'
deliver devices/device-4/temperature 18 -p "$D4" -i device-4 -u oauth2 -P "$T4"
sub_denied "device-4 subscribing outside its read grant (devices/#)" \
    -p "$D4" -i device-4 -u oauth2 -P "$T4" -t 'devices/#'
refused "unknown token at the fallback broker" -p "$D4" -i intruder -u oauth2 -P not-a-valid-token
logs=$(pm logs "$C" 2>&1)
grep -q "accepted: token verified by introspection" <<<"$logs" || fail "$C: no login line in the log: $logs"
! grep -qF -e "$T4" -e broker-secret <<<"$logs" || fail "$C: a token or secret appears in the log"
ok "$C: login lines logged, no token or secret in the log"
pm rm -f -t 0 "$C" >/dev/null

# ---------------------------------------------------------------------------------------------
phase "Check configuration errors stop the container"

stops() { # stops <what> <expected output> <podman run args...>
    local what=$1 expected=$2 out rc=0 name=$RUN_ID-stops-${#CONTAINERS[@]}; shift 2
    CONTAINERS+=("$name")
    out=$(timeout 30 podman --cgroup-manager=cgroupfs run --name "$name" --rm --runtime runc \
        --ulimit host --network host "$@" 2>&1) || rc=$?
    if [ "$rc" -eq 0 ] || [ "$rc" -eq 124 ]; then
        fail "$what: the container did not stop (exit $rc): $out"
    fi
    grep -qF -- "$expected" <<<"$out" || fail "$what: expected '$expected' in: $out"
    ok "$what: exit $rc, '$(grep -F -- "$expected" <<<"$out" | head -1 | sed 's/^[0-9T:-]*: //')'"
}
stops "jwt.conf without OAUTH_ISSUER" "OAUTH_ISSUER must be set" \
    "$IMAGE" mosquitto -c /usr/share/mosquitto-oauth/examples/jwt.conf
stops "a bad option value" "oauth: configuration error: option oauth_cache_ttl" \
    -e MQTT_BIND_ADDRESS=127.0.0.1 -e MQTT_DEVICE_PORT="$(free_port)" -e MQTT_OPERATOR_PORT="$(free_port)" \
    -e OAUTH_INTROSPECTION_URL="$ISSUER/token/introspection" -e OAUTH_CLIENT_ID=mqtt-broker \
    -e OAUTH_CLIENT_SECRET=broker-secret -e OAUTH_CACHE_TTL=soon "$IMAGE"
