#!/usr/bin/env bash
# A throw-away PostgreSQL server for the test suite (CI and developers).
#
#   scripts/pg-test-server.sh install   install the Debian package `postgresql` if no server binaries exist (root)
#   scripts/pg-test-server.sh start     init a cluster in a temp dir, start it on a free port on 127.0.0.1,
#                                       wait until it accepts connections, print its URL on stdout
#   scripts/pg-test-server.sh url       print the URL of the running server
#   scripts/pg-test-server.sh status    exit 0 if the server is running
#   scripts/pg-test-server.sh stop      stop the server and delete its data
#
# Typical use:
#   url=$(scripts/pg-test-server.sh start); trap 'scripts/pg-test-server.sh stop' EXIT
#   GUANXI_TEST_DATABASE_URL=$url GUANXI_TEST_REQUIRE_POSTGRES=1 .venv/bin/pytest
# (or simply `make test-pg`).
#
# The cluster runs as the invoking user, or as the `postgres` OS user when invoked as root
# (initdb refuses root). Authentication is scram-sha-256 with a random password for the
# `postgres` role; the server listens on 127.0.0.1 only, with durability switched off (fsync)
# because the data is thrown away. Server binaries are looked for in $PG_BIN, then
# /usr/lib/postgresql/<newest>/bin, then $PATH. The state (URL, data dir) is kept in
# $PG_TEST_STATE_DIR (default: .pgdata/ in the repository), so one server per checkout.
# Other settings: PG_TEST_PORT (default: a free port).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE_DIR="${PG_TEST_STATE_DIR:-$ROOT/.pgdata}"
STATE_FILE="$STATE_DIR/server.env"

log() { echo "pg-test-server: $*" >&2; }
die() { log "error: $*"; exit 1; }

find_bin_dir() {
    if [[ -n "${PG_BIN:-}" ]]; then
        [[ -x "$PG_BIN/initdb" && -x "$PG_BIN/pg_ctl" ]] || die "PG_BIN=$PG_BIN has no initdb/pg_ctl"
        echo "$PG_BIN"
        return
    fi
    local dir
    dir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [[ -n "$dir" && -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]]; then
        echo "$dir"
        return
    fi
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null && command -v postgres >/dev/null; then
        dirname "$(command -v initdb)"
        return
    fi
    return 1
}

cmd_install() {
    if dir="$(find_bin_dir)"; then
        log "PostgreSQL server binaries found in $dir"
        return
    fi
    [[ "$(id -u)" == 0 ]] || die "no PostgreSQL server binaries found; install the server (Debian: apt-get install postgresql) or set PG_BIN"
    command -v apt-get >/dev/null || die "no PostgreSQL server binaries found and no apt-get to install them"
    log "installing PostgreSQL from Debian packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends postgresql >&2
    dir="$(find_bin_dir)" || die "postgresql was installed but no server binaries were found under /usr/lib/postgresql"
    log "PostgreSQL server binaries installed in $dir"
}

# Run a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
    if [[ "$(id -u)" == 0 ]]; then
        if command -v runuser >/dev/null; then
            runuser -u postgres -- "$@"
        else
            su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
        fi
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

load_state() {
    [[ -f "$STATE_FILE" ]] || return 1
    # shellcheck disable=SC1090
    source "$STATE_FILE"
}

is_running() {
    load_state || return 1
    [[ -d "$PG_TEST_BASE/data" ]] || return 1
    (cd / && as_owner "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_BASE/data" status >/dev/null 2>&1)
}

cmd_start() {
    if is_running; then
        log "already running on 127.0.0.1:$PG_TEST_PORT (data in $PG_TEST_BASE)"
        echo "$PG_TEST_URL"
        return
    fi
    [[ -f "$STATE_FILE" ]] && cmd_stop
    local bin port password base url
    bin="$(find_bin_dir)" || die "no PostgreSQL server binaries found (run: $0 install, as root, or set PG_BIN)"
    if [[ "$(id -u)" == 0 ]]; then
        id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user to own the cluster"
    fi
    port="${PG_TEST_PORT:-$(free_port)}"
    password="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
    base="$(mktemp -d "${TMPDIR:-/tmp}/guanxi-pg.XXXXXX")"
    mkdir -p "$STATE_DIR"
    url="postgresql+asyncpg://postgres:$password@127.0.0.1:$port/postgres"
    umask 077
    cat >"$STATE_FILE" <<EOF
PG_TEST_BIN='$bin'
PG_TEST_BASE='$base'
PG_TEST_PORT='$port'
PG_TEST_URL='$url'
EOF
    printf '%s\n' "$password" >"$base/pwfile"
    if [[ "$(id -u)" == 0 ]]; then
        chown -R postgres: "$base"
    fi
    log "initdb in $base/data ($bin)"
    (cd "$base" && as_owner "$bin/initdb" -D "$base/data" -U postgres --pwfile="$base/pwfile" \
        --auth=scram-sha-256 --encoding=UTF8 --no-locale >"$base/initdb.log" 2>&1) \
        || { cat "$base/initdb.log" >&2; die "initdb failed"; }
    rm -f "$base/pwfile"
    cat >>"$base/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$base'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
    log "starting on 127.0.0.1:$port"
    (cd "$base" && as_owner "$bin/pg_ctl" -D "$base/data" -l "$base/server.log" -w -t 60 start >/dev/null) \
        || { cat "$base/server.log" >&2 || true; die "the server did not start"; }
    local tries=0
    until (cd / && as_owner "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -d postgres); do
        tries=$((tries + 1))
        ((tries < 60)) || { cat "$base/server.log" >&2 || true; die "the server does not accept connections"; }
        sleep 0.5
    done
    log "ready: $url"
    echo "$url"
}

cmd_stop() {
    load_state || { log "no server recorded in $STATE_FILE"; return 0; }
    if [[ -d "$PG_TEST_BASE/data" ]]; then
        (cd / && as_owner "$PG_TEST_BIN/pg_ctl" -D "$PG_TEST_BASE/data" -m fast -w -t 30 stop >/dev/null 2>&1) \
            || log "pg_ctl stop failed (server not running?)"
    fi
    case "$PG_TEST_BASE" in
        */guanxi-pg.*) rm -rf "$PG_TEST_BASE" ;;
        *) log "not deleting unexpected data dir $PG_TEST_BASE" ;;
    esac
    rm -f "$STATE_FILE"
    rmdir "$STATE_DIR" 2>/dev/null || true
    log "stopped"
}

case "${1:-}" in
    install) cmd_install ;;
    start) cmd_start ;;
    stop) cmd_stop ;;
    url) is_running || die "not running"; echo "$PG_TEST_URL" ;;
    status) is_running ;;
    *) sed -n '2,9s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
