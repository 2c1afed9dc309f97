#!/usr/bin/env bash
# Every check and test of the project, as CI runs them:
# formatting, lints, docs, the C header check, core unit/property tests, plugin tests behind a
# fake host, and end-to-end tests with real Mosquitto, real oidc-provider and real MQTT clients.
# Needs Debian's mosquitto, mosquitto-clients, clang, libclang-dev and Node.js 20+ (`.ci/run`
# installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in mosquitto mosquitto_passwd node npm cargo; do
    command -v "$tool" >/dev/null || { echo "missing $tool: see .ci/run for what to install" >&2; exit 1; }
done

if [ ! -d tests/idp/node_modules/oidc-provider ]; then
    npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
fi

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
# The end-to-end tests load the plugin the way Mosquitto does, and start the fallback broker,
# from target/debug.
cargo build -p mosquitto-oauth-plugin -p fallback-broker --locked
cargo test --workspace --locked

# The same plugin scenarios on Mosquitto 2.1 (from Debian unstable; delayed logins, new events).
bash tests/mosquitto-2.1/fetch.sh >/dev/null
MOSQUITTO_BIN="$PWD/target/mosquitto-2.1/mosquitto" \
    cargo test --locked -p mosquitto-oauth-e2e --test plugin_e2e --test plugin_lifecycle --test faults --test device_identity
