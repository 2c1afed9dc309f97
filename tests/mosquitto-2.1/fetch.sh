#!/usr/bin/env bash
# Fetches Mosquitto 2.1.x from Debian unstable (sid) into DEST without touching the system's
# packages, and writes DEST/mosquitto, a wrapper that runs that broker with sid's own libraries
# (its own glibc dynamic loader included). Also fetches sid's mosquitto source into DEST/src.
#
# Usage: tests/mosquitto-2.1/fetch.sh [DEST]      (default DEST: <repo>/target/mosquitto-2.1)
#
# Environment:
#   MOSQUITTO_21_MIRROR  Debian mirror URI (default: the first .../debian URI of /etc/apt)
#   MOSQUITTO_21_SUITE   suite to fetch from (default: sid)
#   MOSQUITTO_21_SOURCE  0 to skip the source download
#
# Layout of DEST:
#   apt/        private apt config (apt.conf, sources.list; lists and caches are removed at the end)
#   root/       the extracted packages (usr/sbin/mosquitto, usr/lib/<triplet>/...)
#   mosquitto   wrapper running root/usr/sbin/mosquitto (MOSQUITTO_21_BIN for the tests)
#   mosquitto_passwd   same for root/usr/bin/mosquitto_passwd
#   src/        the Debian source package, unpacked (src/mosquitto-2.1.x/include/...)
#
# Idempotent: skips everything that is already there and works. Delete DEST to refetch.
set -euo pipefail

started=$SECONDS
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/../.." && pwd)
DEST=${1:-$repo/target/mosquitto-2.1}
SUITE=${MOSQUITTO_21_SUITE:-sid}

log() { printf 'fetch.sh: %s\n' "$*" >&2; }
die() {
    printf 'fetch.sh: error: %s\n' "$*" >&2
    exit 1
}
finish() { log "done in $((SECONDS - started))s"; }

for tool in apt-get apt-cache dpkg dpkg-deb; do
    command -v "$tool" >/dev/null || die "$tool not found (this script needs a Debian-based system)"
done
mkdir -p "$DEST" || die "cannot create $DEST"
DEST=$(cd "$DEST" && pwd)
root=$DEST/root
apt_dir=$DEST/apt
wrapper=$DEST/mosquitto

arch=$(dpkg --print-architecture)
case $arch in
amd64) triplet=x86_64-linux-gnu loader=ld-linux-x86-64.so.2 ;;
arm64) triplet=aarch64-linux-gnu loader=ld-linux-aarch64.so.1 ;;
*) die "unsupported architecture $arch (known: amd64, arm64)" ;;
esac

# "mosquitto version 2.1.2" if $1 is a wrapper that runs a 2.1 broker, else fails.
broker_version() {
    local out
    [[ -x $1 ]] || return 1
    # -h prints the version first on stdout (2.1 also logs "... terminating" on stderr); it
    # exits with 0 on 2.1, 3 on 2.0.
    out=$("$1" -h 2>/dev/null) || true
    out=${out%%$'\n'*}
    [[ $out == "mosquitto version 2.1"* ]] || return 1
    printf '%s\n' "$out"
}

source_present() { compgen -G "$DEST/src/mosquitto-*/include/mosquitto/broker.h" >/dev/null; }

want_source=${MOSQUITTO_21_SOURCE:-1}
if version=$(broker_version "$wrapper") && { [[ $want_source == 0 ]] || source_present; }; then
    log "already fetched: $version ($wrapper)"
    printf '%s\n' "$version"
    finish
    exit 0
fi

# --- private apt configuration ---------------------------------------------------------------

# The Debian mirror the machine's own apt sources use (one-line and deb822 formats).
find_mirror() {
    local files=() file
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for file in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] && files+=("$file")
    done
    ((${#files[@]})) || return 1
    # Every URI in the files, in order; the first whose path ends in /debian (not
    # /debian-security, /debian-ports, ...).
    awk '
        /^[[:space:]]*#/ { next }
        /^[[:space:]]*deb(-src)?[[:space:]]/ {
            for (i = 2; i <= NF; i++) if ($i ~ /^[a-z+]+:\/\//) { print $i; break }
            next
        }
        /^URIs:/ { for (i = 2; i <= NF; i++) print $i }
    ' "${files[@]}" | sed 's,/*$,,' | grep -E '^[a-z+]+://[^[:space:]]+/debian$' | head -1
}

mirror=${MOSQUITTO_21_MIRROR:-}
if [[ -z $mirror ]]; then
    mirror=$(find_mirror) || true
    [[ -n $mirror ]] || die "no Debian mirror (a URI ending in /debian) in /etc/apt/sources.list{,.d}; set MOSQUITTO_21_MIRROR"
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[[ -f $keyring ]] || die "$keyring not found (package debian-archive-keyring)"

mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
: >"$apt_dir/status"
cat >"$apt_dir/sources.list" <<EOF
# Private to tests/mosquitto-2.1/fetch.sh; not used by the system's apt.
deb [signed-by=$keyring] $mirror $SUITE main
deb-src [signed-by=$keyring] $mirror $SUITE main
EOF
# A private apt configuration, read instead of /etc/apt/apt.conf{,.d} (whose update hooks would
# clean the system's apt cache or refresh its AppStream data, and whose settings would make
# every apt-cache call re-parse the lists). Only the system's proxy and date-check settings
# are carried over.
{
    cat <<EOF
// Private to tests/mosquitto-2.1/fetch.sh (APT_CONFIG); the system's apt.conf.d is not read.
Dir::Etc::Main "/dev/null";
Dir::Etc::Parts "/dev/null";
Dir::Etc::SourceList "$apt_dir/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State::Lists "$apt_dir/lists";
Dir::State::status "$apt_dir/status";
Dir::Cache "$apt_dir/cache";
Dir::Cache::pkgcache "pkgcache.bin";
Dir::Cache::srcpkgcache "srcpkgcache.bin";
APT::Architecture "$arch";
APT::Architectures { "$arch"; };
Acquire::Languages "none";
EOF
    # Downloads go into root-owned dirs: do not drop to the _apt user for them (apt would only
    # print a notice and fall back to root).
    [[ $(id -u) == 0 ]] && echo 'APT::Sandbox::User "root";'
    apt-config dump 2>/dev/null | grep -iE '^Acquire::([a-z]+::)?(Proxy|Check-Valid-Until|Check-Date)' || true
} >"$apt_dir/apt.conf"
export APT_CONFIG=$apt_dir/apt.conf
# The same settings on the command line (they are what matters; APT_CONFIG only also keeps the
# system's apt.conf.d out).
apt_opts=(
    -o "Dir::Etc::SourceList=$apt_dir/sources.list"
    -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$apt_dir/lists"
    -o "Dir::State::status=$apt_dir/status"
    -o "Dir::Cache=$apt_dir/cache"
)

log "apt-get update: $mirror $SUITE main (lists in $apt_dir/lists)"
update_log=$apt_dir/update.log
if ! apt-get "${apt_opts[@]}" update >"$update_log" 2>&1; then
    cat "$update_log" >&2
    die "apt-get update of $SUITE failed (see above)"
fi
if grep -E '^(E|W):' "$update_log" >&2; then
    die "apt-get update of $SUITE reported errors or warnings (see above)"
fi

candidate=$(apt-cache "${apt_opts[@]}" policy mosquitto | awk '/Candidate:/ { print $2 }')
[[ -n $candidate && $candidate != "(none)" ]] || die "no mosquitto package in $SUITE"
[[ $candidate == 2.1* ]] || die "$SUITE has mosquitto $candidate, not 2.1.x"
log "mosquitto $candidate in $SUITE"

# --- binaries -----------------------------------------------------------------------------------

# The Section of each named package, as "name section" lines.
sections() {
    apt-cache "${apt_opts[@]}" show --no-all-versions "$@" 2>/dev/null |
        awk '/^Package:/ { p = $2 } /^Section:/ { print p, $2 }'
}

# mosquitto plus the transitive Depends/Pre-Depends closure through library packages
# (Section "libs", e.g. libmosquitto1, libc6, zlib1g): what the broker links and dlopens. Other
# dependencies (systemd, sysvinit-utils, ...) are for installing it as a service; not followed.
resolve_packages() {
    local -A seen=([mosquitto]=net)
    local frontier=(mosquitto) next=() unseen=() name section
    while ((${#frontier[@]})); do
        # Real packages only: "  Depends: name", not "<virtual>" nor indented provider lines.
        mapfile -t next < <(
            apt-cache "${apt_opts[@]}" depends --no-recommends --no-suggests --no-conflicts \
                --no-breaks --no-replaces --no-enhances "${frontier[@]}" |
                sed -nE 's/^ [ |](Pre)?Depends: ([^<[:space:]]+)$/\2/p' | sort -u
        )
        frontier=() unseen=()
        for name in "${next[@]}"; do
            [[ -n ${seen[$name]:-} ]] || unseen+=("$name")
        done
        ((${#unseen[@]})) || break
        while read -r name section; do
            [[ -z ${seen[$name]:-} ]] || continue
            seen[$name]=$section
            if [[ $section == libs || $section == */libs ]]; then
                frontier+=("$name")
            fi
        done < <(sections "${unseen[@]}")
    done
    for name in "${!seen[@]}"; do
        section=${seen[$name]}
        if [[ $name == mosquitto || $section == libs || $section == */libs ]]; then
            printf '%s\n' "$name"
        fi
    done | sort
}

if version=$(broker_version "$wrapper"); then
    log "broker already fetched: $version"
else
    mapfile -t packages < <(resolve_packages)
    ((${#packages[@]} > 1)) || die "could not resolve mosquitto's dependencies"
    for required in mosquitto libc6; do
        [[ " ${packages[*]} " == *" $required "* ]] ||
            die "$required missing from the resolved package list: ${packages[*]}"
    done
    [[ " ${packages[*]} " == *" libmosquitto"* ]] ||
        die "no libmosquitto* package among mosquitto's dependencies: ${packages[*]}"
    log "downloading ${#packages[@]} packages: ${packages[*]}"
    rm -f "$apt_dir/debs"/*.deb
    (cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" -q download "${packages[@]}") >&2 ||
        die "apt-get download failed"

    rm -rf "$root.new"
    mkdir -p "$root.new"
    for deb in "$apt_dir/debs"/*.deb; do
        dpkg-deb -x "$deb" "$root.new" || die "cannot extract $deb"
    done
    rm -rf "$root"
    mv "$root.new" "$root"

    lib_dirs=()
    for dir in "$root/usr/lib/$triplet" "$root/lib/$triplet"; do
        [[ -d $dir && ! -L $dir ]] && lib_dirs+=("$dir")
    done
    ((${#lib_dirs[@]})) || die "no $triplet library folder in $root"
    ldconfig -n "${lib_dirs[@]}" || die "ldconfig -n failed"
    loader_path=$root/usr/lib/$triplet/$loader
    [[ -x $loader_path ]] || loader_path=$root/lib/$triplet/$loader
    [[ -x $loader_path ]] || die "dynamic loader $loader not found in $root (libc6 not extracted?)"
    [[ -x $root/usr/sbin/mosquitto ]] || die "$root/usr/sbin/mosquitto not found"
    library_path=$(IFS=:; printf '%s' "${lib_dirs[*]}")

    # Every library the broker links must come from $root (the loader would otherwise fall back
    # to the system's, silently mixing Debian releases).
    for program in "$root/usr/sbin/mosquitto" "$root/usr/bin/mosquitto_passwd"; do
        [[ -x $program ]] || continue
        links=$("$loader_path" --library-path "$library_path" --list "$program" 2>&1) ||
            die "the loader cannot resolve $program:"$'\n'"$links"
        if bad=$(grep -vE "=> $root/|^[[:space:]]*linux-vdso|^[[:space:]]*$root/|^[[:space:]]*/lib64/ld-linux|$loader " <<<"$links"); then
            die "libraries of $program not found in $root:"$'\n'"$bad"
        fi
    done

    write_wrapper() { # name program
        cat >"$DEST/$1.new" <<EOF
#!/bin/sh
# Generated by tests/mosquitto-2.1/fetch.sh: Debian $SUITE $2 $candidate, run by its own
# dynamic loader with its own libraries (nothing installed on the system).
exec '$loader_path' --library-path '$library_path' '$root$2' "\$@"
EOF
        chmod +x "$DEST/$1.new"
        mv "$DEST/$1.new" "$DEST/$1"
    }
    [[ -x $root/usr/bin/mosquitto_passwd ]] && write_wrapper mosquitto_passwd /usr/bin/mosquitto_passwd
    write_wrapper mosquitto /usr/sbin/mosquitto
    version=$(broker_version "$wrapper") || {
        "$wrapper" -h >&2 || true
        die "$wrapper does not run a Mosquitto 2.1 broker (output above)"
    }
    log "broker: $wrapper"
fi

# --- source ------------------------------------------------------------------------------------

if [[ $want_source == 0 ]]; then
    log "source: skipped (MOSQUITTO_21_SOURCE=0)"
elif source_present; then
    log "source already in $DEST/src"
else
    rm -rf "$DEST/src"
    mkdir -p "$DEST/src"
    if (cd "$DEST/src" && apt-get "${apt_opts[@]}" -q source --download-only mosquitto) >&2; then
        dsc=$(compgen -G "$DEST/src/mosquitto_*.dsc" | head -1)
        if command -v dpkg-source >/dev/null; then
            (cd "$DEST/src" && dpkg-source --no-check -x "$(basename "$dsc")") >&2 ||
                die "dpkg-source -x $dsc failed"
        else
            # No dpkg-dev: the upstream tarball is enough to read the sources.
            orig=$(compgen -G "$DEST/src/mosquitto_*.orig.tar.*" | head -1)
            upstream=${candidate%-*}
            mkdir -p "$DEST/src/mosquitto-$upstream"
            tar -xf "$orig" -C "$DEST/src/mosquitto-$upstream" --strip-components=1 ||
                die "cannot unpack $orig"
        fi
        source_present || die "the unpacked source has no include/mosquitto/broker.h"
        log "source: $(compgen -G "$DEST/src/mosquitto-*/include" | head -1 | xargs dirname)"
    else
        log "warning: could not download the source of mosquitto $candidate (broker is fine)"
    fi
fi

# The indexes and caches (about 250 MB) are only needed while fetching.
rm -rf "$apt_dir/lists" "$apt_dir/cache" "$apt_dir/debs"

printf '%s\n' "$version"
finish
