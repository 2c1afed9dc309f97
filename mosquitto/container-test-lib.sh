#!/usr/bin/env bash
# Shared by mosquitto/test-image.sh and packaging/test-deb.sh (sourced after they set WORK, and
# BASE_DEBIAN and DEBIAN_MIRROR): output helpers, timed phases, podman as it works on these
# machines, and the local Debian base image.

say()  { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }
fail() { printf '\n\033[31mFAIL: %s\033[0m\n' "$*" >&2; exit 1; }
ok()   { printf '   \033[32mok\033[0m  %s\n' "$*"; }

PHASES=()
PHASE=""
PHASE_START=0
TEST_START=$SECONDS
phase() { # phase <name>: ends the current phase and starts the next
    [ -z "$PHASE" ] || PHASES+=("$(printf '%-48s %5ss' "$PHASE" $((SECONDS - PHASE_START)))")
    PHASE=$1
    PHASE_START=$SECONDS
    [ -z "$PHASE" ] || say "$PHASE"
}
print_timings() {
    printf '\n\033[1m== Timings\033[0m\n'
    for line in "${PHASES[@]}"; do note "$line"; done
    note "$(printf '%-48s %5ss' total $((SECONDS - TEST_START)))"
}

# Podman as it works on these machines (see ../shared/reference/containers.md): no raised
# rlimits, cgroupfs, runc.
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF=$WORK/containers.conf
pm() { podman --cgroup-manager=cgroupfs "$@"; }

CACHE=/var/tmp/mosquitto-oauth-image

# install_prerequisites <command:package>...: root check, apt for the missing commands, npm ci
# for the test OAuth server.
install_prerequisites() {
    [ "$(id -u)" -eq 0 ] || fail "run as root (debootstrap and podman storage need it)"
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        note "apt-get install ${missing[*]}"
        apt-get update -qq
        # With recommends, as tested: podman then brings netavark, catatonit, fuse-overlayfs.
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" ca-certificates >/dev/null
    fi
    if [ ! -d tests/idp/node_modules/oidc-provider ]; then
        npm ci --prefix tests/idp --no-audit --no-fund --loglevel=error
    fi
}

# make_debian_base: makes the local Debian bookworm base image $BASE_DEBIAN (no registry is
# reachable here), trimmed like the official bookworm-slim, unless it exists.
make_debian_base() {
if pm image exists "$BASE_DEBIAN"; then
    note "$BASE_DEBIAN exists (REBUILD_BASE=1 remakes it)"
else
    rootfs=$CACHE/rootfs
    rm -rf "$rootfs" && mkdir -p "$CACHE"
    note "debootstrap --variant=minbase bookworm ($DEBIAN_MIRROR)"
    debootstrap --variant=minbase bookworm "$rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" 2>&1 \
        || { tail -20 "$WORK/debootstrap.log"; fail "debootstrap failed"; }
    # What the official debian:bookworm-slim adds: apt sources with updates and security,
    # no service starts inside containers, no docs/man pages/translations, no apt caches.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: ${DEBIAN_MIRROR}
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR}-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod 0755 "$rootfs/usr/sbin/policy-rc.d"
    cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'SLIM'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
SLIM
    cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
    find "$rootfs/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    rm -rf "$rootfs"/usr/share/{man,info,locale}/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
    tar -C "$rootfs" --numeric-owner -c . | pm import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' - "$BASE_DEBIAN" >"$WORK/import.log" 2>&1 \
        || { cat "$WORK/import.log"; fail "podman import failed"; }
    rm -rf "$rootfs"
    note "made $BASE_DEBIAN"
fi
}
