#!/usr/bin/env bash
# Soak test: 1000 clients (half opaque, half JWT tokens from the test oidc-provider, 20 s
# lifetime, renewed by reconnecting before they expire) publish QoS 1 to their own subscription
# once a second for 10 minutes. Prints a line every 10 s (connected clients, messages, kicks,
# refusals, broker RSS) and at the end the messages lost, connects refused, expiry kicks and
# RSS first/last/max; the output is also written to target/bench/soak.md.
# Usage: benches/soak.sh [oauth-bench soak options, e.g. --clients 100 --duration-secs 60]
#   defaults: --clients 1000 --duration-secs 600 --token-ttl 20 --publish-ms 1000
set -euo pipefail
cd "$(dirname "$0")/.."

export MOSQUITTO_OAUTH_PROFILE=release
[ -d tests/idp/node_modules/oidc-provider ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
cargo build --release --locked -p mosquitto-oauth-plugin
cargo build --release --locked -p mosquitto-oauth-e2e --bin oauth-bench
mkdir -p target/bench
# One thread and one socket per client, plus the broker's socket per client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
target/release/oauth-bench soak --clients 1000 --duration-secs 600 --token-ttl 20 "$@" |
    tee target/bench/soak.md
