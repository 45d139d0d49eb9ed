# 021_sealer_slots.pl: the sealers share max_worker_processes.  With three
# free background worker slots (the sealer launcher and PostgreSQL's logical
# replication launcher take two of five) and eight databases with the
# extension and writes: every database's entries are sealed within a bound;
# the sealers exit once idle, and parallel query then gets its workers;
# while parallel query holds every slot, a database with new entries is
# shown waiting in autora.sealer_status, the server log names it and
# max_worker_processes once, autora.seal() fails with a hint instead of
# hanging, and the entries are sealed as soon as the slots are free.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use AutoraTest;

my $t_start = time();
my $node = autora_node('slots', seal_interval => '200ms',
	conf => "max_worker_processes = 5\nautora.sealer_idle_timeout = '1s'\n");

my $all_sealed =
  'SELECT count(*) FILTER (WHERE ok IS NOT TRUE OR entries <> sealed) FROM autora.verify()';
my @dbs = map { "shop$_" } 1 .. 8;

sub write_deals
{
	my ($db, $n, $label) = @_;
	my $sql = '';
	$sql .= qq{BEGIN;
SELECT autora.set_context_trusted('101', 'alice', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('101', '$label-$_', $_);
COMMIT;
} for 1 .. $n;
	$node->safe_psql($db, $sql);
	return;
}

# true once the server log, from $offset on, matches $re (within $timeout s)
sub log_shows
{
	my ($re, $offset, $timeout) = @_;
	my $deadline = time() + $timeout;
	while (time() < $deadline)
	{
		return 1 if substr(slurp_file($node->logfile), $offset) =~ $re;
		usleep(100_000);
	}
	return 0;
}

# ---------------------------------------------------------------------------
# Eight databases, three slots: all sealed.
# ---------------------------------------------------------------------------
setup_db($node, $_) for @dbs;
my $t0 = time();
write_deals($_, 5, 'burst') for @dbs;
for my $db (@dbs)
{
	ok(poll($node, $db, $all_sealed, '0', 20),
		"$db: every entry is sealed, with 8 databases sharing 3 worker slots");
}
note 'all eight databases sealed ' . elapsed($t0) . ' s after the writes began';
is( $node->safe_psql('shop1', q{
		SELECT count(*) FROM autora.sealer_status
		 WHERE datname LIKE 'shop_' AND last_round_at IS NOT NULL AND last_error IS NULL}),
	'8', 'autora.sealer_status shows a completed round, and no error, for each of them');

# ---------------------------------------------------------------------------
# Idle sealers exit; parallel query gets its workers.
# ---------------------------------------------------------------------------
ok(poll($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer'", '0', 10),
	'the sealers exit once idle (autora.sealer_idle_timeout = 1s)');
$node->safe_psql('postgres', q{
	CREATE TABLE par AS SELECT g FROM generate_series(1, 4000) g;
	ALTER TABLE par SET (parallel_workers = 3);
	ANALYZE par;
	CREATE FUNCTION slow(integer) RETURNS boolean LANGUAGE plpgsql PARALLEL SAFE
	AS $$ BEGIN PERFORM pg_sleep(0.01); RETURN true; END $$;});
my $parallel = q{
	SET max_parallel_workers_per_gather = 3;
	SET parallel_setup_cost = 0;
	SET parallel_tuple_cost = 0;
	SET min_parallel_table_scan_size = 0;
};
my $plan = $node->safe_psql('postgres', $parallel
	  . 'EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM par;');
my ($planned) = $plan =~ /Workers Planned: (\d+)/;
my ($launched) = $plan =~ /Workers Launched: (\d+)/;
is("$planned/$launched", '3/3', 'with the sealers idle, a parallel query gets its 3 workers')
  or diag($plan);

# ---------------------------------------------------------------------------
# Parallel query holds every slot: a database with new entries waits, and
# says so; its entries are sealed once the slots are free.
# ---------------------------------------------------------------------------
my $bg = $node->background_psql('postgres', timeout => 120);
$bg->query_until(qr/started/,
	$parallel . "\\echo started\nSELECT count(*) FROM par WHERE slow(g);\n");
ok( poll($node, 'postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'parallel worker'", '3', 10),
	'a long parallel query holds the three free worker slots');
my $log_offset = -s $node->logfile;
write_deals('shop3', 3, 'starved');
ok( poll($node, 'shop3', q{
		SELECT state || ' ' || (waiting_since IS NOT NULL) FROM autora.sealer_status
		 WHERE datname = 'shop3'},
		'waiting for a worker slot true', 5),
	'shop3 is shown waiting for a worker slot, with the time it began');
{
	my ($rc, $err) = sql_error($node, 'shop3', 'SELECT autora.seal()');
	ok( $rc != 0
		  && $err =~ /ERROR:\s+53400:.*no background worker slot.*HINT:.*max_worker_processes/s,
		'autora.seal() fails with 53400 and a hint, instead of waiting for the query')
	  or diag($err);
}
is($node->safe_psql('shop3', "SELECT entries - sealed FROM autora.verify('101')"), '3',
	'the three entries are pending meanwhile');
ok(log_shows(qr/WARNING:  autora sealer: no background worker slot for database "shop3"\n[^\n]*DETAIL:  All max_worker_processes \(5\) slots are in use/,
		$log_offset, 5),
	'the server log names the database and max_worker_processes');
$bg->quit;
note 'parallel query done after waiting';
ok(poll($node, 'shop3', $all_sealed, '0', 10),
	'once the parallel query has ended, the waiting entries are sealed');
is($node->safe_psql('shop3',
		"SELECT state IS DISTINCT FROM 'waiting for a worker slot' FROM autora.sealer_status WHERE datname = 'shop3'"),
	't', 'shop3 no longer waits');
{
	my $log = substr(slurp_file($node->logfile), $log_offset);
	my $warnings = () = $log =~ /no background worker slot for database "shop3"/g;
	is($warnings, 1, 'the wait was logged once, not on every retry');
	like($log, qr/database "shop3" got a background worker slot after waiting \d+ ms/,
		'and its end is logged');
}

log_clean($node, 'slots');
$node->stop;
note 'total ' . elapsed($t_start) . ' s';
done_testing();
