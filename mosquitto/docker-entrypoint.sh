#!/bin/bash
# Entry point of the mosquitto-oauth image.
#
# For `mosquitto -c <file>` (the default command) it
#   1. writes the OAuth client secret given as OAUTH_CLIENT_SECRET into a private file,
#   2. creates the operator's password file from MQTT_HUMAN_PASSWORD(_FILE) and a default ACL,
#   3. renders <file>: ${NAME}, ${NAME:-default} and ${NAME:?message} placeholders are replaced
#      with environment values; a line whose bare ${NAME} is unset or empty is commented out,
#   4. execs Mosquitto with the rendered copy (in $MOSQUITTO_RUN_DIR), as PID 1.
# Any other command is executed as given. Every variable is documented in mosquitto/README.md.
set -euo pipefail

RUN_DIR=${MOSQUITTO_RUN_DIR:-/run/mosquitto-oauth}

log() { printf 'docker-entrypoint: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 64; }

# Single-line values only: a newline in a value would add a line to the broker's configuration.
single_line() { # single_line <name> <value>
    case $2 in *$'\n'* | *$'\r'*) die "$1 must be a single line" ;; esac
}

prepare_run_dir() {
    mkdir -p "$RUN_DIR" 2>/dev/null || true
    if [ ! -d "$RUN_DIR" ] || [ ! -w "$RUN_DIR" ]; then
        die "$RUN_DIR is not writable by uid $(id -u); mount a tmpfs there (--tmpfs $RUN_DIR:uid=1883,gid=1883) or set MOSQUITTO_RUN_DIR"
    fi
    chmod 0700 "$RUN_DIR" 2>/dev/null || true
}

# OAUTH_CLIENT_SECRET (value) or OAUTH_CLIENT_SECRET_FILE (path), or a Docker/Podman secret
# named oauth_client_secret. The value goes into a file only the broker can read.
setup_client_secret() {
    local secret_file=${OAUTH_CLIENT_SECRET_FILE:-}
    if [ -n "${OAUTH_CLIENT_SECRET:-}" ]; then
        [ -z "$secret_file" ] || die "set OAUTH_CLIENT_SECRET or OAUTH_CLIENT_SECRET_FILE, not both"
        secret_file=$RUN_DIR/oauth-client-secret
        (umask 077 && printf '%s\n' "$OAUTH_CLIENT_SECRET" >"$secret_file")
    elif [ -z "$secret_file" ] && [ -f /run/secrets/oauth_client_secret ]; then
        secret_file=/run/secrets/oauth_client_secret
    fi
    if [ -n "$secret_file" ]; then
        [ -r "$secret_file" ] || die "client secret file $secret_file is not readable by uid $(id -u)"
        export OAUTH_CLIENT_SECRET_FILE=$secret_file
    fi
}

# The operator listener's password file and ACL. MQTT_PASSWORD_FILE / MQTT_ACL_FILE name
# mounted files; otherwise they are generated here for the one user MQTT_HUMAN_USERNAME.
setup_operator() {
    local user=${MQTT_HUMAN_USERNAME:-human}
    local password=${MQTT_HUMAN_PASSWORD:-}
    case $user in *:* | *' '* | '') die "MQTT_HUMAN_USERNAME must be non-empty, without ':' or spaces" ;; esac
    single_line MQTT_HUMAN_USERNAME "$user"
    if [ -n "${MQTT_HUMAN_PASSWORD_FILE:-}" ]; then
        [ -z "$password" ] || die "set MQTT_HUMAN_PASSWORD or MQTT_HUMAN_PASSWORD_FILE, not both"
        [ -r "$MQTT_HUMAN_PASSWORD_FILE" ] || die "MQTT_HUMAN_PASSWORD_FILE $MQTT_HUMAN_PASSWORD_FILE is not readable"
        password=$(<"$MQTT_HUMAN_PASSWORD_FILE")
        password=${password%$'\n'}
    fi
    single_line MQTT_HUMAN_PASSWORD "$password"

    if [ -n "${MQTT_PASSWORD_FILE:-}" ]; then
        [ -z "$password" ] || die "set MQTT_PASSWORD_FILE or MQTT_HUMAN_PASSWORD(_FILE), not both"
        [ -r "$MQTT_PASSWORD_FILE" ] || die "MQTT_PASSWORD_FILE $MQTT_PASSWORD_FILE is not readable"
    else
        export MQTT_PASSWORD_FILE=$RUN_DIR/passwd
        (umask 077 && : >"$MQTT_PASSWORD_FILE")
        if [ -n "$password" ]; then
            # PBKDF2-SHA512 hash. The password goes through stdin, never on a command line
            # (and `mosquitto_passwd -U` would cut it at a ':').
            printf '%s\n%s\n' "$password" "$password" \
                | (umask 077 && mosquitto_passwd -c "$MQTT_PASSWORD_FILE" "$user" >/dev/null) \
                || die "mosquitto_passwd failed"
        else
            log "warning: no MQTT_HUMAN_PASSWORD, MQTT_HUMAN_PASSWORD_FILE or MQTT_PASSWORD_FILE: password logins are all refused"
        fi
    fi

    if [ -n "${MQTT_ACL_FILE:-}" ]; then
        [ -r "$MQTT_ACL_FILE" ] || die "MQTT_ACL_FILE $MQTT_ACL_FILE is not readable"
    else
        export MQTT_ACL_FILE=$RUN_DIR/acl
        printf 'user %s\ntopic readwrite #\ntopic read %s\n' "$user" "\$SYS/#" >"$MQTT_ACL_FILE"
    fi
}

# render <template> <output>: see the header. Comment lines are copied unchanged.
render() {
    awk '
        function fail(message) { print "docker-entrypoint: error: " FILENAME ":" FNR ": " message > "/dev/stderr"; failed = 1; exit 1 }
        /^[ \t]*#/ { print; next }
        {
            line = $0; out = ""; drop = ""
            while ((start = index(line, "${")) > 0) {
                out = out substr(line, 1, start - 1)
                rest = substr(line, start + 2)
                end = index(rest, "}")
                if (end == 0) fail("unterminated ${")
                expr = substr(rest, 1, end - 1)
                line = substr(rest, end + 1)
                if (!match(expr, /^[A-Za-z_][A-Za-z0-9_]*/)) fail("bad placeholder ${" expr "}")
                name = substr(expr, 1, RLENGTH); op = substr(expr, RLENGTH + 1)
                value = (name in ENVIRON) ? ENVIRON[name] : ""
                if (index(value, "\n") || index(value, "\r")) fail(name " must be a single line")
                if (op == "") {
                    if (value == "") drop = drop " " name
                } else if (substr(op, 1, 2) == ":-") {
                    if (value == "") value = substr(op, 3)
                } else if (substr(op, 1, 2) == ":?") {
                    if (value == "") fail(name " must be set: " substr(op, 3))
                } else {
                    fail("bad placeholder ${" expr "} (use ${NAME}, ${NAME:-default} or ${NAME:?message})")
                }
                out = out value
            }
            out = out line
            sub(/[ \t]+$/, "", out)
            if (drop != "") print "# [unset:" drop "] " $0
            else print out
        }
        END { if (failed) exit 1 }
    ' "$1" >"$2"
}

if [ "${1:-}" = mosquitto ] || [ "${1:-}" = /usr/sbin/mosquitto ]; then
    args=("$@")
    config=""
    for ((i = 1; i < ${#args[@]}; i++)); do
        if [ "${args[i]}" = -c ] || [ "${args[i]}" = --config-file ]; then
            config_index=$((i + 1))
            config=${args[config_index]:-}
        fi
    done
    if [ -n "$config" ] && [ "${MOSQUITTO_RENDER_CONFIG:-1}" != 0 ]; then
        [ -r "$config" ] || die "configuration file $config is not readable"
        prepare_run_dir
        setup_client_secret
        setup_operator
        rendered=$RUN_DIR/$(basename "$config")
        render "$config" "$rendered" || die "cannot render $config"
        args[config_index]=$rendered
        if [ "$(id -u)" -eq 0 ]; then
            # Started as root (--user root): Mosquitto drops to the mosquitto user before it
            # reads these files and writes its log and database.
            chown -R mosquitto:mosquitto "$RUN_DIR"
            chown -R mosquitto:mosquitto /mosquitto/data /mosquitto/log 2>/dev/null || true
        fi
        log "rendered $config -> $rendered"
        if [ "${MOSQUITTO_PRINT_CONFIG:-0}" = 1 ]; then
            grep -v '^[[:space:]]*\(#\|$\)' "$rendered" | sed 's/^/docker-entrypoint: | /' >&2
        fi
    fi
    # The secrets now live in files; keep them out of the broker's environment.
    unset OAUTH_CLIENT_SECRET MQTT_HUMAN_PASSWORD
    exec "${args[@]}"
fi

exec "$@"
