#!/usr/bin/env bash
# Runs every fuzz target for a bounded time each: ./run-all.sh [seconds per target, default 60]
# Stops at the first target that finds a problem (its input is in artifacts/<target>/).
# Then merges the inputs that add coverage into regressions/<target>/ (committed; replayed by
# auth-core/tests/fuzz_regressions.rs).
set -euo pipefail
cd "$(dirname "$0")"

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [seconds per target]" >&2
    exit 2
fi

cargo +nightly fuzz build
for target in filter_matcher scope_parser introspection_json jwt_header; do
    extra=()
    case "$target" in
        introspection_json | jwt_header) extra=(-detect_leaks=0) ;;
    esac
    echo "== $target (${seconds}s)"
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" ${extra[@]+"${extra[@]}"}
done
echo "== all targets ran ${seconds}s without a finding"
# Keep what the runs found that adds coverage, for the stable-Rust regression test.
for target in filter_matcher scope_parser introspection_json jwt_header; do
    mkdir -p "regressions/$target"
    before=$(ls "regressions/$target" | wc -l)
    cargo +nightly fuzz run "$target" "regressions/$target" "corpus/$target" -- -merge=1 -detect_leaks=0 >/dev/null 2>&1
    echo "== $target: regressions/$target $before -> $(ls "regressions/$target" | wc -l) inputs"
done
