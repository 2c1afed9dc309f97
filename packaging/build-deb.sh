#!/usr/bin/env bash
# Builds the two Debian packages (amd64) into target/debian/ with cargo-deb and checks them with
# lintian:
#   mosquitto-oauth_<version>-1_amd64.deb   the plugin, a conf.d snippet (inactive), examples
#   fallback-broker_<version>-1_amd64.deb   the broker, its system user, systemd unit, config
# The version is the workspace's; file dates come from the last commit (SOURCE_DATE_EPOCH), so
# the same commit gives the same file lists and contents.
# Needs: cargo, dpkg-dev, lintian, protobuf-compiler (installed with apt when missing, as root), cargo-deb (installed
# from crates.io when missing). Usage: bash packaging/build-deb.sh
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_DEB_VERSION=3.8.0
MAINTAINER="The mosquitto-oauth developers <mosquitto-oauth@example.invalid>"

if ! command -v dpkg-shlibdeps >/dev/null || ! command -v lintian >/dev/null || ! command -v protoc >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev lintian protobuf-compiler >/dev/null
fi
if ! cargo deb --version 2>/dev/null | grep -q "$CARGO_DEB_VERSION"; then
    cargo install cargo-deb --version "$CARGO_DEB_VERSION" --locked
fi

version=$(cargo metadata --no-deps --format-version 1 --locked |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "fallback-broker"))')
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
date=$(date -u -R -d "@$SOURCE_DATE_EPOCH")

cargo build --release --locked -p mosquitto-oauth-plugin -p fallback-broker

# Debian changelogs (lintian wants one per package); the project's own is shipped beside them.
mkdir -p target/debian-changelog target/debian-assets
for package in mosquitto-oauth fallback-broker; do
    cat > "target/debian-changelog/$package" <<EOF
$package ($version-1) unstable; urgency=medium

  * Release $version; see CHANGELOG.md in this package's documentation.

 -- $MAINTAINER  $date
EOF
done

# The fallback broker's conffile: the generated default with no authorization server, so the
# service refuses to start, saying which option to set, until the operator sets one.
{
    echo "# /etc/fallback-broker/fallback.toml: set auth.introspection_url (with client_id and"
    echo "# client_secret_file) or auth.issuer, then: systemctl restart fallback-broker"
    echo "# (until then the broker refuses to start and logs which option is missing)."
    target/release/fallback-broker generate-config |
        sed -E 's/^(introspection_url|client_id|client_secret) =/# \1 =/'
} > target/debian-assets/fallback.toml
if check=$(target/release/fallback-broker check-config target/debian-assets/fallback.toml 2>&1) ||
    ! grep -q "auth.introspection_url is required" <<<"$check"; then
    echo "build-deb.sh: the packaged fallback.toml must name the missing server; check-config said: $check" >&2
    exit 1
fi

gzip -9n <packaging/fallback-broker/fallback-broker.1 >target/debian-assets/fallback-broker.1.gz

rm -f target/debian/mosquitto-oauth_*.deb target/debian/fallback-broker_*.deb
cargo deb --no-build --locked -p mosquitto-oauth-plugin
cargo deb --no-build --locked -p fallback-broker

status=0
for deb in target/debian/mosquitto-oauth_"$version"-1_amd64.deb target/debian/fallback-broker_"$version"-1_amd64.deb; do
    echo "== $deb"
    dpkg-deb --contents "$deb" | awk '{print $1, $6, $7, $8}'
    # Overrides, each with its reason, are in packaging/lintian-overrides.txt.
    lintian --fail-on error,warning --suppress-tags-from-file packaging/lintian-overrides.txt "$deb" || status=1
done
exit $status
