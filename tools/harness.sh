#!/usr/bin/env bash
# tools/harness.sh: the project's harness behind `make deps|build|check|demo|bench`.
# Installs the Debian packages it needs, builds and installs the extension,
# then runs a throwaway cluster for the test suites (check), the dealership
# walkthrough (demo) or the benchmarks in bench/ (bench).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
export PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
# shellcheck source=tools/cluster.sh
. "$REPO/tools/cluster.sh"

# Everything the build, the suites, demo and bench use. Checked with
# apt-cache policy on Debian 12: pgbench and contrib ship inside postgresql-15
# (there is no postgresql-contrib-15); clang/llvm come with server-dev;
# gcc only recommends libc6-dev, which --no-install-recommends would skip.
DEB_PACKAGES=(
    postgresql-15 postgresql-server-dev-15
    postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
    postgresql-15-pgaudit pgbouncer
    libssl-dev libipc-run-perl perl python3
    make gcc libc6-dev
)

# -Wno-* are for noise from PostgreSQL's own headers and idioms, not ours.
WARN_FLAGS='-Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare'

die() {
    echo "harness: $*" >&2
    exit 1
}

section() {
    echo
    echo "== $* =="
}

# ---------------------------------------------------------------- deps

missing_packages() {
    local pkg
    for pkg in "${DEB_PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
            echo "$pkg"
        fi
    done
}

cmd_deps() {
    local missing
    mapfile -t missing < <(missing_packages)
    ((${#missing[@]} == 0)) && return 0
    if [[ $EUID -ne 0 ]]; then
        die "missing Debian packages: ${missing[*]}
  install them as root: apt-get install ${missing[*]}"
    fi
    section "deps: installing ${missing[*]}"
    apt-get -q update
    DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends "${missing[@]}"
}

# ---------------------------------------------------------------- build

cmd_build() {
    local mk=(make -s "PG_CONFIG=$PG_CONFIG")
    section build
    "${mk[@]}" COPT="$WARN_FLAGS" all || die "build failed"
    if [[ $EUID -ne 0 && ! -w $("$PG_CONFIG" --pkglibdir) ]]; then
        die "make install needs root (or a writable $("$PG_CONFIG" --pkglibdir))"
    fi
    "${mk[@]}" install || die "make install failed"
    # The offline ledger verifier is optional: build it only once a rule exists.
    if make -n "PG_CONFIG=$PG_CONFIG" tools/autora_verify >/dev/null 2>&1; then
        "${mk[@]}" COPT="$WARN_FLAGS" tools/autora_verify || die "building tools/autora_verify failed"
    fi
    echo "built and installed autora_audit into $("$PG_CONFIG" --pkglibdir)"
}

# ---------------------------------------------------------------- suite bookkeeping

SUITE_NAMES=()
SUITE_PASS=()
SUITE_FAIL=()
SUITE_NOTE=()
TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY_DONE=0
MODE=''

record_suite() {   # name passed failed note
    SUITE_NAMES+=("$1")
    SUITE_PASS+=("$2")
    SUITE_FAIL+=("$3")
    SUITE_NOTE+=("${4:-}")
    TOTAL_PASS=$((TOTAL_PASS + $2))
    TOTAL_FAIL=$((TOTAL_FAIL + $3))
}

# Run a command with output shown live and kept in a log; returns the
# command's status (not tee's). Call as: run_logged LOG cmd... || rc=$?
run_logged() {
    local log=$1
    shift
    "$@" 2>&1 | tee "$log"
    return "${PIPESTATUS[0]}"
}

# "passed failed" from prove -v output: numbered ok / not ok lines, indented
# subtests included. SKIP lines are ok lines; a `not ok ... # TODO` is an
# expected failure, so it counts as passed (as prove does). A file that died
# or broke its plan without any `not ok` (prove's "Test Summary Report" shows
# it with "Failed: 0" plus an exit status or parse error) adds one failure.
count_tap() {
    awk '
        /^Test Summary Report/ { report = 1; next }
        report && /\(Wstat: .*Failed: 0\)$/ { uncounted = 1; next }
        report && /\(Wstat: /                { uncounted = 0; next }
        report && uncounted && /Non-zero (exit|wait) status|Parse errors|Bad plan/ {
            f++; uncounted = 0; next
        }
        report { next }
        /^[[:space:]]*not ok [0-9]+/ { if ($0 ~ /#[[:space:]]*TODO/) p++; else f++; next }
        /^[[:space:]]*ok [0-9]+/     { p++ }
        END { print p + 0, f + 0 }' "$1"
}

# "passed failed" from pg_regress output: PG <= 15 prints
# "test name ... ok" / "     name ... FAILED"; PG >= 16 prints TAP lines.
count_regress() {
    awk '
        /^not ok [0-9]+/              { f++; next }
        /^ok [0-9]+/                  { p++; next }
        /\.\.\. +ok( |$)/             { p++; next }
        /\.\.\. +failed \(ignored\)/  { p++; next }
        /\.\.\. +FAILED/              { f++; next }
        END { print p + 0, f + 0 }' "$1"
}

# Turn a runner's status and counts into the suite's record: a runner that
# failed without a counted failure (crash, bad plan, could not connect)
# still counts as one failure.
finish_suite() {   # name log-kind(tap|regress) log rc
    local name=$1 kind=$2 log=$3 rc=$4 pass fail note=''
    read -r pass fail < <("count_$kind" "$log")
    if ((rc != 0 && fail == 0)); then
        fail=1
        note="runner exited with status $rc"
    elif ((pass + fail == 0)); then
        note="no tests were counted"
    fi
    record_suite "$name" "$pass" "$fail" "$note"
}

# REGRESS from the Makefile, following backslash continuations, without comments.
regress_list() {
    awk '
        /^REGRESS[[:space:]]*[:+]?=/ { on = 1; sub(/^REGRESS[[:space:]]*[:+]?=/, "") }
        on {
            line = $0
            more = sub(/\\$/, "", line)
            sub(/#.*/, "", line)
            printf "%s ", line
            if (!more) on = 0
        }' Makefile
}

pg_regress_path() {
    echo "$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
}

# ---------------------------------------------------------------- suites

suite_regress() {
    section "suite: pg_regress"
    local tests out rc=0
    read -ra tests <<<"$(regress_list)"
    if ((${#tests[@]} == 0)); then
        echo "no REGRESS list in the Makefile: skipped"
        record_suite pg_regress 0 0 "skipped: no REGRESS list"
        return 0
    fi
    # Inputs come from the snapshot and outputs go to a postgres-owned dir, so
    # tests may have the server COPY from $PG_ABS_SRCDIR or to $PG_ABS_BUILDDIR.
    source_snapshot
    out=$HARNESS_TMP/regress
    mkdir -p "$out/results"   # pg_regress keeps an existing results/ as is
    give_to_postgres "$out"
    run_logged "$out/pg_regress.log" "$(pg_regress_path)" \
        --inputdir="$SNAPSHOT/test" --outputdir="$out" --bindir="$(pg_bindir)" \
        --host="$CLUSTER_SOCK" --port="$CLUSTER_PORT" --user=postgres \
        --dbname=autora_regress "${tests[@]}" || rc=$?
    if ((rc != 0)) && [[ -s $out/regression.diffs ]]; then
        echo "---- regression.diffs (first 200 lines) ----"
        head -n 200 "$out/regression.diffs"
        echo "----"
    fi
    finish_suite pg_regress regress "$out/pg_regress.log" "$rc"
}

suite_pgtap() {
    section "suite: pgTAP"
    local files log rc=0
    shopt -s nullglob
    files=(test/pgtap/*.sql)
    shopt -u nullglob
    if ((${#files[@]} == 0)); then
        echo "no test/pgtap/*.sql: skipped"
        record_suite pgtap 0 0 "skipped: no files"
        return 0
    fi
    log=$HARNESS_TMP/pgtap.log
    if ! cluster_psql -q -d postgres -c 'CREATE DATABASE autora_tap' ||
       ! cluster_psql -q -d autora_tap -c 'CREATE EXTENSION pgtap' \
            -c 'CREATE EXTENSION autora_audit'; then
        record_suite pgtap 0 1 "could not set up database autora_tap"
        return 0
    fi
    run_logged "$log" pg_prove -v --psql-bin "$(pg_bindir)/psql" -h "$CLUSTER_SOCK" -p "$CLUSTER_PORT" \
        -U postgres -d autora_tap "${files[@]}" || rc=$?
    finish_suite pgtap tap "$log" "$rc"
}

# Tests built on PostgreSQL::Test::Cluster run initdb themselves, which
# refuses root, so they run as postgres, inside the snapshot.
suite_tap() {
    section "suite: TAP (PostgreSQL::Test::Cluster)"
    local files log rc=0 perl_lib incs
    shopt -s nullglob
    files=(test/t/*.pl)
    shopt -u nullglob
    if ((${#files[@]} == 0)); then
        echo "no test/t/*.pl: skipped"
        record_suite tap 0 0 "skipped: no files"
        return 0
    fi
    source_snapshot
    log=$HARNESS_TMP/tap.log

    perl_lib=$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/perl
    incs=(-I "$perl_lib")
    [[ -d $SNAPSHOT/test/t/lib ]] && incs+=(-I t/lib)

    # cwd is the snapshot's test/ dir, so tmp_check/ lands in the snapshot.
    run_logged "$log" as_postgres_in "$SNAPSHOT/test" env \
        PATH="$(pg_bindir):$PATH" \
        PG_REGRESS="$(pg_regress_path)" \
        PG_TEST_EXTRA="${PG_TEST_EXTRA:-}" \
        AUTORA_SRC="$SNAPSHOT" \
        TESTDIR="$SNAPSHOT/test" \
        prove -v "${incs[@]}" "${files[@]#test/}" || rc=$?
    finish_suite tap tap "$log" "$rc"
}

# The clone may sit where postgres cannot read (CI clones as root, e.g. under
# /root), so suites whose files the server or postgres-run tests read use a
# postgres-owned snapshot of the working tree, taken once after the build:
# no git metadata or build/test leftovers, but tools/autora_verify if built.
SNAPSHOT=''
source_snapshot() {
    [[ -n $SNAPSHOT ]] && return 0
    SNAPSHOT=$HARNESS_TMP/src
    mkdir -p "$SNAPSHOT"
    tar -C "$REPO" -cf - \
        --exclude=./.git --exclude='*.o' --exclude='*.bc' --exclude='*.so' \
        --exclude=./tmp_check --exclude=./test/tmp_check --exclude=./log \
        --exclude=./results --exclude=./test/results --exclude=./bench/out \
        . | tar -C "$SNAPSHOT" -xf -
    give_to_postgres "$SNAPSHOT"
}

print_summary() {
    local i note
    section summary
    for i in "${!SUITE_NAMES[@]}"; do
        note=${SUITE_NOTE[$i]}
        printf 'suite %-10s  passed %4d  failed %4d%s\n' "${SUITE_NAMES[$i]}" \
            "${SUITE_PASS[$i]}" "${SUITE_FAIL[$i]}" "${note:+  ($note)}"
    done
    SUMMARY_DONE=1
    # The one line CI reads: keep it alone and last.
    echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
}

cmd_check() {
    cmd_deps
    cmd_build
    section "cluster"
    cluster_start || die "could not start the test cluster"
    suite_regress
    suite_pgtap
    suite_tap
    cluster_stop
    print_summary
    ((TOTAL_FAIL == 0))
}

# ---------------------------------------------------------------- demo, bench

cmd_demo() {
    [[ -f sample/demo.sql ]] || die "sample/demo.sql is missing: there is no demo to run yet"
    cmd_deps
    cmd_build
    section "cluster"
    cluster_start || die "could not start the demo cluster"
    cluster_psql -q -d postgres -c 'CREATE DATABASE dealership'
    cluster_psql -q -d dealership -c 'CREATE EXTENSION autora_audit'
    [[ ${DEMO_KEEP:-0} == 1 ]] && CLUSTER_KEEP_RUNNING=1
    section "demo: sample/demo.sql"
    cluster_psql -d dealership --echo-queries -f sample/demo.sql
    if [[ $CLUSTER_KEEP_RUNNING == 1 ]]; then
        echo
        echo "DEMO_KEEP=1: the cluster is still running. Connect with:"
        echo "  psql -h $CLUSTER_SOCK -p $CLUSTER_PORT -U postgres dealership"
        echo "Stop it and clean up with:"
        echo "  $(as_postgres_hint)$(pg_bindir)/pg_ctl -D $CLUSTER_DIR stop && rm -rf $HARNESS_TMP"
    fi
}

as_postgres_hint() {
    [[ $EUID -eq 0 ]] && echo "runuser -u postgres -- "
    return 0
}

cmd_bench() {
    [[ -f bench/run.sh ]] || die "bench/run.sh is missing: there is no benchmark to run yet"
    cmd_deps
    cmd_build
    section "cluster (bench settings)"
    # pgaudit is preloaded so bench/ can compare against it, but silent by
    # default so it costs nothing unless a run turns it on.
    cluster_start \
        "shared_buffers = 1GB" \
        "max_wal_size = 4GB" \
        "checkpoint_timeout = 30min" \
        "synchronous_commit = on" \
        "shared_preload_libraries = 'autora_audit,pgaudit'" \
        "pgaudit.log = 'none'" ||
        die "could not start the bench cluster"
    section "bench: bench/run.sh"
    PGHOST=$CLUSTER_SOCK PGPORT=$CLUSTER_PORT PGUSER=postgres \
        BENCH_PG_BINDIR=$(pg_bindir) bash bench/run.sh "$@"
}

# ---------------------------------------------------------------- main

# On an early exit from check (deps, build or cluster failure) still print
# the closing count, so CI sees a failure rather than "no tests ran".
on_exit() {
    local rc=$?
    if [[ $MODE == check && $SUMMARY_DONE -eq 0 ]]; then
        echo "harness: check stopped before all suites ran" >&2
        echo "$TOTAL_PASS passed, $((TOTAL_FAIL + 1)) failed"
    fi
    cluster_cleanup
    return "$rc"
}

main() {
    MODE=${1:-}
    shift || true
    trap on_exit EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    case $MODE in
        deps)  cmd_deps ;;
        build) cmd_deps; cmd_build ;;
        check) cmd_check ;;
        demo)  cmd_demo ;;
        bench) cmd_bench "$@" ;;
        *)     die "usage: $0 deps|build|check|demo|bench" ;;
    esac
}

main "$@"
