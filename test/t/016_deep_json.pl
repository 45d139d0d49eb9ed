# 016_deep_json.pl: jsonb nested as deep as the server allows, with
# max_stack_depth raised to what the stack limit permits, reaches autora's
# canonical encoding (log_event metadata, a captured jsonb column): it is
# refused with 54001 beyond the ledger's bound of 1000 levels, which verify
# can always encode again, and never takes the server down.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AutoraTest;

my $node = autora_node('deepjson');
setup_db($node, 'dj');
# just under the 8 MB stack limit of the test machines (rlimit minus 512 kB)
my ($rc, $err) = sql_error($node, 'postgres',
	"ALTER SYSTEM SET max_stack_depth = '7680kB'; SELECT pg_reload_conf();");
plan skip_all => "max_stack_depth cannot be raised here: $err" if $rc != 0;
$node->safe_psql('dj', q{
	ALTER TABLE deals ADD COLUMN doc jsonb;
	CREATE TABLE deep AS SELECT (repeat('[', 54000) || '1' || repeat(']', 54000))::jsonb AS j;
	CREATE TABLE fine AS SELECT (repeat('[', 500) || '1' || repeat(']', 500))::jsonb AS j;});

# refused with 54001 (deeper than the ledger records), never a crash
for my $case (
	[ 'log_event metadata', q{SELECT autora.log_event('deep', NULL, NULL, (SELECT j FROM deep))} ],
	[ 'a captured jsonb column', q{INSERT INTO deals (tenant_id, customer, doc) SELECT '101', 'deep', j FROM deep} ])
{
	($rc, $err) = sql_error($node, 'dj', qq{BEGIN;
		SELECT autora.set_context_trusted('101', 'alice', 'sales');
		$case->[1];
		COMMIT;});
	like($err, qr/ERROR:  54001: a json value nested deeper than 1000 levels/,
		"$case->[0] nested 54000 deep: 54001, no crash");
}
($rc, $err) = sql_error($node, 'dj', q{BEGIN;
	SELECT autora.set_context_trusted('101', 'alice', 'sales');
	INSERT INTO deals (tenant_id, customer, doc) SELECT '101', 'fine', j FROM fine;
	SELECT autora.log_event('fine', NULL, NULL, (SELECT j FROM fine));
	COMMIT;});
is($rc, 0, 'honest: a value nested 500 deep is recorded') or diag($err);
is($node->safe_psql('dj', 'SELECT 1'), '1', 'the server is up');
is($node->safe_psql('dj', 'SELECT autora.seal() >= 0; SELECT bool_and(ok) FROM autora.verify()'),
	"t\nt", 'every chain verifies');
log_clean($node, '016');
done_testing();
