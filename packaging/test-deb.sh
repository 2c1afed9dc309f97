#!/usr/bin/env bash
# Builds the Debian packages and checks them end to end in a clean bookworm container (podman),
# on a Debian bookworm machine with no container registry (only Debian mirrors, crates.io, npm).
# Run as root: bash packaging/test-deb.sh
#
#  1. packages     bash packaging/build-deb.sh (cargo-deb, lintian)
#  2. container    the local bookworm-slim base of mosquitto/test-image.sh (debootstrap), with
#                  --network host; the test OAuth server runs on the host's 127.0.0.1
#  3. install      apt install ./mosquitto-oauth_*.deb ./fallback-broker_*.deb (Mosquitto from the
#                  Debian mirror): nothing that decides logins changes
#  4. plugin       the snippet set to the test server and enabled, Mosquitto restarted as its
#                  unit does; a token subscribe/publish, a denied publish, a refused token
#  5. fallback     its unit verified (systemd-analyze verify: systemd cannot be PID 1 in this
#                  sandbox's containers); unconfigured it refuses to start naming the option;
#                  configured, it runs as its system user and serves a token client
#  6. remove/purge apt remove keeps the conffiles and disables the snippet, so Mosquitto still
#                  starts; apt purge removes the conffiles and the broker's state
#
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian), REBUILD_BASE=1 to remake
# the base image, KEEP_WORK=1 to keep the temporary directory. Prints the time of every phase.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE_DEBIAN=localhost/mosquitto-oauth-base/debian:bookworm-slim
RUN_ID=mosquitto-oauth-deb-$$
CONTAINER=$RUN_ID

WORK=$(mktemp -d "/tmp/$RUN_ID.XXXXXX")
# shellcheck source=mosquitto/container-test-lib.sh
source mosquitto/container-test-lib.sh
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT
    phase ""
    pm rm -f -t 0 "$CONTAINER" >/dev/null 2>&1 || true
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then note "kept $WORK"; else rm -rf "$WORK"; fi
    print_timings
    if [ "$rc" -eq 0 ]; then printf '\n\033[32mPASS\033[0m: Debian packages verified\n'; else printf '\n\033[31mFAILED\033[0m (exit %s)\n' "$rc"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Runs a shell command in the container.
in_container() { pm exec "$CONTAINER" bash -euo pipefail -c "$1"; }
wait_for() { # wait_for <seconds> <command...>
    local deadline=$((SECONDS + $1)); shift
    until "$@" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { note "timed out waiting for: $*"; return 1; }
        sleep 0.2
    done
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_open() { bash -c "exec 3<>/dev/tcp/127.0.0.1/$1"; }
# round_trip <port> <topic> <payload>: a token client subscribed to devices/deb/# receives what
# another token client publishes (published again until it arrives: no log line tells when the
# subscription is in place).
round_trip() {
    mosquitto_sub -p "$1" -i deb-sub -u oauth2 -P "$TOKEN" -t 'devices/deb/#' -C 1 -W 10 >"$WORK/sub.out" &
    local sub=$! deadline=$((SECONDS + 10))
    while kill -0 "$sub" 2>/dev/null && [ $SECONDS -lt $deadline ]; do
        mosquitto_pub -p "$1" -i deb-pub -u oauth2 -P "$TOKEN" -t "$2" -m "$3" -q 1
        sleep 0.2
    done
    wait "$sub" || fail "the token subscriber on port $1 received nothing"
    [ "$(cat "$WORK/sub.out")" = "$3" ] || fail "the subscriber on port $1 got: $(cat "$WORK/sub.out")"
}

# ---------------------------------------------------------------------------------------------
phase "Prerequisites (apt, npm)"
install_prerequisites podman:podman runc:runc catatonit:catatonit debootstrap:debootstrap \
    mosquitto_pub:mosquitto-clients curl:curl node:nodejs npm:npm

# ---------------------------------------------------------------------------------------------
phase "Packages (packaging/build-deb.sh)"
bash packaging/build-deb.sh >"$WORK/build-deb.log" 2>&1 || { tail -40 "$WORK/build-deb.log"; fail "build-deb.sh failed"; }
PLUGIN_DEB=$(ls target/debian/mosquitto-oauth_*_amd64.deb)
BROKER_DEB=$(ls target/debian/fallback-broker_*_amd64.deb)
ok "$(basename "$PLUGIN_DEB"), $(basename "$BROKER_DEB"); lintian clean"

# ---------------------------------------------------------------------------------------------
phase "Clean bookworm container"
[ "${REBUILD_BASE:-0}" = 1 ] && pm rmi -f "$BASE_DEBIAN" >/dev/null 2>&1 || true
make_debian_base
# --init: an init (catatonit) as PID 1 reaps the daemons the test stops.
pm run -d --init --runtime runc --ulimit host --network host --name "$CONTAINER" "$BASE_DEBIAN" sleep infinity >/dev/null
pm cp "$PLUGIN_DEB" "$CONTAINER:/tmp/"
pm cp "$BROKER_DEB" "$CONTAINER:/tmp/"
# The base image refuses service starts (policy-rc.d), as Debian's own container images do.
# procps (pgrep, pkill) is the test's own tool, not a dependency of the packages.
in_container "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends procps" \
    >"$WORK/apt-update.log" 2>&1 || { cat "$WORK/apt-update.log"; fail "apt-get update failed"; }
ok "container $CONTAINER from $BASE_DEBIAN"

# ---------------------------------------------------------------------------------------------
phase "apt install ./mosquitto-oauth ./fallback-broker"
in_container "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq /tmp/$(basename "$PLUGIN_DEB") /tmp/$(basename "$BROKER_DEB")" \
    >"$WORK/install.log" 2>&1 || { tail -30 "$WORK/install.log"; fail "apt install failed"; }
in_container "test -f /usr/lib/mosquitto/libmosquitto_oauth.so && test -f /etc/mosquitto/mosquitto-oauth.conf"
ok "plugin at /usr/lib/mosquitto/libmosquitto_oauth.so (the Docker image's path too)"
[ -z "$(in_container 'ls /etc/mosquitto/conf.d/ | grep -v "^README$" || true')" ] || fail "installing added a file to /etc/mosquitto/conf.d"
ok "nothing added to /etc/mosquitto/conf.d: who can log in is unchanged until the snippet is enabled"
in_container "dpkg -L mosquitto-oauth" | grep -q /usr/share/doc/mosquitto-oauth/examples/token-username.conf || fail "examples missing"
in_container "id fallback-broker && test \"\$(stat -c '%U:%G %a' /etc/fallback-broker/fallback.toml)\" = 'root:fallback-broker 640'" >/dev/null \
    || fail "fallback-broker user or config permissions wrong"
ok "system user fallback-broker; /etc/fallback-broker/fallback.toml root:fallback-broker 640"

# ---------------------------------------------------------------------------------------------
phase "Plugin: snippet enabled, Mosquitto restarted"
node tests/idp/server.mjs --port 0 >"$WORK/idp.out" 2>"$WORK/idp.err" &
PIDS+=($!)
wait_for 20 grep -q IDP_READY "$WORK/idp.out"
ISSUER=$(sed -n 's/^IDP_READY //p' "$WORK/idp.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["issuer"])')
MQTT_PORT=$(free_port)
# What an operator does: set the server, enable the snippet, restart (here as the unit's
# ExecStartPre/ExecStart do: systemd cannot run in this sandbox's containers).
in_container "
printf 'broker-secret' > /etc/mosquitto/oauth-client-secret
chown mosquitto:mosquitto /etc/mosquitto/oauth-client-secret && chmod 600 /etc/mosquitto/oauth-client-secret
sed -i -e 's|^listener 1883\$|listener $MQTT_PORT 127.0.0.1|' \
    -e 's|^#plugin_opt_oauth_introspection_url .*|plugin_opt_oauth_introspection_url $ISSUER/token/introspection|' \
    -e 's|^#plugin_opt_oauth_client_id .*|plugin_opt_oauth_client_id mqtt-broker|' \
    -e 's|^#plugin_opt_oauth_client_secret_file .*|plugin_opt_oauth_client_secret_file /etc/mosquitto/oauth-client-secret|' \
    /etc/mosquitto/mosquitto-oauth.conf
ln -s ../mosquitto-oauth.conf /etc/mosquitto/conf.d/oauth.conf
mkdir -m 740 -p /var/log/mosquitto /run/mosquitto && chown mosquitto /var/log/mosquitto /run/mosquitto
mosquitto -c /etc/mosquitto/mosquitto.conf -d 2>/dev/null"
wait_for 10 port_open "$MQTT_PORT" || fail "Mosquitto did not start: $(in_container 'cat /var/log/mosquitto/mosquitto.log')"
in_container "grep -q 'oauth: plugin ready' /var/log/mosquitto/mosquitto.log" || fail "plugin not loaded: $(in_container 'cat /var/log/mosquitto/mosquitto.log')"
ok "Mosquitto $(in_container 'dpkg-query -W -f="\${Version}" mosquitto') with the plugin on 127.0.0.1:$MQTT_PORT"

TOKEN=$(curl -sf -u device-1:device-1-secret -d grant_type=client_credentials \
    --data-urlencode "scope=mqtt:write:devices/deb/# mqtt:read:devices/deb/#" "$ISSUER/token" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
round_trip "$MQTT_PORT" devices/deb/temperature 21.5
ok "token publish and subscribe: devices/deb/temperature delivered"
mosquitto_pub -V mqttv5 -p "$MQTT_PORT" -i deb-pub -u oauth2 -P "$TOKEN" -t devices/other/x -m 1 -q 1 >"$WORK/denied.out" 2>&1 || true
in_container "grep -q 'denied Write on \"devices/other/x\" for \"deb-pub\": no matching grant' /var/log/mosquitto/mosquitto.log" \
    || fail "no denial logged: $(cat "$WORK/denied.out")"
ok "publish outside the grant denied ($(tr -d '\n' <"$WORK/denied.out"))"
if mosquitto_pub -p "$MQTT_PORT" -i intruder -u oauth2 -P not-a-token -t devices/deb/x -m 1 >"$WORK/refused.out" 2>&1; then
    fail "an unknown token was accepted"
fi
ok "unknown token refused ($(grep -o 'not authori[sz]ed' "$WORK/refused.out" | head -1))"

# ---------------------------------------------------------------------------------------------
phase "fallback-broker: unit, start, token client"
in_container "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1
systemd-analyze verify /lib/systemd/system/fallback-broker.service" >"$WORK/verify.log" 2>&1 \
    || { cat "$WORK/verify.log"; fail "systemd-analyze verify failed"; }
ok "systemd-analyze verify fallback-broker.service: no complaint"
in_container "systemctl is-enabled fallback-broker.service" | grep -q enabled || fail "unit not enabled"
ok "unit enabled at install (started at boot)"
unconfigured=$(in_container "runuser -u fallback-broker -- /usr/bin/fallback-broker --config /etc/fallback-broker/fallback.toml 2>&1 || echo exit=\$?")
grep -q "auth.introspection_url is required" <<<"$unconfigured" && grep -q "exit=2" <<<"$unconfigured" \
    || fail "the unconfigured broker did not refuse to start: $unconfigured"
ok "unconfigured, it refuses to start: $(head -1 <<<"$unconfigured")"
BROKER_PORT=$(free_port)
in_container "
printf 'broker-secret' > /etc/fallback-broker/client-secret
chown root:fallback-broker /etc/fallback-broker/client-secret && chmod 640 /etc/fallback-broker/client-secret
sed -i -e 's|^# introspection_url = .*|introspection_url = \"$ISSUER/token/introspection\"|' \
    -e 's|^# client_id = .*|client_id = \"mqtt-broker\"|' \
    -e 's|^# client_secret = .*|client_secret_file = \"/etc/fallback-broker/client-secret\"|' \
    -e 's|^bind = \"0.0.0.0:1883\"|bind = \"127.0.0.1:$BROKER_PORT\"|' /etc/fallback-broker/fallback.toml"
pm exec -d "$CONTAINER" bash -c "runuser -u fallback-broker -- /usr/bin/fallback-broker \
    --config /etc/fallback-broker/fallback.toml >/tmp/fallback-broker.log 2>&1" >/dev/null
wait_for 15 port_open "$BROKER_PORT"
round_trip "$BROKER_PORT" devices/deb/fallback up
# What `systemctl reload` does (the unit's ExecReload): SIGHUP to the main process.
in_container "pkill -HUP -x fallback-broker"
wait_for 10 in_container "grep -q 'reload: token cache flushed' /tmp/fallback-broker.log"
round_trip "$BROKER_PORT" devices/deb/fallback still-up
ok "fallback-broker as user fallback-broker on 127.0.0.1:$BROKER_PORT: token publish and subscribe, before and after a reload (SIGHUP)"
in_container "pkill -x fallback-broker || true"

# ---------------------------------------------------------------------------------------------
phase "apt remove, apt purge"
in_container "pkill -x mosquitto; while pgrep -x mosquitto >/dev/null; do sleep 0.1; done"
in_container "DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq mosquitto-oauth fallback-broker" >"$WORK/remove.log" 2>&1 \
    || { cat "$WORK/remove.log"; fail "apt remove failed"; }
in_container "test ! -e /usr/lib/mosquitto/libmosquitto_oauth.so && test ! -e /usr/bin/fallback-broker"
in_container "test -f /etc/mosquitto/mosquitto-oauth.conf && test -f /etc/fallback-broker/fallback.toml" || fail "remove dropped a conffile"
in_container "test ! -e /etc/mosquitto/conf.d/oauth.conf && test ! -L /etc/mosquitto/conf.d/oauth.conf" || fail "the snippet is still enabled"
in_container "dpkg-query -W -f='\${db:Status-Abbrev}' mosquitto-oauth fallback-broker" | grep -q '^rc' || fail "packages not in state rc"
ok "remove: programs gone, conffiles kept (state rc), snippet disabled ($(grep -c 'disabled /etc/mosquitto/conf.d/oauth.conf' "$WORK/remove.log") line told the user)"
PLAIN_PORT=$(free_port)
in_container "printf 'listener $PLAIN_PORT 127.0.0.1\nallow_anonymous true\n' > /etc/mosquitto/conf.d/test.conf; mosquitto -c /etc/mosquitto/mosquitto.conf -d 2>/dev/null"
wait_for 10 port_open "$PLAIN_PORT"
mosquitto_pub -p "$PLAIN_PORT" -t after/remove -m 1 || fail "Mosquitto does not work after the plugin's removal"
ok "Mosquitto starts and serves without the plugin"
in_container "pkill -x mosquitto; rm /etc/mosquitto/conf.d/test.conf"
in_container "DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq mosquitto-oauth fallback-broker" >"$WORK/purge.log" 2>&1 \
    || { cat "$WORK/purge.log"; fail "apt purge failed"; }
# The client-secret files the test wrote itself are the administrator's: they stay, as dpkg
# leaves files it did not install.
left=$(in_container "for path in /etc/mosquitto/mosquitto-oauth.conf /etc/fallback-broker/fallback.toml \
    /var/lib/fallback-broker /usr/share/doc/mosquitto-oauth /usr/share/doc/fallback-broker \
    /usr/lib/systemd/system/fallback-broker.service \
    /etc/systemd/system/multi-user.target.wants/fallback-broker.service; do
    if [ -e \$path ] || [ -L \$path ]; then echo \$path; fi; done")
[ -z "$left" ] || fail "purge left: $left"
if in_container "dpkg-query -W mosquitto-oauth fallback-broker" >/dev/null 2>&1; then fail "dpkg still knows the packages"; fi
in_container "test -f /etc/mosquitto/mosquitto.conf" || fail "purge touched Mosquitto's own configuration"
ok "purge: conffiles, unit links, state directory gone; Mosquitto's own files untouched; the system user stays (Debian policy)"
