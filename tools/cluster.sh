# shellcheck shell=bash
# tools/cluster.sh: helpers for a throwaway PostgreSQL cluster, sourced by
# tools/harness.sh (check, demo, bench). Not meant to be run on its own.
#
# After cluster_start these globals describe the running server:
#   CLUSTER_DIR (data dir), CLUSTER_SOCK (unix socket dir), CLUSTER_PORT,
#   CLUSTER_LOG (server log). Everything lives under HARNESS_TMP, which the
#   EXIT trap removes unless KEEP_CLUSTER=1 (or CLUSTER_KEEP_RUNNING=1, which
#   also leaves the server up).

: "${PG_CONFIG:=/usr/lib/postgresql/15/bin/pg_config}"

HARNESS_TMP=${HARNESS_TMP:-}
CLUSTER_DIR=''
CLUSTER_SOCK=''
CLUSTER_PORT=''
CLUSTER_LOG=''
CLUSTER_RUNNING=0
CLUSTER_KEEP_RUNNING=${CLUSTER_KEEP_RUNNING:-0}

# initdb and postgres refuse to run as root, so as root everything that owns
# cluster files runs as the postgres user (created by postgresql-common).
# as_postgres_in DIR CMD...: run CMD from DIR, which postgres must be able to
# enter (the caller's cwd, a clone under /root say, may not be).
as_postgres_in() {
    local dir=$1
    shift
    if [[ $EUID -eq 0 ]]; then
        (cd "$dir" && runuser -u postgres -- "$@")
    else
        (cd "$dir" && "$@")
    fi
}

as_postgres() {
    as_postgres_in / "$@"
}

pg_bindir() {
    "$PG_CONFIG" --bindir
}

# Hand a path to postgres (only meaningful as root).
give_to_postgres() {
    if [[ $EUID -eq 0 ]]; then
        chown -R postgres: "$@"
    fi
}

# One scratch directory per harness run. It is world-traversable so postgres
# can reach its own subdirectories; the subdirectories themselves are private.
# /tmp keeps the socket path well under the 107-byte unix socket limit.
harness_tmp_init() {
    [[ -n $HARNESS_TMP ]] && return 0
    HARNESS_TMP=$(mktemp -d /tmp/autora.XXXXXX)
    chmod 755 "$HARNESS_TMP"
    # Standalone users get cleanup for free; harness.sh sets its own trap.
    [[ -n $(trap -p EXIT) ]] || trap cluster_cleanup EXIT
}

# Bash's /dev/tcp succeeds only if something accepts on that port.
port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# First free TCP port at or above $1 (default 54321).
cluster_find_port() {
    local port=${1:-54321} last=$(( ${1:-54321} + 500 ))
    for (( ; port < last; port++ )); do
        if ! port_in_use "$port"; then
            echo "$port"
            return 0
        fi
    done
    echo "cluster: no free TCP port in ${1:-54321}..$last" >&2
    return 1
}

cluster_log_tail() {
    if [[ -n $CLUSTER_LOG && -f $CLUSTER_LOG ]]; then
        echo "---- last 50 lines of $CLUSTER_LOG ----" >&2
        tail -n 50 "$CLUSTER_LOG" >&2
        echo "----" >&2
    fi
}

# cluster_start ['setting = value' ...]
# initdb a fresh cluster and start it. The default settings come first, so a
# caller's settings (appended later) win, as in any postgresql.conf.
cluster_start() {
    local bindir base port attempt
    bindir=$(pg_bindir)
    harness_tmp_init
    base=$HARNESS_TMP/pg
    mkdir -m 700 "$base"
    give_to_postgres "$base"

    CLUSTER_DIR=$base/data
    CLUSTER_SOCK=$base
    CLUSTER_LOG=$base/server.log

    as_postgres "$bindir/initdb" -D "$CLUSTER_DIR" --username=postgres \
        --auth=trust -E UTF8 --locale=C --no-sync >"$base/initdb.log" 2>&1 || {
        cat "$base/initdb.log" >&2
        echo "cluster: initdb failed" >&2
        return 1
    }

    # Another run may grab the port between the probe and the bind, so a few
    # attempts on successive ports.
    port=54321
    for attempt in 1 2 3 4 5; do
        port=$(cluster_find_port "$port") || return 1
        cluster_write_conf "$port" "$@"
        if as_postgres "$bindir/pg_ctl" -w -t 120 -D "$CLUSTER_DIR" \
            -l "$CLUSTER_LOG" start >/dev/null; then
            CLUSTER_PORT=$port
            CLUSTER_RUNNING=1
            echo "cluster: running on port $CLUSTER_PORT, socket dir $CLUSTER_SOCK"
            return 0
        fi
        if ! grep -q 'could not bind\|Address already in use' "$CLUSTER_LOG" 2>/dev/null; then
            break
        fi
        port=$(( port + 1 ))
        echo "cluster: port taken at start-up, retrying (attempt $attempt)" >&2
    done
    echo "cluster: the server failed to start" >&2
    cluster_log_tail
    return 1
}

# Rewrites the harness block of postgresql.conf (kept in a separate include
# file so a retry on another port does not stack duplicate settings).
cluster_write_conf() {
    local port=$1 line
    shift
    local conf=$CLUSTER_DIR/postgresql.conf inc=$CLUSTER_DIR/harness.conf
    if ! grep -q "^include_if_exists = 'harness.conf'" "$conf"; then
        echo "include_if_exists = 'harness.conf'" | as_postgres tee -a "$conf" >/dev/null
    fi
    {
        echo "# written by tools/cluster.sh"
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$CLUSTER_SOCK'"
        echo "shared_preload_libraries = 'autora_audit'"
        echo "max_worker_processes = 16"
        echo "logging_collector = off"
        for line in "$@"; do
            echo "$line"
        done
    } | as_postgres tee "$inc" >/dev/null
}

cluster_stop() {
    [[ $CLUSTER_RUNNING -eq 1 ]] || return 0
    local bindir
    bindir=$(pg_bindir)
    if ! as_postgres "$bindir/pg_ctl" -w -t 60 -D "$CLUSTER_DIR" -m fast stop >/dev/null 2>&1; then
        echo "cluster: fast shutdown failed, using immediate" >&2
        as_postgres "$bindir/pg_ctl" -w -D "$CLUSTER_DIR" -m immediate stop >/dev/null 2>&1 || true
    fi
    CLUSTER_RUNNING=0
}

# psql against the throwaway cluster as the postgres superuser; extra args
# (e.g. -d DB, -c SQL, -f FILE) are passed through.
cluster_psql() {
    "$(pg_bindir)/psql" -X -v ON_ERROR_STOP=1 -h "$CLUSTER_SOCK" -p "$CLUSTER_PORT" \
        -U postgres "$@"
}

# EXIT-trap body: stop the server and remove the scratch dir, unless asked
# to keep them. Never changes the script's exit status.
cluster_cleanup() {
    if [[ $CLUSTER_KEEP_RUNNING == 1 && $CLUSTER_RUNNING -eq 1 ]]; then
        return 0
    fi
    cluster_stop || true
    [[ -n $HARNESS_TMP && -d $HARNESS_TMP ]] || return 0
    if [[ ${KEEP_CLUSTER:-0} == 1 ]]; then
        echo "cluster: KEEP_CLUSTER=1, kept $HARNESS_TMP" >&2
    else
        rm -rf "$HARNESS_TMP"
    fi
}
