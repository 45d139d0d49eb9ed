#!/usr/bin/env bash
# bench/run.sh: autora_audit against no audit and against what users would
# otherwise pick, side by side on one server, with the targets of issues 5
# and 12 (write path: medians of interleaved rounds, CPU and WAL beside).
# `make bench` runs it against a throwaway cluster (tools/harness.sh); it
# also runs against any server where the extension, pgaudit and pgcrypto are
# installed and preloaded:
#   PGHOST=... PGPORT=... PGUSER=postgres BENCH_PG_BINDIR=... bash bench/run.sh
# It creates databases bench_* and the role bench_app, and writes
# bench/RESULTS.md and bench/results.csv (raw logs in bench/out/).
#
# Knobs (environment): BENCH_REPS (3) repetitions of each bulk operation
# (interleaved, median kept),
# BENCH_ROWS (100000), BENCH_BIG_ROWS (1000000) rows of the memory test,
# BENCH_SECONDS (10) per pgbench run, BENCH_PGBENCH_ROUNDS (3) runs of each
# configuration (interleaved, median kept: issue 12), BENCH_READ_SECONDS (5) and
# BENCH_READ_ROUNDS (3) for the read (interleaved, best kept),
# BENCH_SLOW_MS (20000): a configuration whose bulk run takes longer is not
# repeated; BENCH_BULK_TIMEOUT (60): a bulk statement running longer is
# cancelled and reported as "> 60000 ms" (the plpgsql hash chain needs
# minutes for 100k rows in one transaction).  The OLTP mix (issue 12):
# BENCH_OLTP_TENANTS ("8"; "1 8" runs both) stores among which each
# transaction picks, BENCH_OLTP_ROWS (5000) rows preloaded per store,
# BENCH_OLTP_CONFIGS (all five; at least "baseline autora") the
# configurations that run it, BENCH_PGBENCH_ROUNDS rounds of BENCH_SECONDS.
# BENCH_QUICK=1 shrinks everything for a smoke run (its numbers are not
# results: RESULTS.md is then written to bench/out/ only).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
SQLDIR=$BENCH_DIR/sql
PGBDIR=$BENCH_DIR/pgbench
OUT=$BENCH_DIR/out
BINDIR=${BENCH_PG_BINDIR:-$(pg_config --bindir 2>/dev/null || dirname "$(command -v psql)")}

QUICK=${BENCH_QUICK:-0}
if [[ $QUICK == 1 ]]; then
    : "${BENCH_REPS:=1}" "${BENCH_ROWS:=10000}" "${BENCH_BIG_ROWS:=50000}"
    : "${BENCH_SECONDS:=4}" "${BENCH_READ_SECONDS:=2}" "${BENCH_PGBENCH_ROUNDS:=1}" "${BENCH_READ_ROUNDS:=2}"
    : "${BENCH_OLTP_ROWS:=1000}"
fi
REPS=${BENCH_REPS:-3}
ROWS=${BENCH_ROWS:-100000}
BIG_ROWS=${BENCH_BIG_ROWS:-1000000}
SECS=${BENCH_SECONDS:-10}
READ_SECS=${BENCH_READ_SECONDS:-5}
PGB_ROUNDS=${BENCH_PGBENCH_ROUNDS:-3}
READ_ROUNDS=${BENCH_READ_ROUNDS:-3}
SLOW_MS=${BENCH_SLOW_MS:-20000}
BULK_TIMEOUT_S=${BENCH_BULK_TIMEOUT:-60}
READ_ROWS_PER_TENANT=$((ROWS / 2))
OLTP_TENANTS=${BENCH_OLTP_TENANTS:-8}
OLTP_ROWS=${BENCH_OLTP_ROWS:-5000}

# configurations, in run order; DB[] their databases, LABEL[] their names
CONFIGS=(baseline autora jsonb_trigger hash_chain pgaudit)
declare -A DB=(
    [baseline]=bench_baseline [autora]=bench_autora [jsonb_trigger]=bench_jsonb_trigger
    [hash_chain]=bench_hash_chain [pgaudit]=bench_pgaudit
)
declare -A LABEL=(
    [baseline]='baseline (no audit)'
    [autora]='autora_audit'
    [jsonb_trigger]='plpgsql to_jsonb trigger'
    [hash_chain]='plpgsql hash chain'
    [pgaudit]="pgaudit (log = 'write')"
)

# the configurations that run the OLTP mix (baseline and autora at least)
read -r -a OLTP_CONFIGS <<<"${BENCH_OLTP_CONFIGS:-${CONFIGS[*]}}"

PSQL=("$BINDIR/psql" -X -q -v ON_ERROR_STOP=1)
PGBENCH=("$BINDIR/pgbench" -n -M prepared)

START_EPOCH=$(date +%s)

die() {
    echo "bench: $*" >&2
    exit 1
}

log() {
    printf '[%4ds] %s\n' $(($(date +%s) - START_EPOCH)) "$*"
}

# sql DB ARGS...: psql as the connecting superuser, unaligned, tuples only.
sql() {
    local db=$1
    shift
    "${PSQL[@]}" -At -d "$db" "$@"
}

# app_sql DB ARGS...: the same as the application role.
app_sql() {
    PGUSER=bench_app sql "$@"
}

# Sum of psql \timing lines of a log, in ms.
sum_timing() {
    awk '/^Time: [0-9.]+ ms/ { s += $2 } END { printf "%.1f\n", s }' "$1"
}

median() {
    printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
        END { if (NR % 2) print a[(NR + 1) / 2]; else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# "> N" (N = the timeout in ms) if any run timed out, else the median run.
median_or_timeout() {   # "v1 v2 ..."
    if [[ " $1 " == *' TIMEOUT '* ]]; then
        echo ">$((BULK_TIMEOUT_S * 1000))"
    else
        # shellcheck disable=SC2086
        median $1
    fi
}

runs_list() {   # "v1 v2 ..." -> "v1;v2;..."
    # shellcheck disable=SC2086
    echo $1 | tr ' ' ';'
}

wal_lsn() {
    sql postgres -c 'SELECT pg_current_wal_lsn()'
}

# WAL bytes written since LSN, per unit (row or transaction), whole bytes.
wal_since() {   # lsn units
    sql postgres -c "SELECT round(pg_wal_lsn_diff(pg_current_wal_lsn(), '$1') / greatest($2, 1))"
}

minimum() {
    printf '%s\n' "$@" | sort -g | head -n 1
}

# The statement that sets the session context for a transaction, the way
# the application would: autora's trusted setter, or plain custom settings.
ctx_sql() {   # cfg tenant
    local extra='{"ip": "203.0.113.7", "endpoint": "/api/deals/import", "method": "POST"}'
    if [[ $1 == autora ]]; then
        printf "SELECT autora.set_context_trusted('%s', 'bench', 'sales', '%s');" "$2" "$extra"
    else
        printf "SELECT set_config('app.tenant', '%s', true), set_config('app.actor', 'bench', true), set_config('app.role', 'sales', true), set_config('app.ctx', '%s', true);" "$2" "$extra"
    fi
}

# What runs in the session of a timed bulk transaction, before and after
# it: autora notes the ledger's high-water mark (a MARK line); every
# configuration notes when the transaction committed (a COMMITTED line).
before_sql() {   # cfg
    if [[ $1 == autora ]]; then
        echo "SELECT 'MARK', bench_mark();"
    else
        echo "SELECT 'NOMARK';"
    fi
}

COMMITTED_SQL="SELECT 'COMMITTED', extract(epoch FROM clock_timestamp());"

# The pid of autora's sealer worker for bench_autora, empty if none runs.
sealer_pid() {
    sql "${DB[autora]}" -c "SELECT pid FROM autora.sealer_status WHERE datname = current_database() AND pid IS NOT NULL LIMIT 1"
}

# Empty a deals-shaped table between runs. autora refuses TRUNCATE of a
# protected table unless a superuser allows it (one TRUNCATE entry per tenant).
reset_table() {   # cfg table
    local pre=''
    [[ $1 == autora ]] && pre='SET autora.allow_truncate = on;'
    sql "${DB[$1]}" -c "$pre TRUNCATE $2 RESTART IDENTITY" >/dev/null
}

# Same starting line for every timed run: no dead rows, fresh statistics,
# nothing dirty in shared buffers, sealer idle.
settle() {   # cfg
    sql "${DB[$1]}" -c 'VACUUM ANALYZE' >/dev/null
    if [[ $1 == autora ]]; then
        sql "${DB[$1]}" -c 'SELECT bench_wait_sealed()' >/dev/null
    fi
    sql postgres -c 'CHECKPOINT' >/dev/null
}

# Runs bulk_insert.sql or bulk_update.sql as the app; prints "ms drain_ms
# cpu_ms", or "TIMEOUT - -" when the statement ran past BENCH_BULK_TIMEOUT.
# drain_ms: for autora, from the commit until the background sealer has
# sealed everything the transaction wrote (watched from a second session),
# else "-".  cpu_ms: CPU time of all server processes from before the
# session to its end, plus, for autora, the sealer's until that drain (not
# the watching session's); "-" when the server's processes are not visible.
timed_bulk() {   # cfg kind(insert|update) table tenant rows logname [timeout_s]
    local cfg=$1 kind=$2 tbl=$3 tenant=$4 rows=$5 logf=$OUT/$6.log timeout=${7:-0}
    local sealer='' c0='' c1='' s1=0 s2=0 mark committed sealed_at drain=- cpu=-
    if [[ $cfg == autora ]]; then sealer=$(sealer_pid); fi
    if [[ -n $POSTMASTER_PID ]]; then c0=$(server_cpu_ticks); fi
    if ! app_sql "${DB[$cfg]}" -v ctx="$(ctx_sql "$cfg" "$tenant")" -v tbl="$tbl" \
        -v tenant="$tenant" -v rows="$rows" -v before="$(before_sql "$cfg")" \
        -v after="$COMMITTED_SQL" -v timeout="${timeout}s" -f "$SQLDIR/bulk_$kind.sql" >"$logf" 2>&1; then
        if grep -q 'canceling statement due to statement timeout' "$logf"; then
            echo "TIMEOUT - -"
            return 0
        fi
        cat "$logf" >&2
        die "bulk $kind failed for $cfg (log: $logf)"
    fi
    if [[ -n $POSTMASTER_PID ]]; then
        if [[ -n $sealer ]]; then s1=$(proc_cpu_ticks "$sealer"); fi
        c1=$(server_cpu_ticks)
    fi
    if [[ $cfg == autora ]]; then
        mark=$(awk -F'|' '$1 == "MARK" { print $2 }' "$logf")
        committed=$(awk -F'|' '$1 == "COMMITTED" { print $2 }' "$logf")
        sealed_at=$(app_sql "${DB[$cfg]}" -c "SELECT bench_wait_sealed(${mark:?no MARK in $logf}), extract(epoch FROM clock_timestamp())" |
            cut -d'|' -f2)
        if [[ -n $sealer ]]; then s2=$(proc_cpu_ticks "$sealer"); fi
        drain=$(awk -v a="$sealed_at" -v c="${committed:?no COMMITTED in $logf}" 'BEGIN { printf "%.1f\n", (a - c) * 1000 }')
        echo "DRAIN|$drain" >>"$logf"
    fi
    if [[ -n $c0 && -n $c1 ]]; then
        cpu=$(((c1 - c0 + s2 - s1) * 1000 / CLK_TCK))
    fi
    echo "$(sum_timing "$logf") $drain $cpu"
}

# Microseconds per row from milliseconds for ROWS rows, 1 decimal ("-" stays).
us_per_row() {   # ms rows
    [[ $1 != - ]] || { echo -; return 0; }
    awk -v ms="$1" -v n="$2" 'BEGIN { printf "%.1f\n", ms * 1000 / n }'
}

# Fills a table without timing it and without the audit triggers where that
# is possible (superuser, session_replication_role = replica skips ordinary
# triggers; autora's are ENABLE ALWAYS, so it is loaded as the app instead).
load_untimed() {   # cfg table tenant rows logname
    local cfg=$1
    if [[ $cfg == autora ]]; then
        timed_bulk "$cfg" insert "${@:2}" >/dev/null
        return 0
    fi
    sql "${DB[$cfg]}" -c 'SET session_replication_role = replica' -v ctx="$(ctx_sql "$cfg" "$3")" \
        -v tbl="$2" -v tenant="$3" -v rows="$4" -v before='' -v after='' -v timeout=0 \
        -f "$SQLDIR/bulk_insert.sql" >"$OUT/$5.log" 2>&1 ||
        { cat "$OUT/$5.log" >&2; die "loading $2 failed for $cfg"; }
}

# ---------------------------------------------------------------- results

# RES[measure|cfg]=value, RUNS[measure|cfg]="v1;v2;..", NOTE[measure|cfg]
declare -A RES=() RUNS=() NOTE=()
CSV_ROWS=()

put() {   # measure cfg value [runs] [note]
    RES["$1|$2"]=$3
    RUNS["$1|$2"]=${4:-$3}
    NOTE["$1|$2"]=${5:-}
}

get() {
    echo "${RES["$1|$2"]:-}"
}

# ratio VALUE BASE -> "1.23" (empty if either is missing; ">12.3" when
# VALUE is a lower bound such as ">60000" for a run that timed out)
ratio() {
    local a=$1 pre=''
    [[ -n $1 && -n $2 && $1 != - && $2 != - ]] || return 0
    if [[ $a == '>'* ]]; then
        a=${a#>}
        pre='>'
    fi
    awk -v a="$a" -v b="$2" -v p="$pre" 'BEGIN { if (b > 0) printf "%s%.2f\n", p, a / b }'
}

# ---------------------------------------------------------------- set-up

machine_info() {
    local dirty=''
    CPU_MODEL=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
    CPU_MODEL=${CPU_MODEL:-unknown}
    NPROC=$(nproc)
    MEM_GB=$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)
    PG_VERSION=$(sql postgres -c 'SHOW server_version')
    COMMIT=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$REPO" status --porcelain -- src sql Makefile autora_audit.control 2>/dev/null) ]]; then
        dirty=' + uncommitted changes in src/ or sql/'
    fi
    COMMIT_DESC="$COMMIT$dirty"
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    SETTINGS=$(sql postgres -c "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)
        FROM pg_settings WHERE name IN ('shared_buffers', 'synchronous_commit', 'fsync', 'max_wal_size',
                                        'wal_level', 'checkpoint_timeout', 'autovacuum')")
    SEAL_INTERVAL=$(sql postgres -c "SELECT current_setting('autora.seal_interval', true)")
    # the server's processes, when they run on this machine (CPU per transaction)
    local child
    child=$(sql postgres -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'")
    POSTMASTER_PID=$(awk '/^PPid:/ { print $2 }' "/proc/$child/status" 2>/dev/null || true)
    if [[ -z $POSTMASTER_PID || $(cat "/proc/$POSTMASTER_PID/comm" 2>/dev/null) != postgres* ]] ||
        ! command -v pgrep >/dev/null; then
        POSTMASTER_PID=''
    fi
    CLK_TCK=$(getconf CLK_TCK)
}

setup() {
    local cfg db
    log "set-up: role bench_app, databases ${CONFIGS[*]/#/bench_}"
    for cfg in "${CONFIGS[@]}"; do
        sql postgres -c "DROP DATABASE IF EXISTS ${DB[$cfg]} WITH (FORCE)" >/dev/null 2>&1 ||
            die "could not drop old database ${DB[$cfg]}: the ledger guard refuses dropping an autora ledger with entries? drop it by hand"
    done
    sql postgres -c "DROP ROLE IF EXISTS bench_app" >/dev/null 2>&1 || true
    sql postgres -c "CREATE ROLE bench_app LOGIN" >/dev/null
    for cfg in "${CONFIGS[@]}"; do
        db=${DB[$cfg]}
        sql postgres -c "CREATE DATABASE $db" >/dev/null
        sql "$db" -f "$SQLDIR/common.sql" >/dev/null
        sql "$db" -f "$SQLDIR/cfg_$cfg.sql" >/dev/null
    done
    sql postgres -c "ALTER DATABASE ${DB[pgaudit]} SET pgaudit.log = 'write'" >/dev/null
    [[ $(app_sql "${DB[pgaudit]}" -c 'SHOW pgaudit.log') == write ]] ||
        die "pgaudit.log is not 'write' in ${DB[pgaudit]}: is pgaudit preloaded?"
    [[ $(sql "${DB[autora]}" -c "SELECT count(*) FROM autora.protected_tables") == 3 ]] ||
        die "autora.protect() did not register deals, deals_read and deals_oltp"
}

# ---------------------------------------------------------------- workloads

bench_bulk() {
    local rep cfg ms drain cpu ins upd lsn0
    declare -A ins_runs=() upd_runs=() ins_drain=() upd_drain=() slow=() done_runs=() wal_ins=() wal_upd=()
    declare -A cpu_ins=() cpu_upd=()
    for ((rep = 1; rep <= REPS; rep++)); do
        for cfg in "${CONFIGS[@]}"; do
            [[ -n ${slow[$cfg]:-} ]] && continue
            reset_table "$cfg" deals
            settle "$cfg"
            lsn0=$(wal_lsn)
            _r=$(timed_bulk "$cfg" insert deals t1 "$ROWS" "bulk_insert_${cfg}_$rep" "$BULK_TIMEOUT_S")
            read -r ms drain cpu <<<"$_r"
            if [[ $ms != TIMEOUT ]]; then wal_ins[$cfg]+="$(wal_since "$lsn0" "$ROWS") "; fi
            if [[ $cpu != - ]]; then cpu_ins[$cfg]+="$(us_per_row "$cpu" "$ROWS") "; fi
            ins=$ms
            ins_runs[$cfg]+="$ms "
            if [[ $drain != - ]]; then ins_drain[$cfg]+="$drain "; fi
            if [[ $ms == TIMEOUT ]]; then
                # the UPDATE still needs its rows
                reset_table "$cfg" deals
                load_untimed "$cfg" deals t1 "$ROWS" "bulk_load_${cfg}_$rep"
            fi
            settle "$cfg"
            lsn0=$(wal_lsn)
            _r=$(timed_bulk "$cfg" update deals t1 "" "bulk_update_${cfg}_$rep" "$BULK_TIMEOUT_S")
            read -r ms drain cpu <<<"$_r"
            if [[ $ms != TIMEOUT ]]; then wal_upd[$cfg]+="$(wal_since "$lsn0" "$ROWS") "; fi
            if [[ $cpu != - ]]; then cpu_upd[$cfg]+="$(us_per_row "$cpu" "$ROWS") "; fi
            upd=$ms
            upd_runs[$cfg]+="$ms "
            if [[ $drain != - ]]; then upd_drain[$cfg]+="$drain "; fi
            done_runs[$cfg]=$rep
            log "bulk rep $rep/$REPS $cfg: insert ${ins} ms, update ${upd} ms"
            if [[ $ins == TIMEOUT || $upd == TIMEOUT ]] ||
                awk -v a="$ins" -v b="$upd" -v s="$SLOW_MS" 'BEGIN { exit !(a > s || b > s) }'; then
                slow[$cfg]=1
            fi
        done
    done
    for cfg in "${CONFIGS[@]}"; do
        local note=''
        put bulk_insert "$cfg" "$(median_or_timeout "${ins_runs[$cfg]}")" "$(runs_list "${ins_runs[$cfg]}")"
        put bulk_update "$cfg" "$(median_or_timeout "${upd_runs[$cfg]}")" "$(runs_list "${upd_runs[$cfg]}")"
        if [[ -n ${wal_ins[$cfg]:-} ]]; then
            # shellcheck disable=SC2086
            put wal_bulk_insert "$cfg" "$(median ${wal_ins[$cfg]})" "$(runs_list "${wal_ins[$cfg]}")"
        fi
        if [[ -n ${wal_upd[$cfg]:-} ]]; then
            # shellcheck disable=SC2086
            put wal_bulk_update "$cfg" "$(median ${wal_upd[$cfg]})" "$(runs_list "${wal_upd[$cfg]}")"
        fi
        if [[ -n ${cpu_ins[$cfg]:-} ]]; then
            # shellcheck disable=SC2086
            put cpu_bulk_insert "$cfg" "$(median ${cpu_ins[$cfg]})" "$(runs_list "${cpu_ins[$cfg]}")"
        fi
        if [[ -n ${cpu_upd[$cfg]:-} ]]; then
            # shellcheck disable=SC2086
            put cpu_bulk_update "$cfg" "$(median ${cpu_upd[$cfg]})" "$(runs_list "${cpu_upd[$cfg]}")"
        fi
        if [[ -n ${slow[$cfg]:-} && ${done_runs[$cfg]} -lt $REPS ]]; then
            note="${done_runs[$cfg]} run(s): a run took over ${SLOW_MS} ms, not repeated"
            NOTE["bulk_insert|$cfg"]=$note
            NOTE["bulk_update|$cfg"]=$note
        fi
    done
    # shellcheck disable=SC2086
    put seal_drain_bulk_insert autora "$(median ${ins_drain[autora]})" "$(echo ${ins_drain[autora]} | tr ' ' ';')"
    # shellcheck disable=SC2086
    put seal_drain_bulk_update autora "$(median ${upd_drain[autora]})" "$(echo ${upd_drain[autora]} | tr ' ' ';')"
}

# pgbench: 4 clients, 2 threads, the workload's transactions
# (bench/pgbench/WORKLOAD_app.sql, or WORKLOAD_autora.sql for autora).  Prints
# "tps cpu_us": cpu_us is the CPU time of all server processes (backends,
# sealer, WAL writer, ...) per transaction, read from /proc between 2 s after
# the start and 1 s before the end: unlike tps, other load on the machine
# barely moves it.  "-" when the server's processes are not visible here.
run_pgbench() {   # cfg ntenants logname workload(insert|oltp)
    local cfg=$1 n=$2 logf=$OUT/$3.log script tps pid c0='' c1='' cpu=-
    script=$PGBDIR/${4}_app.sql
    [[ $cfg == autora ]] && script=$PGBDIR/${4}_autora.sql
    PGUSER=bench_app "${PGBENCH[@]}" -c 4 -j 2 -T "$SECS" -P 1 -D ntenants="$n" -D per_store="$OLTP_ROWS" \
        -f "$script" "${DB[$cfg]}" >"$logf" 2>&1 &
    pid=$!
    if [[ -n $POSTMASTER_PID ]]; then
        sleep 2
        c0=$(server_cpu_ticks)
        sleep $((SECS - 3))
        c1=$(server_cpu_ticks)
    fi
    wait "$pid" || { cat "$logf" >&2; die "pgbench failed for $cfg (log: $logf)"; }
    if grep -q 'aborted\|ERROR' "$logf"; then
        cat "$logf" >&2
        die "pgbench reported errors for $cfg (log: $logf)"
    fi
    tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection time)$/\1/p' "$logf")
    [[ -n $tps ]] || { cat "$logf" >&2; die "no tps in $logf"; }
    if [[ -n $c0 && -n $c1 ]]; then
        cpu=$(awk -v c0="$c0" -v c1="$c1" -v hz="$CLK_TCK" -v lo=2 -v hi=$((SECS - 1)) '
            /^progress: / { t = $2 + 0; if (t > lo && t <= hi) tx += $4 }
            END { if (tx > 0) printf "%.1f\n", (c1 - c0) / hz * 1e6 / tx; else print "-" }' "$logf")
    fi
    printf '%.1f %s\n' "$tps" "$cpu"
}

# After a pgbench run: VACUUM ANALYZE the configuration's database, so that
# autovacuum does not clean up after it while the next configuration runs
# (server CPU and WAL are counted for the whole server).
tidy_after() {   # cfg
    sql "${DB[$1]}" -c 'VACUUM ANALYZE' >/dev/null
}

# CPU time (clock ticks) used so far by the server: its live processes, plus
# the postmaster's own and that of the children it has reaped (cutime,
# cstime), so a backend or autovacuum worker that exits between two readings
# still counts.
server_cpu_ticks() {
    local p total=0 f
    for p in $(pgrep -P "$POSTMASTER_PID"); do
        total=$((total + $(proc_cpu_ticks "$p")))
    done
    # fields 14 to 17: utime, stime, cutime, cstime
    read -r -a f 2>/dev/null <"/proc/$POSTMASTER_PID/stat" || { echo "$total"; return 0; }
    echo $((total + f[13] + f[14] + f[15] + f[16]))
}

# CPU time (clock ticks) used so far by one process; 0 if it is gone.
proc_cpu_ticks() {   # pid
    local f
    # fields 14 and 15: utime, stime (the command name in field 2 has no spaces here)
    read -r -a f 2>/dev/null <"/proc/$1/stat" || { echo 0; return 0; }
    echo $((f[13] + f[14]))
}

pgbench_txns() {   # log
    sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$1"
}

# Lag from capture (entry ts, within a millisecond of commit for these
# one-row transactions) to the block that sealed the entry, for the INSERT
# entries above ledger id SINCE: p50 p95 max count.  Hash join of two range
# scans: the ledger's id index is BRIN, so probing it id by id would crawl.
seal_lag_stats() {   # since
    sql "${DB[autora]}" -F ' ' -v since="$1" <<'EOF'
WITH e AS MATERIALIZED (
        SELECT b.sealed_at, e.id
          FROM autora.ledger_blocks b, unnest(b.entry_ids) AS e(id)
         WHERE b.last_entry > :since AND e.id > :since),
     l AS MATERIALIZED (
        SELECT id, ts FROM autora.ledger WHERE id > :since AND op = 'INSERT')
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY lag)::numeric, 1),
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY lag)::numeric, 1),
       round(max(lag)::numeric, 1),
       count(*)
  FROM (SELECT extract(epoch FROM e.sealed_at - l.ts) * 1000 AS lag
          FROM e JOIN l USING (id)) s;
EOF
}

bench_pgbench() {
    local n cfg tps cpu since='' mark drain='' p50 p95 max cnt measure round lsn0 wal
    for n in 1 8; do
        measure=pgbench_${n}t
        declare -A tpss=() wals=() cpus=()
        for ((round = 1; round <= PGB_ROUNDS; round++)); do
            for cfg in "${CONFIGS[@]}"; do
                reset_table "$cfg" deals
                settle "$cfg"
                if [[ $cfg == autora ]]; then
                    mark=$(sql "${DB[$cfg]}" -c 'SELECT bench_ledger_mark()')
                    if [[ $round == 1 ]]; then since=$mark; fi
                fi
                lsn0=$(wal_lsn)
                _r=$(run_pgbench "$cfg" "$n" "pgbench_${n}t_${cfg}_$round" insert)
                read -r tps cpu <<<"$_r"
                tpss[$cfg]+="$tps "
                if [[ $cpu != - ]]; then cpus[$cfg]+="$cpu "; fi
                if [[ $cfg == autora ]]; then
                    drain=$(sql "${DB[autora]}" -c "SELECT bench_wait_sealed($mark)")
                    put "seal_drain_pgbench_${n}t_$round" autora "$drain"
                fi
                # per transaction, sealing included
                wal=$(wal_since "$lsn0" "$(pgbench_txns "$OUT/pgbench_${n}t_${cfg}_$round.log")")
                wals[$cfg]+="$wal "
                log "pgbench $n tenant(s) round $round/$PGB_ROUNDS $cfg: $tps tps, $cpu us server CPU and $wal WAL bytes per transaction${drain:+; all sealed $drain ms after the load}"
                tidy_after "$cfg"
                drain=
            done
        done
        for cfg in "${CONFIGS[@]}"; do
            # shellcheck disable=SC2086
            put "$measure" "$cfg" "$(median ${tpss[$cfg]})" "$(runs_list "${tpss[$cfg]}")"
            # shellcheck disable=SC2086
            put "wal_pgbench_${n}t" "$cfg" "$(median ${wals[$cfg]})" "$(runs_list "${wals[$cfg]}")"
            if [[ -n ${cpus[$cfg]:-} ]]; then
                # shellcheck disable=SC2086
                put "cpu_pgbench_${n}t" "$cfg" "$(median ${cpus[$cfg]})" "$(runs_list "${cpus[$cfg]}")"
            fi
        done
        _r=$(seal_lag_stats "$since")
        read -r p50 p95 max cnt <<<"$_r"
        put "seal_lag_p50_${n}t" autora "$p50"
        put "seal_lag_p95_${n}t" autora "$p95"
        put "seal_lag_max_${n}t" autora "$max" "$max" "$cnt entries"
        log "  seal lag under load ($n tenant(s)): p50 $p50 ms, p95 $p95 ms, max $max ms over $cnt entries"
        unset tpss wals cpus
    done
}

# deals_oltp as every OLTP round finds it: 8 stores of OLTP_ROWS rows under
# known ids (bench/sql/oltp_load.sql), the id sequence above them, no dead
# rows, analyzed.  autora's rows are loaded as the app (its triggers always
# fire), the others' as superuser with session_replication_role = replica
# (no audit of the load).  The checkpoint comes before the load: each page
# of the table was then written since, so the run's first change to it
# needs no full-page image, which would otherwise weigh more in the WAL per
# transaction of a configuration the fewer transactions it runs.
oltp_reset() {   # cfg
    local cfg=$1 db=${DB[$1]} i total=$((8 * OLTP_ROWS)) logf=$OUT/oltp_load_$1.log
    local -a load=(sql "$db" -c 'SET session_replication_role = replica')
    [[ $cfg == autora ]] && load=(app_sql "$db")
    reset_table "$cfg" deals_oltp
    settle "$cfg"
    for i in 1 2 3 4 5 6 7 8; do
        "${load[@]}" -v ctx="$(ctx_sql "$cfg" "t$i")" -v tenant="t$i" -v first=$(((i - 1) * OLTP_ROWS + 1)) \
            -v rows="$OLTP_ROWS" -f "$SQLDIR/oltp_load.sql" >"$logf" 2>&1 ||
            { cat "$logf" >&2; die "loading deals_oltp failed for $cfg"; }
    done
    sql "$db" -c "SELECT setval('deals_oltp_id_seq', $total)" >/dev/null
    [[ $(sql "$db" -c "SELECT count(*) FROM deals_oltp WHERE id BETWEEN 1 AND $total
                         AND tenant_id = 't' || (1 + (id - 1) / $OLTP_ROWS)
                         AND vin = '1HGCM8' || lpad(id::text, 11, '0')") == "$total" ]] ||
        die "deals_oltp of $cfg does not hold $OLTP_ROWS rows per store under the ids oltp_*.sql expect"
    sql "$db" -c 'VACUUM ANALYZE deals_oltp' >/dev/null
    if [[ $cfg == autora ]]; then
        sql "$db" -c 'SELECT bench_wait_sealed()' >/dev/null
    fi
}

# Rows inserted and updated in deals_oltp so far (statistics): "ins upd".
# Waits until the database's sessions are gone, so their counts are flushed.
oltp_row_counts() {   # cfg
    local db=${DB[$1]} i
    for ((i = 0; i < 500; i++)); do
        [[ $(sql postgres -c "SELECT count(*) FROM pg_stat_activity WHERE datname = '$db' AND backend_type = 'client backend'") == 0 ]] &&
            break
        sleep 0.01
    done
    sql "$db" -F ' ' -c "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relid = 'deals_oltp'::regclass"
}

# The OLTP mix (issue 12): per transaction the context, 1 INSERT, 2
# single-row UPDATEs of the store's own rows, 5 indexed SELECTs
# (bench/pgbench/oltp_*.sql), 4 clients, configurations interleaved, each
# round from a freshly loaded deals_oltp.  Checks that every configuration
# inserted 1 and updated 2 rows per transaction: an UPDATE that RLS turned
# into a no-op would flatter it.
bench_oltp() {
    local n cfg tps cpu mark drain='' measure round lsn0 wal txns ins0 upd0 ins1 upd1 rows
    log "OLTP mix: ${OLTP_CONFIGS[*]}; 8 stores x $OLTP_ROWS rows; transactions pick among $OLTP_TENANTS store(s)"
    for n in $OLTP_TENANTS; do
        measure=oltp_${n}t
        declare -A tpss=() wals=() cpus=()
        for ((round = 1; round <= PGB_ROUNDS; round++)); do
            for cfg in "${OLTP_CONFIGS[@]}"; do
                oltp_reset "$cfg"
                if [[ $cfg == autora ]]; then mark=$(sql "${DB[$cfg]}" -c 'SELECT bench_ledger_mark()'); fi
                read -r ins0 upd0 <<<"$(oltp_row_counts "$cfg")"
                lsn0=$(wal_lsn)
                _r=$(run_pgbench "$cfg" "$n" "oltp_${n}t_${cfg}_$round" oltp)
                read -r tps cpu <<<"$_r"
                tpss[$cfg]+="$tps "
                if [[ $cpu != - ]]; then cpus[$cfg]+="$cpu "; fi
                if [[ $cfg == autora ]]; then
                    drain=$(sql "${DB[autora]}" -c "SELECT bench_wait_sealed($mark)")
                fi
                txns=$(pgbench_txns "$OUT/oltp_${n}t_${cfg}_$round.log")
                # per transaction, sealing included
                wal=$(wal_since "$lsn0" "$txns")
                wals[$cfg]+="$wal "
                read -r ins1 upd1 <<<"$(oltp_row_counts "$cfg")"
                rows=$(awk -v i=$((ins1 - ins0)) -v u=$((upd1 - upd0)) -v t="$txns" \
                    'BEGIN { printf "%.3f %.3f\n", i / t, u / t }')
                log "OLTP mix $n tenant(s) round $round/$PGB_ROUNDS $cfg: $tps tps, $cpu us server CPU and $wal WAL bytes per transaction; ${rows% *} rows inserted and ${rows#* } updated per transaction${drain:+; all sealed $drain ms after the load}"
                # in-flight transactions at the end add a few rows, rolled back or not
                if ! awk -v r="$rows" 'BEGIN { split(r, a, " "); exit !(a[1] >= 0.98 && a[1] <= 1.05 && a[2] >= 1.96 && a[2] <= 2.1) }'; then
                    BUGS+=("OLTP mix, $cfg, $n tenant(s), round $round: $rows rows inserted / updated per transaction where 1 / 2 were meant (see $OUT/oltp_${n}t_${cfg}_$round.log)")
                fi
                tidy_after "$cfg"
                drain=
            done
        done
        for cfg in "${OLTP_CONFIGS[@]}"; do
            # shellcheck disable=SC2086
            put "$measure" "$cfg" "$(median ${tpss[$cfg]})" "$(runs_list "${tpss[$cfg]}")"
            # shellcheck disable=SC2086
            put "wal_oltp_${n}t" "$cfg" "$(median ${wals[$cfg]})" "$(runs_list "${wals[$cfg]}")"
            if [[ -n ${cpus[$cfg]:-} ]]; then
                # shellcheck disable=SC2086
                put "cpu_oltp_${n}t" "$cfg" "$(median ${cpus[$cfg]})" "$(runs_list "${cpus[$cfg]}")"
            fi
        done
        unset tpss wals cpus
    done
}

# One store's rows: protected table (RLS when autora has it) vs a
# hand-written WHERE on an unprotected copy.
READ_MODE=''
bench_read() {
    local cfg i round lat script rls logf
    declare -A lats=()
    log "read: loading deals_read (8 stores x $READ_ROWS_PER_TENANT rows) in baseline and autora"
    for cfg in baseline autora; do
        for i in 1 2 3 4 5 6 7 8; do
            timed_bulk "$cfg" insert deals_read "t$i" "$READ_ROWS_PER_TENANT" "read_load_${cfg}_t$i" >/dev/null
        done
        settle "$cfg"
    done
    rls=$(sql "${DB[autora]}" -c "SELECT relrowsecurity FROM pg_class WHERE oid = 'deals_read'::regclass")
    if [[ $rls == t ]]; then
        READ_MODE=rls
    else
        READ_MODE=pending
    fi
    for ((round = 1; round <= READ_ROUNDS; round++)); do
        for cfg in baseline autora; do
            script=$PGBDIR/read_where_app.sql
            if [[ $cfg == autora ]]; then
                script=$PGBDIR/read_where_autora.sql
                [[ $READ_MODE == rls ]] && script=$PGBDIR/read_rls_autora.sql
            fi
            logf=$OUT/read_${cfg}_$round.log
            PGUSER=bench_app "${PGBENCH[@]}" -c 1 -j 1 -T "$READ_SECS" -f "$script" "${DB[$cfg]}" \
                >"$logf" 2>&1 || { cat "$logf" >&2; die "read pgbench failed for $cfg"; }
            lat=$(sed -n 's/^latency average = \([0-9.]*\) ms$/\1/p' "$logf")
            [[ -n $lat ]] || { cat "$logf" >&2; die "no latency in $logf"; }
            lats[$cfg]+="$lat "
            log "read round $round $cfg ($(basename "$script" .sql)): $lat ms"
        done
    done
    for cfg in baseline autora; do
        # shellcheck disable=SC2086
        put read_one_tenant "$cfg" "$(minimum ${lats[$cfg]})" "$(echo ${lats[$cfg]} | tr ' ' ';')"
    done
    # sanity: both return the same store's rows
    local a b
    a=$(app_sql "${DB[baseline]}" -c "SELECT count(*) FROM deals_read WHERE tenant_id = 't3'")
    b=$(app_sql "${DB[autora]}" -c "BEGIN" -c "SELECT autora.set_context_trusted('t3', 'user7', 'sales')" \
        -c "SELECT count(*) FROM deals_read $([[ $READ_MODE == rls ]] || echo "WHERE tenant_id = 't3'")" -c "COMMIT" | sed -n 2p)
    [[ $a == "$b" ]] || die "read check: baseline sees $a rows of t3, autora $b"
}

# autora.verify() throughput: entries per second, best of 2.
verify_run() {   # logname -> "ms entries all_ok"
    local logf=$OUT/$1.log
    sql "${DB[autora]}" -c 'SELECT autora.seal()' >/dev/null
    sql "${DB[autora]}" -F ' ' >"$logf" 2>&1 <<'EOF' || { cat "$logf" >&2; die "verify failed"; }
\timing on
SELECT 'VERIFY', sum(entries), bool_and(coalesce(ok, false)), count(*) FROM autora.verify();
\timing off
SELECT 'ROW', tenant_id, entries, sealed, blocks, ok, first_bad_entry, detail FROM autora.verify() ORDER BY tenant_id NULLS FIRST;
EOF
    echo "$(sum_timing "$logf") $(awk '$1 == "VERIFY" { print $2, $3 }' "$logf")"
}

bench_verify() {
    local ms1 ms2 n ok
    _r=$(verify_run verify_1)
    read -r ms1 n ok <<<"$_r"
    _r=$(verify_run verify_2)
    read -r ms2 n ok <<<"$_r"
    log "verify over $n entries: $ms1 ms, $ms2 ms (all ok: $ok)"
    put verify_entries_per_s autora "$(awk -v n="$n" -v ms="$(minimum "$ms1" "$ms2")" 'BEGIN { printf "%.0f\n", n / (ms / 1000) }')" \
        "$ms1;$ms2" "$n entries, best of 2 (ms: $ms1; $ms2)"
    VERIFY_ENTRIES=$n
    VERIFY_OK=$ok
    [[ $ok == t ]] || BUGS+=("autora.verify() does not report ok = true for every chain after the workloads (see $OUT/verify_1.log)")
}

# Peak memory of the backend running a 1M-row UPDATE: RssAnon (private
# memory: palloc'd data, PostgreSQL's after-trigger queue) polled every 20 ms,
# and VmHWM (peak resident set, which also counts touched shared buffers).
measure_update_memory() {   # cfg label -> "ms peak_anon_kb vmhwm_kb"
    local cfg=$1 label=$2 app=bench_mem_$2 logf=$OUT/mem_$2.log ppid bpid='' i k v _
    local peak=0 hwm=0
    PGAPPNAME=$app app_sql "${DB[$cfg]}" -v ctx="$(ctx_sql "$cfg" t2)" -v tbl=deals_big \
        -v tenant=t2 -v before='' -v after='SELECT pg_sleep(0.5);' -v timeout=0 -f "$SQLDIR/bulk_update.sql" >"$logf" 2>&1 &
    ppid=$!
    for ((i = 0; i < 500; i++)); do
        bpid=$(sql postgres -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app' LIMIT 1")
        [[ -n $bpid ]] && break
        sleep 0.01
    done
    [[ -n $bpid && -r /proc/$bpid/status ]] ||
        { wait "$ppid" || true; cat "$logf" >&2; die "memory test: backend of $label not found in /proc (is the server on this machine?)"; }
    while kill -0 "$ppid" 2>/dev/null; do
        while read -r k v _; do
            case $k in
                RssAnon:) if ((v > peak)); then peak=$v; fi ;;
                VmHWM:) hwm=$v ;;
            esac
        done 2>/dev/null <"/proc/$bpid/status" || true
        sleep 0.02
    done
    wait "$ppid" || { cat "$logf" >&2; die "memory test UPDATE failed for $label"; }
    echo "$(sum_timing "$logf") $peak $hwm"
}

bench_memory() {
    local ms peak hwm drain
    log "memory: loading deals_big ($BIG_ROWS rows) in baseline"
    sql "${DB[baseline]}" -c "SELECT bench_create_deals('deals_big')" >/dev/null
    _r=$(timed_bulk baseline insert deals_big t2 "$BIG_ROWS" mem_load_baseline)
    read -r ms drain _ <<<"$_r"
    put big_insert baseline "$ms"
    settle baseline
    _r=$(measure_update_memory baseline baseline)
    read -r ms peak hwm <<<"$_r"
    put big_update baseline "$ms"
    put mem_anon_kb baseline "$peak"
    put mem_hwm_kb baseline "$hwm"
    log "memory: baseline UPDATE of $BIG_ROWS rows: $ms ms, RssAnon peak $peak kB, VmHWM $hwm kB"

    # PostgreSQL's own per-row trigger memory: the same UPDATE with one
    # empty AFTER ROW trigger (the after-trigger queue), then with an empty
    # BEFORE ROW trigger as well, the shape of autora's triggers (stamp
    # before, capture after): PostgreSQL 15 keeps some 32 bytes per row in
    # the query's ExecutorState for an UPDATE with a BEFORE ROW trigger.
    settle baseline
    sql "${DB[baseline]}" >/dev/null <<'EOF'
CREATE FUNCTION bench_noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$;
CREATE TRIGGER bench_noop AFTER INSERT OR UPDATE OR DELETE ON deals_big
    FOR EACH ROW EXECUTE FUNCTION bench_noop();
EOF
    _r=$(measure_update_memory baseline trigger_queue)
    read -r ms peak hwm <<<"$_r"
    put big_update trigger_queue "$ms"
    put mem_anon_kb trigger_queue "$peak"
    put mem_hwm_kb trigger_queue "$hwm"
    log "memory: empty AFTER ROW trigger UPDATE: $ms ms, RssAnon peak $peak kB, VmHWM $hwm kB"

    settle baseline
    sql "${DB[baseline]}" >/dev/null <<'EOF'
CREATE FUNCTION bench_noop_before() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER bench_noop_before BEFORE INSERT OR UPDATE ON deals_big
    FOR EACH ROW EXECUTE FUNCTION bench_noop_before();
EOF
    _r=$(measure_update_memory baseline trigger_shape)
    read -r ms peak hwm <<<"$_r"
    put big_update trigger_shape "$ms"
    put mem_anon_kb trigger_shape "$peak"
    put mem_hwm_kb trigger_shape "$hwm"
    log "memory: empty BEFORE + AFTER ROW triggers UPDATE: $ms ms, RssAnon peak $peak kB, VmHWM $hwm kB"

    log "memory: loading deals_big ($BIG_ROWS rows) in autora"
    sql "${DB[autora]}" -c "SELECT bench_create_deals('deals_big')" \
        -c "SELECT autora.protect('deals_big', pii_columns => '{customer_name,customer_email}')" >/dev/null
    # the reference with autora's trigger shape: does protect() attach a
    # BEFORE ROW trigger that fires for UPDATE (tgtype bits ROW 1, BEFORE 2, UPDATE 16)?
    MEM_REF=trigger_queue
    if [[ $(sql "${DB[autora]}" -c "SELECT coalesce(bool_or(tgtype & 19 = 19), false) FROM pg_trigger
                                    WHERE tgrelid = 'deals_big'::regclass AND NOT tgisinternal") == t ]]; then
        MEM_REF=trigger_shape
    fi
    _r=$(timed_bulk autora insert deals_big t2 "$BIG_ROWS" mem_load_autora)
    read -r ms drain _ <<<"$_r"
    put big_insert autora "$ms" "$ms" "sealed $drain ms after commit"
    settle autora
    _r=$(measure_update_memory autora autora)
    read -r ms peak hwm <<<"$_r"
    drain=$(sql "${DB[autora]}" -c 'SELECT bench_wait_sealed()')
    put big_update autora "$ms" "$ms" "all sealed $drain ms after the session ended"
    put mem_anon_kb autora "$peak"
    put mem_hwm_kb autora "$hwm"
    log "memory: autora UPDATE of $BIG_ROWS rows: $ms ms, RssAnon peak $peak kB, VmHWM $hwm kB (sealed $drain ms later)"
}

# ---------------------------------------------------------------- report

# status for "ratio <= t" / "ratio >= t" targets
judge() {   # ratio op target
    [[ -n $1 ]] || { echo 'n/a'; return; }
    if awk -v r="${1#>}" -v t="$3" -v op="$2" 'BEGIN { exit !((op == "le" && r <= t) || (op == "ge" && r >= t)) }'; then
        echo pass
    else
        echo MISS
    fi
}

fmt_ms() { [[ -n $1 && $1 != - ]] && printf '%s ms' "$1" || printf -- '-'; }

TARGET_ROWS=()
target_row() {   # measure-label target ratio/figure status cpu wal note
    TARGET_ROWS+=("| $1 | $2 | $3 | **$4** | $5 | $6 | $7 |")
    local note=$7
    [[ $5 == - ]] || note+="; server CPU $5"
    [[ $6 == - ]] || note+="; WAL $6"
    CSV_ROWS+=("target,\"$1\",,\"$3\",,\"$2\",$4,,\"$note\"")
}

# "autora vs baseline UNIT (ratio)" for a measure, "-" when either is missing.
vs_cell() {   # measure unit
    local a b
    a=$(get "$1" autora)
    b=$(get "$1" baseline)
    [[ -n $a && -n $b ]] || { echo -; return 0; }
    echo "$a vs $b $2 ($(ratio "$a" "$b")x)"
}

# autora's run over the baseline's run of the same round, for each round:
# "3.10x, 3.22x, 3.15x" (a round where either has no number is left out).
round_ratios() {   # measure
    local -a a b
    local i out=''
    IFS=';' read -r -a a <<<"${RUNS["$1|autora"]:-}"
    IFS=';' read -r -a b <<<"${RUNS["$1|baseline"]:-}"
    for i in "${!a[@]}"; do
        [[ ${a[$i]} =~ ^[0-9.]+$ && ${b[$i]:-} =~ ^[0-9.]+$ ]] || continue
        out+="${out:+, }$(ratio "${a[$i]}" "${b[$i]}")x"
    done
    echo "${out:-none}"
}

tenants_label() {   # n
    if [[ $1 == 1 ]]; then echo '1 tenant'; else echo "$1 tenants"; fi
}

# The columns the bulk UPDATE sets (bench/sql/bulk_update.sql).
UPDATE_COLUMNS='2 columns'

# First cell of a row of the side-by-side table.
side_label() {   # measure
    local n=${1##*_}
    n=${n%t}
    case $1 in
        bulk_insert) echo "bulk INSERT ... SELECT, $ROWS rows (ms)" ;;
        cpu_bulk_insert) echo "bulk INSERT: server CPU per row (µs, all server processes, sealing included)" ;;
        wal_bulk_insert) echo "bulk INSERT: WAL bytes per row (sealing included)" ;;
        bulk_update) echo "UPDATE of $ROWS rows, $UPDATE_COLUMNS (ms)" ;;
        cpu_bulk_update) echo "UPDATE: server CPU per row (µs)" ;;
        wal_bulk_update) echo "UPDATE: WAL bytes per row" ;;
        pgbench_*) echo "pgbench single-row INSERT tps, $(tenants_label "$n")" ;;
        cpu_pgbench_*) echo "pgbench INSERT, $(tenants_label "$n"): server CPU per transaction (µs)" ;;
        wal_pgbench_*) echo "pgbench INSERT, $(tenants_label "$n"): WAL bytes per transaction" ;;
        oltp_*) echo "OLTP mix tps, $(tenants_label "$n")" ;;
        cpu_oltp_*) echo "OLTP mix, $(tenants_label "$n"): server CPU per transaction (µs)" ;;
        wal_oltp_*) echo "OLTP mix, $(tenants_label "$n"): WAL bytes per transaction (3 rows written)" ;;
        *) echo "$1" ;;
    esac
}

report() {
    local cfg m r line hdr sep base v n
    local md=$BENCH_DIR/RESULTS.md csv=$BENCH_DIR/results.csv
    if [[ $QUICK == 1 ]]; then
        md=$OUT/RESULTS.quick.md
        csv=$OUT/results.quick.csv
    fi

    # side-by-side table of the workloads that every configuration runs,
    # each followed by its server CPU and WAL
    hdr='| workload |'
    sep='|---|'
    for cfg in "${CONFIGS[@]}"; do
        hdr+=" ${LABEL[$cfg]} |"
        sep+='---:|'
    done
    local -a side=() measures=(bulk_insert cpu_bulk_insert wal_bulk_insert bulk_update cpu_bulk_update wal_bulk_update
        pgbench_1t cpu_pgbench_1t wal_pgbench_1t pgbench_8t cpu_pgbench_8t wal_pgbench_8t)
    for n in $OLTP_TENANTS; do
        measures+=("oltp_${n}t" "cpu_oltp_${n}t" "wal_oltp_${n}t")
    done
    for m in "${measures[@]}"; do
        line="| $(side_label "$m") |"
        base=$(get "$m" baseline)
        for cfg in "${CONFIGS[@]}"; do
            v=$(get "$m" "$cfg")
            r=$(ratio "$v" "$base")
            if [[ -z $v ]]; then
                v='-'
                r=''
            fi
            if [[ $cfg == baseline || -z $r ]]; then
                line+=" $v |"
            else
                line+=" $v (${r}x) |"
            fi
            CSV_ROWS+=("$m,$cfg,$v,$(unit_of "$m"),$r,,,\"${RUNS["$m|$cfg"]:-}\",\"${NOTE["$m|$cfg"]:-}\"")
        done
        side+=("$line")
    done

    # targets (autora vs baseline): issue 12 for the write path, issue 5 for the rest
    local rins rupd r1 r8 ro rread vps mem_extra
    rins=$(ratio "$(get bulk_insert autora)" "$(get bulk_insert baseline)")
    rupd=$(ratio "$(get bulk_update autora)" "$(get bulk_update baseline)")
    r1=$(ratio "$(get pgbench_1t autora)" "$(get pgbench_1t baseline)")
    r8=$(ratio "$(get pgbench_8t autora)" "$(get pgbench_8t baseline)")
    rread=$(ratio "$(get read_one_tenant autora)" "$(get read_one_tenant baseline)")
    vps=$(get verify_entries_per_s autora)
    mem_extra=$(awk -v a="$(get mem_anon_kb autora)" -v q="$(get mem_anon_kb "$MEM_REF")" 'BEGIN { printf "%+.0f\n", (a - q) / 1024 }')

    target_row "bulk INSERT $ROWS rows, audited / baseline" '≤ 2.0x' "${rins}x" "$(judge "$rins" le 2.0)" \
        "$(vs_cell cpu_bulk_insert µs/row)" "$(vs_cell wal_bulk_insert B/row)" \
        "median $(get bulk_insert autora) ms vs $(get bulk_insert baseline) ms; by round $(round_ratios bulk_insert)"
    target_row "bulk UPDATE $ROWS rows ($UPDATE_COLUMNS), audited / baseline" '≤ 1.8x' "${rupd}x" "$(judge "$rupd" le 1.8)" \
        "$(vs_cell cpu_bulk_update µs/row)" "$(vs_cell wal_bulk_update B/row)" \
        "median $(get bulk_update autora) ms vs $(get bulk_update baseline) ms; by round $(round_ratios bulk_update)"
    target_row 'pgbench single-row INSERT tps, 1 tenant, audited / baseline' '≥ 0.88x' "${r1}x" "$(judge "$r1" ge 0.88)" \
        "$(vs_cell cpu_pgbench_1t µs/txn)" "$(vs_cell wal_pgbench_1t B/txn)" \
        "median $(get pgbench_1t autora) vs $(get pgbench_1t baseline) tps; by round $(round_ratios pgbench_1t)"
    target_row 'pgbench single-row INSERT tps, 8 tenants, audited / baseline' '≥ 0.88x' "${r8}x" "$(judge "$r8" ge 0.88)" \
        "$(vs_cell cpu_pgbench_8t µs/txn)" "$(vs_cell wal_pgbench_8t B/txn)" \
        "median $(get pgbench_8t autora) vs $(get pgbench_8t baseline) tps; by round $(round_ratios pgbench_8t)"
    for n in $OLTP_TENANTS; do
        ro=$(ratio "$(get "oltp_${n}t" autora)" "$(get "oltp_${n}t" baseline)")
        target_row "OLTP mix tps, $(tenants_label "$n"), audited / baseline" '≥ 0.90x' "${ro}x" "$(judge "$ro" ge 0.90)" \
            "$(vs_cell "cpu_oltp_${n}t" µs/txn)" "$(vs_cell "wal_oltp_${n}t" B/txn)" \
            "median $(get "oltp_${n}t" autora) vs $(get "oltp_${n}t" baseline) tps; by round $(round_ratios "oltp_${n}t")"
    done
    if [[ $READ_MODE == rls ]]; then
        target_row 'RLS read / hand-written WHERE' '≤ 1.05x' "${rread}x" "$(judge "$rread" le 1.05)" - - \
            "$(get read_one_tenant autora) ms vs $(get read_one_tenant baseline) ms per query, best of $READ_ROUNDS (one store, $READ_ROWS_PER_TENANT of $((8 * READ_ROWS_PER_TENANT)) rows)"
    else
        target_row 'RLS read / hand-written WHERE' '≤ 1.05x' "${rread}x" 'pending RLS (issue 4)' - - \
            "no RLS policies yet: measured the protected table WITH the WHERE ($(get read_one_tenant autora) ms vs $(get read_one_tenant baseline) ms per query); the harness switches to the RLS query by itself once protect() enables RLS"
    fi
    target_row 'verify throughput' '≥ 1M entries/s on one core' "$vps entries/s" \
        "$(awk -v v="$vps" 'BEGIN { print (v >= 1000000) ? "pass" : "MISS" }')" - - \
        "$VERIFY_ENTRIES entries in $(verify_best_ms) ms; all chains ok: $VERIFY_OK"
    target_row "memory on a $BIG_ROWS-row UPDATE" 'flat: no growth proportional to rows beyond the trigger queue' \
        "$mem_extra MB" "$(awk -v e="$mem_extra" 'BEGIN { print (e <= 32) ? "pass" : "MISS" }')" - - \
        "peak private memory (RssAnon) $(kb_mb "$(get mem_anon_kb autora)") vs $(kb_mb "$(get mem_anon_kb "$MEM_REF")") with $(mem_ref_label) (PostgreSQL's own per-row trigger memory for autora's trigger shape), $(kb_mb "$(get mem_anon_kb baseline)") without triggers; pass = at most 32 MB (32 bytes/row) above the reference"

    # CSV rows for the single-config measures
    local k
    for k in "${!RES[@]}"; do
        m=${k%%|*}
        cfg=${k#*|}
        case $m in bulk_* | pgbench_* | oltp_* | wal_* | cpu_*) continue ;; esac
        r=''
        case $m in
            read_one_tenant | big_update | big_insert | mem_anon_kb | mem_hwm_kb)
                r=$(ratio "${RES[$k]}" "$(get "$m" baseline)") ;;
        esac
        CSV_ROWS+=("$m,$cfg,${RES[$k]},$(unit_of "$m"),$r,,,\"${RUNS[$k]:-}\",\"${NOTE[$k]:-}\"")
    done

    {
        echo "# autora_audit benchmark results"
        echo
        echo "Written by \`make bench\` (bench/run.sh); issues 5 and 12 are the specification. Do not edit by hand."
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); run took $(( $(date +%s) - START_EPOCH )) s"
        echo "- machine: $NPROC cores ($CPU_MODEL), $MEM_GB GB memory; load average at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- PostgreSQL $PG_VERSION; $SETTINGS; autora.seal_interval=${SEAL_INTERVAL}"
        echo "- commit measured: $COMMIT_DESC"
        echo "- repetitions, configurations interleaved; every run is in results.csv: bulk operations median of $REPS runs, each preceded by TRUNCATE, VACUUM ANALYZE, CHECKPOINT; pgbench median of $PGB_ROUNDS runs of $SECS s, 4 clients, 2 threads, -M prepared, each followed by VACUUM ANALYZE of its database so that autovacuum does not run during the next (time, tps, server CPU and WAL each the median of their runs; ratios are of the medians, as issue 12 asks); reads best of $READ_ROUNDS runs of $READ_SECS s, 1 client (other load on the machine only ever makes a run slower)"
        echo
        echo "## Targets (autora_audit vs baseline)"
        echo
        echo "Write path: issue 12, the ratio of the medians of $REPS (bulk) and $PGB_ROUNDS (pgbench) interleaved rounds of this run, with"
        echo "the server CPU and the WAL of the same runs (medians; sealing included). The rest: issue 5."
        if ((REPS < 3 || PGB_ROUNDS < 3)); then
            echo
            echo "**Fewer rounds than the 3 issue 12 asks for: these ratios do not decide a target.**"
        fi
        echo
        echo "| measure | target | autora_audit | status | server CPU, autora vs baseline | WAL, autora vs baseline | detail |"
        echo "|---|---|---:|---|---|---|---|"
        printf '%s\n' "${TARGET_ROWS[@]}"
        echo
        echo "## Side by side (ratio to baseline in parentheses)"
        echo
        echo "$hdr"
        echo "$sep"
        printf '%s\n' "${side[@]}"
        echo
        echo "## autora_audit: other measures"
        echo
        echo "| measure | value |"
        echo "|---|---:|"
        echo "| read one store's rows, baseline (hand-written WHERE) | $(get read_one_tenant baseline) ms/query |"
        if [[ $READ_MODE == rls ]]; then
            echo "| read one store's rows, autora (RLS, no WHERE) | $(get read_one_tenant autora) ms/query |"
        else
            echo "| read one store's rows, autora (protected table, WHERE written out; pending RLS (issue 4)) | $(get read_one_tenant autora) ms/query |"
        fi
        echo "| autora.verify() over $VERIFY_ENTRIES entries | $(verify_best_ms) ms = $vps entries/s |"
        echo "| seal lag under pgbench load, 1 tenant: p50 / p95 / max (capture to sealed block) | $(get seal_lag_p50_1t autora) / $(get seal_lag_p95_1t autora) / $(get seal_lag_max_1t autora) ms |"
        echo "| seal lag under pgbench load, 8 tenants: p50 / p95 / max | $(get seal_lag_p50_8t autora) / $(get seal_lag_p95_8t autora) / $(get seal_lag_max_8t autora) ms |"
        echo "| all entries sealed after the pgbench load ended, 1 / 8 tenants (round 1) | $(get seal_drain_pgbench_1t_1 autora) / $(get seal_drain_pgbench_8t_1 autora) ms |"
        echo "| all entries sealed after a $ROWS-row bulk INSERT / UPDATE commit (median) | $(get seal_drain_bulk_insert autora) / $(get seal_drain_bulk_update autora) ms |"
        echo
        echo "## Memory of the backend running a $BIG_ROWS-row UPDATE"
        echo
        echo "RssAnon is the backend's private memory (palloc'd data, the after-trigger queue), polled every 20 ms;"
        echo "PostgreSQL itself keeps per-row memory for row triggers until the statement ends (16 bytes/row of"
        echo "after-trigger queue for an UPDATE; some 32 bytes/row more in the query's ExecutorState once a BEFORE ROW"
        echo "trigger is present), so autora is compared with empty triggers of the same shape as its own."
        echo "VmHWM is its peak resident set, which also counts the shared buffers it touched (autora writes $BIG_ROWS"
        echo "ledger rows too, so it touches more of shared_buffers: that is not backend memory growth)."
        echo
        echo "| configuration | UPDATE time | peak RssAnon | VmHWM |"
        echo "|---|---:|---:|---:|"
        echo "| baseline (no trigger) | $(fmt_ms "$(get big_update baseline)") | $(kb_mb "$(get mem_anon_kb baseline)") | $(kb_mb "$(get mem_hwm_kb baseline)") |"
        echo "| baseline + empty plpgsql AFTER ROW trigger (PostgreSQL's after-trigger queue)$([[ $MEM_REF == trigger_queue ]] && echo ': the reference, autora has this shape') | $(fmt_ms "$(get big_update trigger_queue)") | $(kb_mb "$(get mem_anon_kb trigger_queue)") | $(kb_mb "$(get mem_hwm_kb trigger_queue)") |"
        echo "| baseline + empty plpgsql BEFORE and AFTER ROW triggers$([[ $MEM_REF == trigger_shape ]] && echo ': the reference, autora has this shape') | $(fmt_ms "$(get big_update trigger_shape)") | $(kb_mb "$(get mem_anon_kb trigger_shape)") | $(kb_mb "$(get mem_hwm_kb trigger_shape)") |"
        echo "| autora_audit | $(fmt_ms "$(get big_update autora)") | $(kb_mb "$(get mem_anon_kb autora)") | $(kb_mb "$(get mem_hwm_kb autora)") |"
        echo
        echo "Loading the $BIG_ROWS rows (one INSERT ... SELECT): baseline $(fmt_ms "$(get big_insert baseline)"), autora $(fmt_ms "$(get big_insert autora)") ($(ratio "$(get big_insert autora)" "$(get big_insert baseline)")x; ${NOTE["big_insert|autora"]:-})."
        echo
        echo "## How it is measured"
        echo
        echo "- One server, one database per configuration (bench_baseline, bench_autora, bench_jsonb_trigger,"
        echo "  bench_hash_chain, bench_pgaudit), each with the same \`deals\` table (bigserial id, tenant_id, customer"
        echo "  name/email, VIN, sale price numeric(12,2), finance status, status, salesperson, notes, updated_at;"
        echo "  primary key and a tenant_id index). Workloads run as a plain login role (bench_app), as an application would."
        echo "- autora_audit: 8 stores (autora.add_tenant), \`autora.protect('deals', pii_columns => '{customer_name,customer_email}')\`;"
        echo "  each transaction starts with \`autora.set_context_trusted(tenant, actor, 'sales', {ip, endpoint, method})\`."
        echo "  The other configurations set the same context with \`set_config('app.tenant' | 'app.actor' | 'app.role' | 'app.ctx', ..., true)\`."
        echo "- plpgsql to_jsonb trigger (bench/sql/cfg_jsonb_trigger.sql): AFTER ROW trigger, SECURITY DEFINER, inserts"
        echo "  to_jsonb(NEW)/to_jsonb(OLD) plus the context into a supa_audit-shaped table (pk, brin(ts), table_oid, record_id)."
        echo "- plpgsql hash chain (bench/sql/cfg_hash_chain.sql): AFTER ROW trigger locking the tenant's chain head row"
        echo "  (SELECT ... FOR UPDATE), hash = pgcrypto digest(prev_hash || entry, 'sha256'), insert, update the head."
        echo "- pgaudit: \`ALTER DATABASE bench_pgaudit SET pgaudit.log = 'write'\` (one log line per statement, server log)."
        echo "- Bulk: one transaction, context set once, \`INSERT INTO deals ... SELECT ... FROM generate_series(1, $ROWS)\` for"
        echo "  one store, then \`UPDATE deals SET sale_price, status, finance_status, updated_at\` of all those rows; time is"
        echo "  BEGIN to COMMIT from psql \\timing. autora's sealing happens after commit in a background worker and is"
        echo "  reported separately (\"sealed after commit\"); each run waits for it before the next. Server CPU per row: CPU"
        echo "  time of all server processes (/proc) from before the session to its end, plus autora's sealer until all is sealed."
        echo "- pgbench: one deal per transaction (BEGIN; context; INSERT; END), store picked at random among 1 or 8."
        echo "- OLTP mix (bench/pgbench/oltp_app.sql, oltp_autora.sql; $(tenants_label "${OLTP_TENANTS// / and }") to pick from; ${OLTP_CONFIGS[*]}):"
        echo "  per transaction the context, 1 INSERT, 2 single-row UPDATEs (status, updated_at) by primary key and 5 SELECTs, 3"
        echo "  by primary key and 2 by an indexed VIN, all on the store's own rows of deals_oltp, which every round reloads"
        echo "  with 8 stores x $OLTP_ROWS rows under known ids, after a CHECKPOINT (so the run's WAL holds no full-page images"
        echo "  of it, which would weigh more per transaction in a slower configuration). The app's script writes \`AND tenant_id = ...\` in each"
        echo "  SELECT and UPDATE, autora's leaves that to RLS; the statements are otherwise the same. Each round checks 1"
        echo "  row inserted and 2 updated per transaction (table statistics), so no UPDATE went to another store's row."
        echo "- Server CPU per pgbench transaction: all server processes (/proc) from 2 s after the start to 1 s before the end,"
        echo "  over the transactions pgbench reported for that window. WAL: from before the run until all is sealed."
        echo "- Seal lag: for every entry written during the autora pgbench runs, sealed_at of its block minus the entry's ts."
        echo "- Raw logs of the last run: bench/out/ (not committed); numbers per run: bench/results.csv."
        if [[ -f $BENCH_DIR/analysis.md ]]; then
            echo
            echo "## Where the time goes (profiles made by hand: bench/analysis.md)"
            echo
            cat "$BENCH_DIR/analysis.md"
        fi
        if ((${#BUGS[@]} > 0)); then
            echo
            echo "## Problems seen during the run"
            echo
            printf -- '- %s\n' "${BUGS[@]}"
        fi
    } >"$md"

    {
        echo 'measure,config,value,unit,ratio_to_baseline,target,status,runs,notes'
        printf '%s\n' "${CSV_ROWS[@]}" | sort
    } >"$csv"

    echo
    sed -n '/^## Targets/,/^## How it is measured/p' "$md" | sed '$d'
    echo "bench: wrote $md and $csv"
}

mem_ref_label() {
    if [[ $MEM_REF == trigger_shape ]]; then
        echo 'empty BEFORE and AFTER ROW triggers'
    else
        echo 'an empty AFTER ROW trigger'
    fi
}

verify_best_ms() {
    local runs=${RUNS["verify_entries_per_s|autora"]:-}
    # shellcheck disable=SC2086
    minimum ${runs//;/ }
}

kb_mb() {
    [[ -n $1 ]] || { echo '-'; return; }
    awk -v k="$1" 'BEGIN { printf "%.1f MB\n", k / 1024 }'
}

unit_of() {
    case $1 in
        bulk_* | big_* | read_* | seal_* | final_*) echo ms ;;
        wal_*) echo bytes ;;
        cpu_*) echo us ;;
        pgbench_* | oltp_*) echo tps ;;
        verify_*) echo entries/s ;;
        mem_*) echo kB ;;
        *) echo '' ;;
    esac
}

# ---------------------------------------------------------------- main

# BENCH_OLTP_CONFIGS must name known configurations, baseline and autora among them.
check_oltp_configs() {
    local cfg
    for cfg in "${OLTP_CONFIGS[@]}"; do
        [[ -n ${DB[$cfg]:-} ]] || die "BENCH_OLTP_CONFIGS: unknown configuration $cfg (known: ${CONFIGS[*]})"
    done
    [[ " ${OLTP_CONFIGS[*]} " == *' baseline '* && " ${OLTP_CONFIGS[*]} " == *' autora '* ]] ||
        die "BENCH_OLTP_CONFIGS must include baseline and autora"
}

BUGS=()
MEM_REF=trigger_queue
main() {
    [[ -x $BINDIR/psql && -x $BINDIR/pgbench ]] || die "psql/pgbench not found in $BINDIR (set BENCH_PG_BINDIR)"
    check_oltp_configs
    mkdir -p "$OUT"
    rm -f "$OUT"/*.log
    sql postgres -c 'SELECT 1' >/dev/null || die "cannot connect (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-} PGUSER=${PGUSER:-})"
    [[ $(sql postgres -c 'SHOW is_superuser') == on ]] || die "connect as a superuser (PGUSER=postgres)"
    machine_info
    log "machine: $NPROC cores ($CPU_MODEL), $MEM_GB GB; PostgreSQL $PG_VERSION; commit $COMMIT_DESC"
    setup
    bench_bulk
    bench_pgbench
    bench_oltp
    bench_read
    bench_verify
    bench_memory
    # correctness after everything: every chain still verifies
    local ms n ok
    _r=$(verify_run verify_final)
    read -r ms n ok <<<"$_r"
    log "final verify over $n entries: $ms ms, all ok: $ok"
    put final_verify autora "$ms" "$ms" "$n entries, all ok: $ok"
    [[ $ok == t ]] || BUGS+=("autora.verify() after the memory test does not report ok = true for every chain (see $OUT/verify_final.log)")
    report
}

main "$@"
