# 014_owner_ddl.pl: what the table owner's DDL cannot do to a protected
# table, where it needs sessions or files of its own:
# - DETACH PARTITION ... CONCURRENTLY is refused before its first step
#   commits: the partition stays attached, not detach-pending;
# - a temporary table that carries autora's triggers (attached by a
#   superuser; nobody else may) is dropped at session end like any other,
#   with no orphan and nothing in the log;
# - an index expression calling the owner's function never runs over the
#   rows: no NOTICE leaks a row;
# - ALTER TABLE ALL IN TABLESPACE does not move the ledger, and OWNED BY
#   still moves the owner's tables.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AutoraTest;

my $t_start = time();
my $node = autora_node('ownerddl');
setup_db($node, 'odb', tenants => [ '101', '102' ]);

$node->safe_psql('odb', q{
	CREATE ROLE odb_owner LOGIN;
	GRANT CREATE, USAGE ON SCHEMA public TO odb_owner;
	SET ROLE odb_owner;
	CREATE TABLE porders (id int NOT NULL, tenant_id text NOT NULL, customer text,
	                      PRIMARY KEY (tenant_id, id)) PARTITION BY LIST (tenant_id);
	CREATE TABLE porders_101 PARTITION OF porders FOR VALUES IN ('101');
	CREATE TABLE porders_102 PARTITION OF porders FOR VALUES IN ('102');
	CREATE FUNCTION peek(text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
	BEGIN
		RAISE NOTICE 'peeked %', $1;
		RETURN $1;
	END $$;
	RESET ROLE;
	SELECT autora.protect('porders');
	SELECT autora.set_context_trusted('101', 'alice', 'sales');
	INSERT INTO porders VALUES (1, '101', 'secret-of-101');
	SELECT autora.set_context_trusted('102', 'bob', 'sales');
	INSERT INTO porders VALUES (1, '102', 'secret-of-102');
});

# --- DETACH ... CONCURRENTLY -------------------------------------------------
my ($rc, $err) = sql_error($node, 'odb',
	'SET ROLE odb_owner; ALTER TABLE porders DETACH PARTITION porders_102 CONCURRENTLY');
like($err, qr/ERROR:  42501: dropping or detaching protected table "porders_102"/,
	'DETACH PARTITION ... CONCURRENTLY of a protected partition is refused (42501)');
is( $node->safe_psql('odb',
		"SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'porders_102'::regclass"),
	'f', 'the partition is still attached, not left detach-pending');
is( $node->safe_psql('odb', q{
		DO $$ BEGIN
			PERFORM autora.set_context_trusted('102', 'bob', 'sales', is_local => false);
			INSERT INTO porders VALUES (2, '102', 'after');
		END $$;
		SELECT count(*) FROM porders;}),
	"3", 'rows of the partition stay visible through the parent (to a superuser) and inserts go on');

# --- a temporary table carrying autora triggers --------------------------------
my $temps_before = $node->safe_psql('odb',
	"SELECT count(*) FROM pg_class WHERE relpersistence = 't'");
($rc, $err) = sql_error($node, 'odb', q{
	CREATE TEMP TABLE deals (id int PRIMARY KEY, tenant_id text);
	CREATE TRIGGER cap AFTER INSERT ON deals FOR EACH ROW EXECUTE FUNCTION autora.capture_row();
	SELECT autora.set_context_trusted('101', 'alice', 'sales');
	INSERT INTO deals VALUES (1, '102');});
like($err, qr/ERROR:  42501: table "deals" is not protected by autora/,
	'a temp table named like a protected one, carrying capture_row, writes no entry (42501)');
is($node->safe_psql('odb', "SELECT count(*) FROM pg_class WHERE relpersistence = 't'"),
	$temps_before, 'the temp table went with its session: no orphan');
is($node->safe_psql('odb', 'CREATE TEMP TABLE later (x int); SELECT 1'),
	'1', 'later sessions create temp tables');
unlike(slurp_file($node->logfile), qr/FATAL/, 'nothing FATAL in the log at session end');

# --- the owner's function over every row ---------------------------------------
($rc, $err) = sql_error($node, 'odb',
	'SET ROLE odb_owner; CREATE INDEX ON porders (peek(customer))');
like($err, qr/ERROR:  42501: function peek cannot run over the rows of a protected table/,
	'an index expression calling the owner\'s function is refused');
unlike($err, qr/secret-of/, 'and not one row reached the function (no NOTICE)');

# --- tablespaces ---------------------------------------------------------------
my $ts_dir = PostgreSQL::Test::Utils::tempdir_short();
$node->safe_psql('odb', "CREATE TABLESPACE odb_ts LOCATION '$ts_dir'");
($rc, $err) = sql_error($node, 'odb', 'ALTER TABLE ALL IN TABLESPACE pg_default SET TABLESPACE odb_ts');
like($err, qr/ERROR:  42501: ALTER \.\.\. ALL IN TABLESPACE would move the autora ledger relations/,
	'ALTER TABLE ALL IN TABLESPACE would move the ledger: refused');
is( $node->safe_psql('odb',
		"SELECT count(*) FROM pg_class WHERE reltablespace <> 0 AND relnamespace = 'autora'::regnamespace"),
	'0', 'no ledger relation moved');
$node->safe_psql('odb', 'CREATE TABLE plain_owned (x int); ALTER TABLE plain_owned OWNER TO odb_owner');
($rc, $err) = sql_error($node, 'odb',
	'ALTER TABLE ALL IN TABLESPACE pg_default OWNED BY odb_owner SET TABLESPACE odb_ts');
is($rc, 0, 'honest: OWNED BY the owner moves only its tables') or diag($err);
is( $node->safe_psql('odb',
		"SELECT spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE relname = 'plain_owned'"),
	'odb_ts', 'the owner\'s table moved');

# --- notices raised while DDL reads every store's rows ------------------------------
($rc, $err) = sql_error($node, 'odb', q{SET ROLE odb_owner; SET client_min_messages = notice;
	BEGIN;
	ALTER TABLE porders ADD CONSTRAINT c_peek CHECK (to_regtype('"' || repeat('.', 60) || customer || '"') IS NULL);
	ROLLBACK;});
unlike($err, qr/secret-of/, 'a notice raised on a row during DDL does not reach the client');

# --- DROP EXTENSION of another extension --------------------------------------------
($rc, $err) = sql_error($node, 'odb', 'DROP EXTENSION plpgsql CASCADE');
like($err, qr/ERROR:  42501/, 'DROP EXTENSION plpgsql CASCADE does not take the ledger with it (42501)');
is($node->safe_psql('odb', q{SELECT count(*) > 0 FROM autora.ledger}), 't', 'the ledger is intact');

# --- DROP DATABASE by a role that may not ----------------------------------------------
$node->safe_psql('postgres', 'CREATE ROLE nobody LOGIN');
($rc, $err) = sql_error($node, 'postgres', 'SET ROLE nobody; DROP DATABASE odb');
like($err, qr/ERROR:  42501: must be owner of database odb/, 'a role without the right cannot drop the database');
is( $node->safe_psql('odb', q{SELECT count(*) FROM autora.sealer_status WHERE datname = 'odb' AND state = 'paused'}),
	'0', 'and its failed attempt did not pause the database\'s sealer');

is($node->safe_psql('odb', 'SELECT autora.seal() >= 0; SELECT bool_and(ok) FROM autora.verify()'),
	"t\nt", 'every chain verifies');
log_clean($node, '014');
note 'total ' . elapsed($t_start) . ' s';
done_testing();
