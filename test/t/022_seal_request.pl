# 022_seal_request.pl: autora.seal() asks the background sealer for a round
# and takes no lock in the caller's transaction.  An auditor's transaction
# left open after calling it does not stop other sessions' entries from
# being sealed within the interval; seal() returns the number of entries the
# round sealed: those committed before the call, not those of a transaction
# still open.  On a hot standby it fails with a clear error (sealing is the
# primary's job); without the library preloaded, with a hint.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use AutoraTest;

my $t_start = time();
# a primary that a standby can stream from (AutoraTest's nodes cannot)
my $node = PostgreSQL::Test::Cluster->new('sealreq');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf',
	"shared_preload_libraries = 'autora_audit'\nautora.seal_interval = '200ms'\n");
$node->start;

my $db = 'sr';
setup_db($node, $db);
$node->safe_psql($db, q{
	CREATE ROLE auditor LOGIN IN ROLE autora_auditor;
	CREATE ROLE writer LOGIN IN ROLE autora_trusted;
	GRANT SELECT, INSERT ON deals TO writer;
	GRANT USAGE ON SEQUENCE deals_id_seq TO writer;});

my $all_sealed =
  'SELECT count(*) FILTER (WHERE ok IS NOT TRUE OR entries <> sealed) FROM autora.verify()';
my $pending = "SELECT entries - sealed FROM autora.verify('101')";
# every call is bounded: a seal() stuck behind a lock fails the test fast
my $seal = "SET statement_timeout = '20s';\nSELECT autora.seal();";

sub write_deals
{
	my ($n, $label) = @_;
	my $sql = '';
	$sql .= qq{BEGIN;
SELECT autora.set_context_trusted('101', 'wendy', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('101', '$label-$_', $_);
COMMIT;
} for 1 .. $n;
	$node->safe_psql($db, $sql, extra_params => [ '-U', 'writer' ]);
	return;
}

ok(poll($node, $db, $all_sealed, '0', 5), 'precondition: everything is sealed');

# ---------------------------------------------------------------------------
# An auditor calls seal() and leaves the transaction open.
# ---------------------------------------------------------------------------
my $auditor = $node->background_psql($db, timeout => 60,
	extra_params => [ '-U', 'auditor' ]);
$auditor->query_safe("SET statement_timeout = '20s'; BEGIN");
like($auditor->query_safe('SELECT autora.seal()'), qr/^\d+$/,
	'the auditor calls autora.seal() inside a transaction it leaves open');
my $t0 = time();
write_deals(4, 'during-audit');
ok(poll($node, $db, $all_sealed, '0', 3),
	"other sessions' entries are sealed within 3 s (interval 200 ms) while that transaction is open");
note 'sealed after ' . elapsed($t0) . ' s';
is( $node->safe_psql($db,
		"SELECT state FROM pg_stat_activity WHERE usename = 'auditor' AND datname = '$db'"),
	'idle in transaction', 'the auditor\'s transaction is still open');

# The database's owner, not a superuser, may ANALYZE every table of it, in a
# transaction block, and leave that open: its locks must not stall sealing.
$node->safe_psql('postgres', "CREATE ROLE dbowner LOGIN; ALTER DATABASE $db OWNER TO dbowner;");
my $owner = $node->background_psql($db, timeout => 60, extra_params => [ '-U', 'dbowner' ]);
$owner->query_safe('BEGIN; ANALYZE autora.ledger_blocks; ANALYZE autora.ledger;');
$t0 = time();
write_deals(2, 'during-analyze');
ok(poll($node, $db, $all_sealed, '0', 3),
	"other sessions' entries are sealed within 3 s while the database owner's ANALYZE is open");
note 'sealed after ' . elapsed($t0) . ' s';
$owner->query_safe('COMMIT');
$owner->quit;

# ---------------------------------------------------------------------------
# The count: with a 1 h interval nothing is sealed but on request.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', "ALTER SYSTEM SET autora.seal_interval = '1h'; SELECT pg_reload_conf();");
ok(poll($node, $db, 'SHOW autora.seal_interval', '1h', 5), 'the interval is now 1 h');
usleep(300_000);    # the sealer has read it too
$node->safe_psql($db, $seal);
write_deals(3, 'counted');
usleep(500_000);
is($node->safe_psql($db, $pending), '3', 'three committed entries wait for a round');
is($auditor->query_safe('SELECT autora.seal()'), '3',
	'seal() in the auditor\'s open transaction returns 3: the entries committed before the call');
is($node->safe_psql($db, $pending), '0', 'and they are sealed, visible to other sessions at once');

write_deals(2, 'counted-again');
is($node->safe_psql($db, $seal), '2',
	'another session\'s seal() returns 2 while the auditor\'s transaction stays open');

{
	my $open = $node->background_psql($db, timeout => 60);
	$open->query_safe(q{BEGIN;
		SELECT autora.set_context_trusted('101', 'olga', 'sales');
		INSERT INTO deals (tenant_id, customer) VALUES ('101', 'open-1'), ('101', 'open-2');});
	write_deals(1, 'beside-open');
	is($node->safe_psql($db, $seal), '1',
		'seal() counts the committed entry, not the two of a transaction still open');
	$open->query_safe('COMMIT');
	$open->quit;
	is($node->safe_psql($db, $seal), '2', 'once committed, the next seal() seals those two');
}
is($node->safe_psql($db, $seal), '0', 'with nothing left, seal() returns 0');
$auditor->query_safe('COMMIT');
$auditor->quit;
is($node->safe_psql($db, $all_sealed), '0', 'every chain verifies, fully sealed');

# ---------------------------------------------------------------------------
# A hot standby verifies but does not seal.
# ---------------------------------------------------------------------------
$node->backup('bk');
my $standby = PostgreSQL::Test::Cluster->new('sealreq_standby');
$standby->init_from_backup($node, 'bk', has_streaming => 1);
$standby->start;
$node->wait_for_catchup($standby);
{
	my ($rc, $err) = sql_error($standby, $db, 'SELECT autora.seal()');
	ok( $rc != 0
		  && $err =~ /ERROR:\s+25006:\s+cannot seal the ledger on a hot standby.*HINT:.*primary/s,
		'on a hot standby seal() fails with 25006, a hint naming the primary')
	  or diag($err);
	is($standby->safe_psql($db, $all_sealed), '0', 'verify runs on the standby');
}
$standby->stop;

# ---------------------------------------------------------------------------
# Without the library preloaded there is no sealer to ask.
# ---------------------------------------------------------------------------
$node->append_conf('postgresql.conf', "shared_preload_libraries = ''\n");
$node->restart;
{
	my ($rc, $err) = sql_error($node, $db, 'SELECT autora.seal()');
	ok( $rc != 0
		  && $err =~ /ERROR:\s+55000:.*background sealer.*HINT:.*shared_preload_libraries/s,
		'without the library preloaded seal() fails with 55000 and a hint naming shared_preload_libraries')
	  or diag($err);
}

log_clean($node, 'sealreq');
$node->stop;
note 'total ' . elapsed($t_start) . ' s';
done_testing();
