# 004_no_preload.pl: CREATE EXTENSION autora_audit refuses to install unless
# the library is in shared_preload_libraries (SQLSTATE 55000, with a hint
# naming the setting), also when the library was only loaded into the
# session; it leaves nothing behind, and works once the library is preloaded.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AutoraTest;

my $t_start = time();
my $node = autora_node('nopreload', preload => 0);

sub refused
{
	my ($sql, $what) = @_;
	my ($rc, $err) = sql_error($node, 'postgres', $sql);
	isnt($rc, 0, "$what: CREATE EXTENSION fails");
	like($err, qr/ERROR:\s+55000:/, "$what: SQLSTATE 55000")
	  or diag($err);
	like($err, qr/HINT:.*shared_preload_libraries/, "$what: the hint names shared_preload_libraries");
	is( $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_extension WHERE extname = 'autora_audit'")
		  . $node->safe_psql('postgres',
			"SELECT count(*) FROM pg_namespace WHERE nspname = 'autora'"),
		'00', "$what: no extension and no autora schema left behind");
	return;
}

refused('CREATE EXTENSION autora_audit', 'not preloaded');
refused("LOAD 'autora_audit';\nCREATE EXTENSION autora_audit", 'after LOAD in the session');
{
	local $ENV{PGOPTIONS} = '-c session_preload_libraries=autora_audit';
	is($node->safe_psql('postgres', 'SHOW session_preload_libraries'),
		'autora_audit', 'session_preload_libraries is set for the connection');
	refused('CREATE EXTENSION autora_audit', 'with session_preload_libraries at connection');
}
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_roles WHERE rolname LIKE 'autora\\_%'"),
	'0', 'no extension roles were created');

# Positive control: the same node with the library preloaded.
$node->append_conf('postgresql.conf', "shared_preload_libraries = 'autora_audit'\n");
$node->restart;
my ($rc, $err) = sql_error($node, 'postgres', 'CREATE EXTENSION autora_audit');
is($rc, 0, 'CREATE EXTENSION succeeds once the library is preloaded')
  or diag($err);
is($node->safe_psql('postgres',
		"SELECT extnamespace::regnamespace FROM pg_extension WHERE extname = 'autora_audit'"),
	'autora', 'the extension is installed in schema autora');

log_clean($node, 'nopreload');
$node->stop;
note 'total ' . elapsed($t_start) . ' s';
done_testing();
