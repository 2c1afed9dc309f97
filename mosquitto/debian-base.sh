#!/usr/bin/env bash
# Sourced by mosquitto/test-image.sh and packaging/test-deb.sh: make_debian_base makes the local
# Debian bookworm base image $BASE_DEBIAN (no registry is reachable here), trimmed like the
# official bookworm-slim, unless it exists. Uses the caller's pm (podman), note and fail, and
# $WORK, $CACHE and $DEBIAN_MIRROR.

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
