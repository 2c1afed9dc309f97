#!/usr/bin/env bash
# Benchmark suite: prints Markdown tables and writes them to target/bench/results.md.
#   A. QoS 0 throughput 1 publisher -> 1 subscriber, every publish and delivery through the
#      plugin's ACL check (introspection, and JWTs against a key file), as a ratio to the same
#      Mosquitto without auth (a warm-up round, then alternating rounds, median of each round's
#      ratio to the no-auth round of its cycle; Mosquitto brokers on CPU 0, the load generator
#      on CPU 1), with password_file + acl_file and the dynamic-security plugin as reference
#      rows, and the fallback broker (its rate relative to Mosquitto with the plugin). Then F2:
#      the fallback broker relative to its own engine without auth
#      (examples/engine_without_auth.rs), each on CPU 0 alone, the load generator on CPU 1. Then
#      what a plugin thread, ended or alive, adds to the broker thread's calloc/free and
#      write/read.
#   B. CONNECT/CONNACK/DISCONNECT rate, one at a time: no auth, one opaque token reused, distinct
#      JWTs (local verification), distinct opaque tokens (one introspection each), with the calls
#      counted at the authorization server.
#   C. Round-trip latency of a connected client (an open-loop probe publishing to its own
#      subscription every 1 ms) while cold-token clients connect: 100 against an authorization
#      server answering at once and after 100 ms, and a burst of 200 against one answering after
#      200 ms; on Mosquitto 2.0 (logins on the broker thread; the default wait budget and 5000
#      ms) and 2.1 (delayed logins), when tests/mosquitto-2.1/fetch.sh can fetch 2.1.
#   D. Broker RSS per cached token (distinct locally signed JWTs, each connected once) and after
#      connect/disconnect cycles of one token, with a no-auth broker as reference.
#   E. (--scale only) Scale: 1 000, 5 000 and 15 000 idle token clients (half JWT, half opaque)
#      on Mosquitto with the plugin and as many on Mosquitto without auth: RSS per client,
#      connect time, throughput with them idle, a revalidation round's length and request rate
#      at the authorization server, a probe's round trips during the round; the fallback
#      broker's RSS per client with the same clients.
#   F. (--cluster only) The fallback broker alone and as a 3-node cluster on loopback: QoS 0
#      throughput and latency on one node and across nodes, connect rate per node.
#   Core micro-benchmarks (ACL decision, cache hit, JWT verification): criterion.
# Usage: benches/run.sh [--quick]   (the soak test is separate: benches/soak.sh)
#        benches/run.sh --scale     (E alone, about 6 minutes)
#        benches/run.sh --cluster   (F's cluster rows alone, about 4 minutes)
set -euo pipefail
cd "$(dirname "$0")/.."

# A's rounds are short and the machine noisy: more of them for a steadier median.
messages=200000 rounds=9 connect_rounds=7 clients=100 burst_clients=200 burst_delay=200
connects=2000 tokens=100000 cycles=50000
if [ "${1:-}" = "--quick" ]; then
    messages=20000 rounds=3 connect_rounds=3 clients=50 burst_clients=50 burst_delay=100
    connects=500 tokens=20000 cycles=10000
fi

export MOSQUITTO_OAUTH_PROFILE=release
if [ "${1:-}" = "--scale" ]; then
    cargo build --release --locked -p mosquitto-oauth-plugin -p fallback-broker
    cargo build --release --locked -p mosquitto-oauth-e2e --bin oauth-bench
    mkdir -p target/bench
    {
        echo "## E. Scale: idle token clients, Mosquitto with the plugin against Mosquitto without auth"
        echo
        target/release/oauth-bench scale --clients 1000,5000,15000 --messages 100000 --rounds 3 \
            --revocation-clients 10000 --fallback
    } | tee target/bench/scale.md
    echo "written to target/bench/scale.md" >&2
    exit 0
fi
if [ "${1:-}" = "--cluster" ]; then
    [ -d tests/idp/node_modules/oidc-provider ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
    cargo build --release --locked -p fallback-broker
    cargo build --release --locked -p mosquitto-oauth-e2e --bin oauth-bench
    mkdir -p target/bench
    {
        echo "## F. The fallback broker as a 3-node cluster"
        echo
        target/release/oauth-bench cluster --messages 100000 --rounds 5 --connects 300
    } | tee target/bench/cluster.md
    echo "written to target/bench/cluster.md" >&2
    exit 0
fi
[ -d tests/idp/node_modules/oidc-provider ] || npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
cargo build --release --locked -p mosquitto-oauth-plugin -p fallback-broker
cargo build --release --locked -p fallback-broker --example engine_without_auth
cargo build --release --locked -p mosquitto-oauth-e2e --bin oauth-bench
bench=target/release/oauth-bench
out=target/bench/results.md
mkdir -p target/bench

{
    echo "# mosquitto-oauth benchmarks"
    echo
    echo "$(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(mosquitto -h | head -1)"
    echo
    echo "## A. Throughput, QoS 0, 1 -> 1, $messages x 64 B, median of $rounds alternating rounds"
    echo
    $bench throughput --messages "$messages" --rounds "$rounds" --fallback
    echo
    echo "## F2. The fallback broker / its engine without auth, QoS 0, 1 -> 1, 500000 x 64 B, median of 15 alternating rounds"
    echo
    $bench f2 --messages 500000 --rounds 15
    echo
    echo "What a plugin thread costs the broker thread's allocations and system calls (fastest of 5):"
    echo
    $bench thread-cost
    echo
    echo "## B. Connect rate, CONNECT/CONNACK/DISCONNECT one at a time, $connects per round, median of $connect_rounds alternating rounds"
    echo
    $bench connect-rate --connects "$connects" --rounds "$connect_rounds"
    echo
    echo "## C. Connected client's round trip (open-loop probe, a message every 1 ms) while clients connect with cold tokens"
    echo
    mosquitto21=""
    if bash tests/mosquitto-2.1/fetch.sh >/dev/null 2>&1; then
        mosquitto21="$PWD/target/mosquitto-2.1/mosquitto"
    fi
    header=1
    storm_row() {
        if [ "$header" = 1 ]; then $bench storm "$@"; header=0; else $bench storm "$@" | tail -n 1; fi
    }
    for delay in 0 100; do
        storm_row --clients "$clients" --idp-delay-ms "$delay"
        storm_row --clients "$clients" --idp-delay-ms "$delay" --login-wait-budget-ms 5000
        [ -z "$mosquitto21" ] || storm_row --clients "$clients" --idp-delay-ms "$delay" --mosquitto "$mosquitto21"
    done
    storm_row --clients "$burst_clients" --idp-delay-ms "$burst_delay"
    storm_row --clients "$burst_clients" --idp-delay-ms "$burst_delay" --login-wait-budget-ms 5000
    [ -z "$mosquitto21" ] || storm_row --clients "$burst_clients" --idp-delay-ms "$burst_delay" --mosquitto "$mosquitto21"
    [ -n "$mosquitto21" ] || echo "(Mosquitto 2.1 could not be fetched: 2.1 rows skipped)"
    echo
    echo "## D. Broker memory: $tokens distinct cached tokens, then $cycles connect/disconnect cycles of one token"
    echo
    $bench memory --tokens "$tokens" --cycles "$cycles"
    echo
    echo "## Core micro-benchmarks (criterion medians)"
    echo
    echo "| benchmark | median |"
    echo "|---|---|"
    cargo bench --locked -p mqtt-oauth-core --bench acl -- --quick 2>/dev/null | awk '
        NF == 1 { name = $1 }
        /time:/ {
            if ($1 != "time:") name = $1
            match($0, /\[[^]]*\]/); split(substr($0, RSTART + 1, RLENGTH - 2), v, " ")
            printf "| %s | %s %s |\n", name, v[3], v[4]
        }'
} | tee "$out"
echo "written to $out" >&2
