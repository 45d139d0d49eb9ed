# 020_sealer_privilege.pl: no privilege is gained through the sealer or
# autora.seal().  The background sealer runs as superuser in databases whose
# owner need not be one.  A non-superuser database owner who puts operators
# of its own first on the database's search_path, and makes the sealer
# reconnect, must not get them run by the sealer; nor by autora.seal() called
# by a superuser whose search_path puts that schema first; nor may a
# look-alike schema "autora" in a database without the extension be taken
# for the ledger.  Settings the owner gives the database (lock_timeout) do
# not reach the sealer.  In every case the owner's code records who ran it,
# and tries ALTER ROLE ... SUPERUSER when that was a superuser.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use AutoraTest;

my $t_start = time();
my $node = autora_node('sealpriv', seal_interval => '200ms');

my $all_sealed =
  'SELECT count(*) FILTER (WHERE ok IS NOT TRUE OR entries <> sealed) FROM autora.verify()';

# mallory: an ordinary login role that owns two databases
$node->safe_psql('postgres', q{
	CREATE ROLE mallory LOGIN;
	CREATE DATABASE evil OWNER mallory;
	CREATE DATABASE lookalike OWNER mallory;});
setup_db($node, 'evil', create_db => 0);

sub as_mallory
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, $sql, extra_params => [ '-U', 'mallory' ]);
}

sub mallory_is_superuser
{
	return $node->safe_psql('postgres',
		"SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'");
}

sub write_deals
{
	my ($db, $n, $label, $prefix) = @_;
	$prefix //= '';
	my $sql = $prefix;
	$sql .= qq{BEGIN;
SELECT autora.set_context_trusted('101', 'alice', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('101', '$label-$_', $_);
COMMIT;
} for 1 .. $n;
	$node->safe_psql($db, $sql);
	return;
}

# The trap: a plpgsql body that logs its caller and, run by a superuser,
# makes mallory one.
my $trap_body = q{
	INSERT INTO mal.calls (who) VALUES (current_user);
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE mallory SUPERUSER';
	END IF;
};

# ---------------------------------------------------------------------------
# Operators of the owner's schema first on the database's search_path.
# ---------------------------------------------------------------------------
as_mallory('evil', qq{
	CREATE SCHEMA mal;
	CREATE TABLE mal.calls (who text, at timestamptz DEFAULT now());
	GRANT ALL ON SCHEMA mal TO PUBLIC;
	GRANT ALL ON mal.calls TO PUBLIC;
	CREATE FUNCTION mal.ge(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS \$\$
	BEGIN $trap_body
		RETURN a OPERATOR(pg_catalog.>=) b;
	END \$\$;
	CREATE OPERATOR mal.>= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = mal.ge);
	CREATE FUNCTION mal.eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS \$\$
	BEGIN $trap_body
		RETURN a OPERATOR(pg_catalog.=) b;
	END \$\$;
	CREATE OPERATOR mal.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mal.eq);
	ALTER DATABASE evil SET search_path = mal, pg_catalog, public;});

# the trap works: a session resolving >= by name under the database's
# search_path runs it (mallory's own session, so nothing is escalated)
is( as_mallory('evil',
		'SELECT 2::bigint >= 1::bigint; SELECT count(*) FROM mal.calls; DELETE FROM mal.calls;'),
	"t\n1",
	'precondition: with the database search_path, >= (bigint, bigint) is mallory\'s');

# the sealer reconnects (its worker is ended; the next commit starts one)
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = 'evil'"
);
write_deals('evil', 5, 'after-trap');
ok(poll($node, 'evil', $all_sealed, '0', 10),
	'the sealer, reconnected under the owner\'s search_path, seals the new entries');
write_deals('evil', 3, 'second');
ok(poll($node, 'evil', $all_sealed, '0', 10), 'and keeps sealing');
is(mallory_is_superuser(), 'f', 'the database owner did not become superuser through the sealer');
is($node->safe_psql('evil', 'SELECT count(*) FROM mal.calls'), '0',
	'the sealer ran none of the owner\'s operators');

# ---------------------------------------------------------------------------
# A superuser calls autora.seal() with the owner's schema first.
# ---------------------------------------------------------------------------
{
	my $path = "SET search_path = mal, pg_catalog, public;\n";
	write_deals('evil', 2, 'seal-call', $path);
	my $out = $node->safe_psql('evil', $path . 'SELECT autora.seal() >= 0;');
	is($out, 't', 'a superuser\'s autora.seal() under the owner\'s search_path succeeds');
	is($node->safe_psql('evil', $all_sealed), '0', 'everything is sealed');
	is(mallory_is_superuser(), 'f', 'the database owner did not become superuser through seal()');
	is($node->safe_psql('evil', 'SELECT count(*) FROM mal.calls'), '0',
		'seal() ran none of the owner\'s operators');
}

# ---------------------------------------------------------------------------
# The owner's lock_timeout does not reach the sealer: a round that has to
# wait for the blocks' lock waits, it does not fail.
# ---------------------------------------------------------------------------
as_mallory('evil', "ALTER DATABASE evil SET lock_timeout = '20ms'");
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = 'evil'"
);
{
	my $log_offset = -s $node->logfile;
	my $holder = $node->background_psql('evil', timeout => 60);
	$holder->query_safe('BEGIN; LOCK TABLE autora.ledger_blocks IN SHARE MODE;');
	write_deals('evil', 2, 'under-lock');
	ok( poll($node, 'postgres',
			q{SELECT count(*) FROM pg_stat_activity
			   WHERE backend_type = 'autora sealer' AND datname = 'evil' AND wait_event_type = 'Lock'},
			'1', 10),
		'the sealer waits for the lock held by another session');
	usleep(500_000);
	$holder->query_safe('COMMIT');
	$holder->quit;
	ok(poll($node, 'evil', $all_sealed, '0', 5),
		'once the lock is released the entries are sealed (no retry delay)');
	my $log = substr(slurp_file($node->logfile), $log_offset);
	unlike($log, qr/lock timeout/, 'the sealer did not time out on the database\'s lock_timeout');
}

# ---------------------------------------------------------------------------
# A database without the extension, whose owner made a schema "autora"
# looking like the extension's: tables, and views whose reading runs the
# owner's function.  After a restart the launcher looks at every database.
# ---------------------------------------------------------------------------
as_mallory('lookalike', qq{
	CREATE SCHEMA mal;
	CREATE TABLE mal.calls (who text, at timestamptz DEFAULT now());
	GRANT ALL ON SCHEMA mal TO PUBLIC;
	GRANT ALL ON mal.calls TO PUBLIC;
	CREATE FUNCTION mal.rows() RETURNS TABLE (block_id bigint, id bigint, xid bigint,
	                                          tenant_id text, hash bytea)
	LANGUAGE plpgsql AS \$\$
	BEGIN $trap_body
		RETURN;
	END \$\$;
	CREATE SCHEMA autora;
	CREATE VIEW autora.ledger_blocks AS SELECT * FROM mal.rows();
	CREATE TABLE autora.pii_vault (entry_id bigint);
	CREATE TABLE autora.vault_key (id smallint);
	CREATE TABLE autora.tenants (tenant_id text);
	CREATE TABLE autora.actor_roles (role text);
	CREATE VIEW autora.keys AS SELECT * FROM mal.rows();
	CREATE SEQUENCE autora.ledger_id_seq;
	CREATE SEQUENCE autora.chain_seq_platform;
	CREATE VIEW autora.ledger AS SELECT * FROM mal.rows();
	GRANT ALL ON ALL TABLES IN SCHEMA autora TO PUBLIC;
	GRANT USAGE ON SCHEMA autora TO PUBLIC;});
is( as_mallory('lookalike',
		'SELECT count(*) FROM autora.ledger_blocks; SELECT count(*) >= 1 FROM mal.calls; DELETE FROM mal.calls;'),
	"0\nt",
	'precondition: reading the look-alike ledger_blocks view runs the owner\'s function');
$node->restart;
ok( poll($node, 'evil',
		"SELECT state FROM autora.sealer_status WHERE datname = 'lookalike'",
		'not installed', 15),
	'the sealer visited the look-alike database and found no extension there');
is(mallory_is_superuser(), 'f', 'the owner did not become superuser through the look-alike schema');
is($node->safe_psql('lookalike', 'SELECT count(*) FROM mal.calls'), '0',
	'the sealer read none of the look-alike relations');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autora sealer' AND datname = 'lookalike'"),
	'0', 'no sealer stays in the look-alike database');
write_deals('evil', 2, 'after-restart');
ok(poll($node, 'evil', $all_sealed, '0', 10), 'sealing still works in the database with the extension');

# ---------------------------------------------------------------------------
# The owner closes its database to connections while entries wait (a 1 h
# interval keeps them waiting): the sealer still gets in after a restart.
# ---------------------------------------------------------------------------
$node->safe_psql('postgres', "ALTER SYSTEM SET autora.seal_interval = '1h'; SELECT pg_reload_conf();");
ok(poll($node, 'evil', 'SHOW autora.seal_interval', '1h', 5), 'the interval is now 1 h');
usleep(300_000);
$node->safe_psql('evil', 'SELECT autora.seal()');
write_deals('evil', 2, 'closed');
is($node->safe_psql('evil', "SELECT entries - sealed FROM autora.verify('101')"), '2',
	'two entries wait for a round');
as_mallory('postgres', 'ALTER DATABASE evil ALLOW_CONNECTIONS false');
$node->restart;
ok( poll($node, 'postgres', q{
		SELECT count(*) FROM pg_stat_activity
		 WHERE backend_type = 'autora sealer' AND datname = 'evil'},
		'1', 10),
	'the sealer connects to the database its owner closed to connections');
$node->safe_psql('postgres', 'ALTER DATABASE evil ALLOW_CONNECTIONS true');
ok(poll($node, 'evil', $all_sealed, '0', 10), 'and sealed the waiting entries');

log_clean($node, 'sealpriv');
$node->stop;
note 'total ' . elapsed($t_start) . ' s';
done_testing();
