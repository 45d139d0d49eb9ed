# 003_sealer.pl: the background sealer.  Entries are sealed within the seal
# interval without autora.seal(); committed-but-unsealed entries are sealed
# after a crash with no new writes; database-level commands (DROP DATABASE,
# CREATE DATABASE ... TEMPLATE) are not blocked by a database's sealer;
# databases without the extension keep no sealer; a shortage of worker slots
# does not break writes, is shown and logged, and databases take turns for a
# single slot; the sealer does not delay a fast shutdown; the
# sealer keeps the ledger's BRIN index summarized, so that its rounds read
# only new entries.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use AutoraTest;

my $t_start = time();
# autovacuum off: the BRIN summaries below must come from the sealer
my $node = autora_node('sealer', seal_interval => '200ms',
	conf => "max_prepared_transactions = 2\nrestart_after_crash = on\nautovacuum = off\n");

my $all_sealed =
  'SELECT count(*) FILTER (WHERE ok IS NOT TRUE OR entries <> sealed) FROM autora.verify()';

sub write_deals
{
	my ($db, $n, $tenant, $label) = @_;
	$tenant //= '101';
	$label //= 'x';
	my $sql = '';
	$sql .= qq{BEGIN;
SELECT autora.set_context_trusted('$tenant', 'alice', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('$tenant', '$label-$_', $_);
COMMIT;
} for 1 .. $n;
	$node->safe_psql($db, $sql);
	return;
}

sub sealers_in
{
	my ($db) = @_;
	return $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = '$db'"
	);
}

# ---------------------------------------------------------------------------
# Background sealing within the interval, without autora.seal().
# ---------------------------------------------------------------------------
setup_db($node, 's1');
my $t0 = time();
write_deals('s1', 5);
ok(poll($node, 's1', $all_sealed, '0', 5),
	'entries are sealed by the background worker without autora.seal() (within 5 s at a 200 ms interval)');
note 'sealed after ' . elapsed($t0) . ' s';
is(sealers_in('s1'), '1', 'one autora sealer is connected to the database');

# A prepared transaction's entries are sealed within the interval of COMMIT
# PREPARED, even when another session commits it.
$node->safe_psql('s1', q{
	BEGIN;
	SELECT autora.set_context_trusted('101', 'alice', 'sales');
	INSERT INTO deals (tenant_id, customer) VALUES ('101', 'prepared');
	PREPARE TRANSACTION 'p1';});
is($node->safe_psql('s1', $all_sealed), '0',
	'prepared (uncommitted) entries are not visible to verify');
usleep(500_000);
$node->safe_psql('s1', "COMMIT PREPARED 'p1'");
$t0 = time();
ok(poll($node, 's1', $all_sealed, '0', 3),
	'entries of COMMIT PREPARED (other session) are sealed within 3 s at a 200 ms interval');
note 'prepared entries sealed after ' . elapsed($t0) . ' s';

# ---------------------------------------------------------------------------
# BRIN summaries.  An unsummarized range matches every scan, so a seal round
# would read it again and again; the sealer summarizes each range once it has
# filled.  Measured as the pages a scan for the newest transaction's entries
# reads: the newest ranges only, not the whole ledger.
# ---------------------------------------------------------------------------
$node->safe_psql('s1', q{
	CREATE FUNCTION pages_read_for_newest() RETURNS bigint LANGUAGE plpgsql AS $$
	DECLARE
		plan json;
		newest bigint;
	BEGIN
		SELECT max(xid) INTO newest FROM autora.ledger;
		SET LOCAL enable_seqscan = off;
		EXECUTE format('EXPLAIN (ANALYZE, FORMAT JSON) SELECT count(*) FROM autora.ledger WHERE xid >= %s',
					   newest) INTO plan;
		RETURN (regexp_match(plan::text, '"Lossy Heap Blocks": (\d+)'))[1]::bigint
			 + (regexp_match(plan::text, '"Exact Heap Blocks": (\d+)'))[1]::bigint;
	END $$;
	BEGIN;
	SELECT autora.set_context_trusted('101', 'alice', 'sales');
	INSERT INTO deals (tenant_id, customer, amount)
		SELECT '101', 'bulk customer ' || i, i FROM generate_series(1, 4000) i;
	COMMIT;
	BEGIN;
	SELECT autora.set_context_trusted('101', 'alice', 'sales');
	INSERT INTO deals (tenant_id, customer) VALUES ('101', 'newest');
	COMMIT;});
my $ledger_pages = $node->safe_psql('s1', q{SELECT pg_relation_size('autora.ledger') / 8192});
cmp_ok($ledger_pages, '>', 100, "the ledger spans $ledger_pages pages, several BRIN ranges of 16");
ok(poll($node, 's1', 'SELECT pages_read_for_newest() <= 32', 't', 5),
	'the sealer summarizes filled BRIN ranges: finding the newest entry reads at most two ranges (with autovacuum off)');
ok(poll($node, 's1', $all_sealed, '0', 5), 'the bulk entries are sealed');
is($node->safe_psql('s1', q{SELECT brin_summarize_new_values('autora.ledger_id_xid_idx') <= 1}), 't',
	'no filled range is left for brin_summarize_new_values (the partly filled newest one at most)');

# ---------------------------------------------------------------------------
# DROP DATABASE while its sealer runs.
# ---------------------------------------------------------------------------
setup_db($node, 'dropme');
write_deals('dropme', 2);
ok(poll($node, 'dropme', $all_sealed, '0', 5), 'dropme: sealed');
ok(poll($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = 'dropme'",
		'1', 5),
	'dropme: its sealer is connected');
{
	my ($timed_out, $err);
	$t0 = time();
	my $rc = $node->psql('postgres', 'DROP DATABASE dropme',
		stderr => \$err, timeout => 30, timed_out => \$timed_out);
	my $secs = elapsed($t0);
	ok($rc == 0 && !$timed_out, "DROP DATABASE of a database with a running sealer succeeds (${secs}s)")
	  or diag("rc=$rc timed_out=$timed_out: $err");
	cmp_ok($secs, '<', 5, 'DROP DATABASE is not held up by the sealer');
}
is($node->safe_psql('postgres', "SELECT count(*) FROM pg_database WHERE datname = 'dropme'"),
	'0', 'dropme is gone');

# Sealing keeps working in a database created afterwards (slot reuse).
setup_db($node, 'afterdrop');
write_deals('afterdrop', 2);
ok(poll($node, 'afterdrop', $all_sealed, '0', 5),
	'a database created after the drop gets its entries sealed');

# ---------------------------------------------------------------------------
# CREATE DATABASE ... TEMPLATE a database with the extension and a sealer.
# ---------------------------------------------------------------------------
is(sealers_in('s1'), '1', 's1 has a running sealer before it is used as a template');
my $s1_entries = $node->safe_psql('s1', 'SELECT count(*) FROM autora.ledger');
{
	my ($timed_out, $err);
	$t0 = time();
	my $rc = $node->psql('postgres', 'CREATE DATABASE copy1 TEMPLATE s1',
		stderr => \$err, timeout => 30, timed_out => \$timed_out);
	my $secs = elapsed($t0);
	ok($rc == 0 && !$timed_out, "CREATE DATABASE copy1 TEMPLATE s1 succeeds (${secs}s)")
	  or diag("rc=$rc timed_out=$timed_out: $err");
	cmp_ok($secs, '<', 5, 'CREATE DATABASE ... TEMPLATE is not held up by the sealer');
}
is($node->safe_psql('copy1', 'SELECT count(*) FROM autora.ledger'),
	$s1_entries, 'copy1 holds the ledger of its template');
is($node->safe_psql('copy1', $all_sealed), '0', 'copy1: the copied chain verifies');
write_deals('copy1', 2, '101', 'copy');
ok(poll($node, 'copy1', $all_sealed, '0', 5),
	"copy1: new entries are sealed by copy1's own sealer");
write_deals('s1', 2, '101', 'after-copy');
ok(poll($node, 's1', $all_sealed, '0', 5),
	's1: sealing resumes after it served as a template');

# A template copy that fails (a session is connected to the template) must
# not leave the template's sealer paused.
{
	my $blocker = $node->background_psql('s1', timeout => 60);
	$blocker->query('SELECT 1');
	my ($err);
	my $rc = $node->psql('postgres', 'CREATE DATABASE copy2 TEMPLATE s1',
		stderr => \$err, timeout => 30);
	isnt($rc, 0, 'CREATE DATABASE copy2 TEMPLATE s1 fails while a session uses s1');
	$blocker->quit;
	write_deals('s1', 1, '101', 'after-failed-copy');
	ok(poll($node, 's1', $all_sealed, '0', 5),
		's1: sealing resumes after a failed template copy');
}

# A database without the extension, for the restart below.
$node->safe_psql('postgres', 'CREATE DATABASE plain');

# ---------------------------------------------------------------------------
# Crash with committed, unsealed entries; the launcher's worker seals them
# after restart, with no new writes.  A 1 h interval keeps the running
# worker from sealing them before the crash.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', "ALTER SYSTEM SET autora.seal_interval = '1h'");
$node->stop('immediate');
$node->start;

# the launcher starts a worker per database; wait for s1's first round
ok( poll($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = 's1' AND state = 'idle'",
		'1', 15),
	'after restart the launcher starts the sealer of s1');
sleep(2);
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname IN ('plain', 'postgres', 'template1')"
	),
	'0',
	'databases without the extension keep no sealer connected');
is($node->safe_psql('postgres',
		"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'autora sealer'"),
	'afterdrop,copy1,s1', 'the sealers connected are those of the databases with the extension');

write_deals('s1', 5, '101', 'before-crash');
is( $node->safe_psql('s1',
		"SELECT (ok IS NULL)::text || ' ' || (entries - sealed) FROM autora.verify('101')"),
	'true 5',
	'five committed entries are pending before the crash');
$node->stop('immediate');
$node->start;
$t0 = time();
ok(poll($node, 's1', $all_sealed, '0', 15),
	'after the crash the entries are sealed with no new writes');
note 'sealed ' . elapsed($t0) . ' s after restart';

# Same after a crash-restart cycle of the postmaster (a worker killed).
write_deals('s1', 3, '101', 'before-kill');
is( $node->safe_psql('s1',
		"SELECT (ok IS NULL)::text || ' ' || (entries - sealed) FROM autora.verify('101')"),
	'true 3',
	'three committed entries are pending before the sealer is killed');
my $sealer_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = 's1'");
like($sealer_pid, qr/^\d+$/, 's1 sealer pid found');
kill 'KILL', $sealer_pid;
ok(poll($node, 's1', $all_sealed, '0', 30),
	'after the crash-restart cycle the entries are sealed with no new writes');

# A database copied from a template holds the template's sequence pages.
# PostgreSQL 15 (CREATE DATABASE strategy wal_log) does not WAL-log the
# copy's next nextval() calls when the copied page still had logged values
# (log_cnt > 0), so after a crash the copy's sequences step back.  The
# ledger's ids and per-tenant sequence numbers must not repeat regardless
# (deals ids are given explicitly here: its serial has the same problem,
# which is PostgreSQL's, not the extension's).
{
	my ($out, $err);
	my $sql = '';
	$sql .= qq{BEGIN;
SELECT autora.set_context_trusted('101', 'alice', 'sales');
INSERT INTO deals (id, tenant_id, customer) SELECT max(id) + 1, '101', 'copy-after-crash-$_' FROM deals;
COMMIT;
} for 1 .. 3;
	my $rc = $node->psql('copy1', $sql, stdout => \$out, stderr => \$err,
		on_error_stop => 1);
	is($rc, 0, 'copy1: writes after a crash succeed (no duplicate ledger id)')
	  or diag($err);
	is( $node->safe_psql('copy1', q{
			SELECT count(*) FROM (SELECT tenant_id, seq FROM autora.ledger
			                       GROUP BY tenant_id, seq HAVING count(*) > 1) d}),
		'0', 'copy1: no duplicate (tenant_id, seq) after the crash');
	($rc, $err) = sql_error($node, 'copy1', 'SELECT autora.seal()');
	is($rc, 0, 'copy1: autora.seal() works after the crash (no duplicate block id)')
	  or diag($err);
	ok(poll($node, 'copy1', $all_sealed, '0', 5),
		'copy1: every chain verifies after the crash');
}

# A database marked as without the extension gets a sealer once it has one:
# the commit of protect()'s platform entry starts it, and its first round
# seals that entry.
setup_db($node, 'plain', create_db => 0);
ok(poll($node, 'plain', $all_sealed, '0', 5),
	'plain: extension created after the launcher skipped it; its entries are sealed');

# ---------------------------------------------------------------------------
# With a long interval the sleeping sealer must still yield to DROP DATABASE
# and to a fast shutdown.
# ---------------------------------------------------------------------------
setup_db($node, 'dropslow');
ok(poll($node, 'dropslow', $all_sealed, '0', 5), 'dropslow: sealed by its new worker');
ok(poll($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = 'dropslow' AND state = 'idle'",
		'1', 5),
	'dropslow: its sealer sleeps (1 h interval)');
{
	my ($timed_out, $err);
	$t0 = time();
	my $rc = $node->psql('postgres', 'DROP DATABASE dropslow',
		stderr => \$err, timeout => 40, timed_out => \$timed_out);
	my $secs = elapsed($t0);
	ok($rc == 0 && !$timed_out && $secs < 5,
		"DROP DATABASE while the sealer sleeps a 1 h interval succeeds promptly (${secs}s)")
	  or diag("rc=$rc timed_out=$timed_out: $err");
}

$node->safe_psql('postgres', "ALTER SYSTEM SET autora.seal_interval = '200ms'");
{
	local $ENV{PGCTLTIMEOUT} = 15;
	$t0 = time();
	my $stopped = $node->stop('fast', fail_ok => 1);
	ok($stopped, 'fast shutdown completes while sealers sleep a 1 h interval (within 15 s)');
	note 'fast shutdown took ' . elapsed($t0) . ' s';
	$node->stop('immediate') unless $stopped;
}

# ---------------------------------------------------------------------------
# No free worker slot (the sealer launcher and PostgreSQL's logical
# replication launcher take both): writes still commit, with no error or
# warning for the client; the databases are shown waiting, the server log
# says so once per database, and autora.seal() fails with a hint rather than
# sealing in the caller's transaction.  With one slot, the databases take
# turns and everything is sealed.
# ---------------------------------------------------------------------------
$node->append_conf('postgresql.conf', "max_worker_processes = 2\n");
$node->start;
my @noslot_dbs = ('s1', 'afterdrop', 'plain');
{
	my ($stdout, $err);
	my $sql = '';
	$sql .= qq{BEGIN;
SELECT autora.set_context_trusted('101', 'alice', 'sales');
INSERT INTO deals (id, tenant_id, customer) SELECT coalesce(max(id), 0) + 1, '101', 'noslot-$_' FROM deals;
COMMIT;
} for 1 .. 10;
	my $rc = 0;
	for my $db (@noslot_dbs)
	{
		$rc ||= $node->psql($db, $sql, stdout => \$stdout, stderr => \$err,
			on_error_stop => 1);
	}
	is($rc, 0, 'writes in three databases commit with no free worker slot')
	  or diag($err);
	unlike($err // '', qr/ERROR|WARNING/, 'and raise no error or warning');
	note 'sealers running: '
	  . $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer'");
	ok( poll($node, 's1', q{
			SELECT count(*) FROM autora.sealer_status
			 WHERE datname IN ('s1', 'afterdrop', 'plain')
			   AND state = 'waiting for a worker slot' AND waiting_since IS NOT NULL},
			'3', 5),
		'autora.sealer_status shows the three databases waiting for a worker slot');
	for my $db (@noslot_dbs)
	{
		my ($src, $serr) = sql_error($node, $db, 'SELECT autora.seal()');
		ok( $src != 0
			  && $serr =~ /ERROR:\s+53400:.*no background worker slot.*HINT:.*max_worker_processes/s,
			"$db: autora.seal() fails with 53400 and a hint naming max_worker_processes")
		  or diag($serr);
		is($node->safe_psql($db,
				"SELECT (ok IS NULL)::text || ' ' || (entries - sealed) FROM autora.verify('101')"),
			'true 10', "$db: the ten entries are pending, not lost");
	}
	my $log = slurp_file($node->logfile);
	for my $db (@noslot_dbs)
	{
		my $n = () = $log =~ /WARNING:  autora sealer: no background worker slot for database "$db"\n[^\n]*DETAIL:  All max_worker_processes \(2\) slots are in use/g;
		is($n, 1, "$db: the wait is logged once, naming max_worker_processes, after several retries");
	}
}
$node->append_conf('postgresql.conf', "max_worker_processes = 3\n");
$node->restart;
for my $db (@noslot_dbs)
{
	ok(poll($node, $db, $all_sealed, '0', 15),
		"$db: with one free worker slot, the sealers take turns and every chain verifies");
	is( $node->safe_psql($db,
			"SELECT count(*) FROM autora.ledger WHERE after->>'customer' LIKE 'noslot-%'"),
		'10', "$db: the ten entries are in the ledger");
	is($node->safe_psql($db, 'SELECT autora.seal()'), '0',
		"$db: autora.seal() runs, with nothing left to seal");
}

log_clean($node, 'sealer', allow => [qr/\(PID $sealer_pid\) was terminated by signal 9/]);
$node->stop('immediate');
note 'total ' . elapsed($t_start) . ' s';
done_testing();
