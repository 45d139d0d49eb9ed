# 013_capture_property.pl: capture never misses or invents an entry,
# whatever subtransactions run between a change and the write of its entry.
#
# First the reproductions of issue 11 item 1 and of PII captured in an
# aborted subtransaction; then a property test: seeded random transactions
# (statements, savepoints, ROLLBACK TO, RELEASE, exceptions caught in
# triggers and DO blocks, writable CTEs, deferred constraint triggers,
# statements larger than the writer's buffer) on three protected tables.
# An ordinary AFTER ROW trigger on each writes (table, op, pk) into a plain
# shadow table, so PostgreSQL itself decides which changes committed; the
# ledger must hold exactly those, one entry each.
#
# AUTORA_PROP_SEED=<n> repeats a run; AUTORA_PROP_TXNS=<n> sets its length.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256);
use MIME::Base64 qw(encode_base64url);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AutoraTest;
use AutoraTenancy qw(hs256_token jwt_claims run_sql $HS_SECRET $HS_KID);

my $node = autora_node('capture_property');
my $t0 = time();

# One database per part.
sub make_db
{
	my ($db, $tenants) = @_;
	$node->safe_psql('postgres', qq{CREATE DATABASE "$db"});
	my $sql = "CREATE EXTENSION autora_audit;\n"
	  . "SELECT autora.add_key('$HS_KID', 'HS256', '$HS_SECRET');\n";
	$sql .= "SELECT autora.add_tenant('$_', 'g1', 'store $_');\n" for @$tenants;
	$sql .= q{
		DO $$ BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cap_app') THEN
				CREATE ROLE cap_app LOGIN;
			END IF;
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'cap_owner') THEN
				CREATE ROLE cap_owner LOGIN;
			END IF;
		END $$;
		GRANT CREATE ON SCHEMA public TO cap_app, cap_owner;
	};
	$node->safe_psql($db, $sql);
	return;
}

# A session of role $user whose statements report their SQLSTATE.
sub session
{
	my ($db, $user) = @_;
	my $s = $node->background_psql($db,
		on_error_stop => 0,
		extra_params => [ '-d', $node->connstr($db) . " user=$user" ]);
	run_sql($s, '\set VERBOSITY sqlstate');
	return $s;
}

sub token_for { return hs256_token(jwt_claims($_[0])) }

# Seals, and returns "ok" or the first verify failure.
sub sealed_and_verified
{
	my ($db) = @_;
	$node->safe_psql($db, 'SELECT autora.seal()');
	return $node->safe_psql($db, q{
		SELECT coalesce(string_agg(coalesce(tenant_id, 'platform') || ': '
								   || coalesce(detail, 'not ok'), '; ')
			FILTER (WHERE NOT ok OR entries <> sealed), 'ok')
		  FROM autora.verify()});
}

# "table op pk xN" lines of committed entries, for tables matching $like.
sub entry_counts
{
	my ($db, $like) = @_;
	return $node->safe_psql($db, qq{
		SELECT string_agg(table_name || ' ' || op || ' ' || (pk->>'id') || ' x' || n, E'\\n'
						  ORDER BY table_name, op, (pk->>'id'))
		  FROM (SELECT table_name, op, pk, count(*) AS n FROM autora.ledger
				 WHERE table_name LIKE '$like' GROUP BY 1, 2, 3) e});
}

# ------------------------------------------------------------------ reproductions
make_db('repro', ['r1']);
$node->safe_psql('repro', q{
	CREATE TABLE customers (id bigserial PRIMARY KEY, tenant_id text NOT NULL, name text);
	CREATE TABLE items (id int PRIMARY KEY, tenant_id text NOT NULL, qty int NOT NULL);
	ALTER TABLE customers OWNER TO cap_owner;
	ALTER TABLE items OWNER TO cap_owner;
	SELECT autora.protect('customers');
	SELECT autora.protect('items');
	GRANT ALL ON customers, items TO cap_app;
	GRANT USAGE ON SEQUENCE customers_id_seq TO cap_app;
});
my $app = session('repro', 'cap_app');
my $tok = token_for('r1');

# (a) the application's own temp table, whose AFTER ROW trigger catches an
# error: each caught error is a subtransaction started while the customers
# entries of the same statement are buffered
my ($st) = run_sql($app, q{
	CREATE FUNCTION app_catch() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		BEGIN
			PERFORM 1 / 0;
		EXCEPTION WHEN division_by_zero THEN NULL;
		END;
		RETURN NULL;
	END $$;
	CREATE TEMP TABLE my_temp (id bigint);
	CREATE TRIGGER my_temp_catch AFTER INSERT ON my_temp
		FOR EACH ROW EXECUTE FUNCTION app_catch();});
is($st, 'ok', 'the application role makes its temp table with a catching trigger');
($st) = run_sql($app, qq{
	BEGIN;
	SELECT autora.set_context('$tok') IS NOT NULL;
	WITH c AS (INSERT INTO customers (name) SELECT 'c' || g FROM generate_series(1, 3) g RETURNING id)
	INSERT INTO my_temp SELECT id FROM c;
	COMMIT;});
is($st, 'ok', '(a) the writable CTE into the temp table commits');

# (b) an ordinary owner trigger on a protected table that catches
# unique_violation: a subtransaction per updated row
$node->safe_psql('repro', q{
	SET ROLE cap_owner;
	CREATE FUNCTION items_touch() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		BEGIN
			RAISE unique_violation;
		EXCEPTION WHEN unique_violation THEN NULL;
		END;
		RETURN NULL;
	END $$;
	CREATE TRIGGER items_touch AFTER UPDATE ON items
		FOR EACH ROW EXECUTE FUNCTION items_touch();
});
($st) = run_sql($app, qq{
	BEGIN;
	SELECT autora.set_context('$tok') IS NOT NULL;
	INSERT INTO items VALUES (1, 'r1', 10), (2, 'r1', 20);
	COMMIT;
	BEGIN;
	SELECT autora.set_context('$tok') IS NOT NULL;
	UPDATE items SET qty = qty + 1;
	COMMIT;});
is($st, 'ok', '(b) the update of two rows under the owner trigger commits');
$app->quit;

is(sealed_and_verified('repro'), 'ok', 'reproductions: sealed, and verify is ok');
my $cust_ids = $node->safe_psql('repro', 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM customers');
is( entry_counts('repro', 'customers'),
	join("\n", map { "customers INSERT $_ x1" } split /,/, $cust_ids),
	'(a) one INSERT entry for each of the three customers');
is( entry_counts('repro', 'items'),
	"items INSERT 1 x1\nitems INSERT 2 x1\nitems UPDATE 1 x1\nitems UPDATE 2 x1",
	'(b) two rows updated, two UPDATE entries');

# (c) PII captured in a subtransaction that aborts: its entry and vault row
# are gone with it, and what commits keeps a vault row whose salt opens the
# entry's commitment.  Once with ROLLBACK TO, once with the value captured in
# a child released into a savepoint later rolled back.
for my $case (
	[ 'vault_rollback_to', 'SAVEPOINT s1; INSERT INTO people (email) VALUES (\'gone@x\'); ROLLBACK TO s1;' ],
	[   'vault_released',
		'SAVEPOINT s1; SAVEPOINT s2; INSERT INTO people (email) VALUES (\'gone@x\'); '
		  . 'RELEASE s2; ROLLBACK TO s1;'
	])
{
	my ($db, $sub) = @$case;
	make_db($db, ['v1']);
	$node->safe_psql($db, q{
		CREATE TABLE people (id serial PRIMARY KEY, tenant_id text NOT NULL, email text);
		ALTER TABLE people OWNER TO cap_owner;
		SELECT autora.protect('people', pii_columns => '{email}');
		GRANT ALL ON people TO cap_app;
		GRANT USAGE ON SEQUENCE people_id_seq TO cap_app;
	});
	my $s = session($db, 'cap_app');
	my $vtok = token_for('v1');
	($st) = run_sql($s, qq{
		BEGIN;
		SELECT autora.set_context('$vtok') IS NOT NULL;
		$sub
		INSERT INTO people (email) VALUES ('kept\@x');
		COMMIT;});
	is($st, 'ok', "$db: the transaction commits");
	$s->quit;
	# a later session commits the same value
	$node->safe_psql($db, qq{
		BEGIN;
		SELECT autora.set_context_trusted('v1', 'later', 'sales');
		INSERT INTO people (email) VALUES ('kept\@x');
		COMMIT;});
	my $rows = $node->safe_psql($db, q{
		SELECT l.after->>'email', encode(v.salt, 'hex'), v.clear->'after'->>'email'
		  FROM autora.ledger l LEFT JOIN autora.pii_vault v ON v.entry_id = l.id
		 WHERE l.table_name = 'people' AND l.op = 'INSERT' ORDER BY l.id});
	my @rows = map { [ split /\|/ ] } split /\n/, $rows;
	is(scalar(@rows), 2, "$db: two INSERT entries committed, none of the rolled-back one");
	is( join(',', map { $_->[0] eq 'pii:' . encode_base64url(substr(hmac_sha256($_->[2] // '', pack('H*', $_->[1] // '')), 0, 16)) ? 'opens' : 'no' } @rows),
		'opens,opens', "$db: each entry's commitment opens with its own vault row's salt and clear value");
	isnt($rows[0][0], $rows[1][0], "$db: the two commitments of one value differ (unlinkable)");
	is($node->safe_psql($db, q{SELECT count(*) FROM autora.pii_vault v
		WHERE NOT EXISTS (SELECT FROM autora.ledger l WHERE l.id = v.entry_id)}), '0',
		"$db: no vault row outlived its rolled-back entry");
	is(sealed_and_verified($db), 'ok', "$db: sealed, and verify is ok");
}
note 'reproductions took ' . elapsed($t0) . ' s';

# ------------------------------------------------------------------ property
my $seed = $ENV{AUTORA_PROP_SEED} // int(time() * 1000) % 1_000_000;
my $ntx = $ENV{AUTORA_PROP_TXNS} // 80;
srand($seed);
note "property seed $seed ($ntx transactions; AUTORA_PROP_SEED=$seed repeats this run)";
my $t1 = time();

make_db('prop', [ 'p1', 'p2' ]);
$node->safe_psql('prop', q{
	SET ROLE cap_owner;
	CREATE TABLE t_a (id int PRIMARY KEY, tenant_id text NOT NULL, v int NOT NULL);
	CREATE TABLE t_b (id int PRIMARY KEY, tenant_id text NOT NULL, v int NOT NULL, email text);
	CREATE TABLE t_p (id int PRIMARY KEY, tenant_id text NOT NULL, v int NOT NULL)
		PARTITION BY HASH (id);
	CREATE TABLE t_p_0 PARTITION OF t_p FOR VALUES WITH (MODULUS 2, REMAINDER 0);
	CREATE TABLE t_p_1 PARTITION OF t_p FOR VALUES WITH (MODULUS 2, REMAINDER 1);
	-- ids made by triggers, above those the test picks
	CREATE SEQUENCE trig_ids START 10000000;

	-- the oracle: which row changes PostgreSQL kept
	CREATE TABLE shadow (tbl text NOT NULL, op text NOT NULL, pk int NOT NULL);
	CREATE FUNCTION oracle() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO shadow VALUES (TG_TABLE_NAME, TG_OP,
			CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END);
		RETURN NULL;
	END $$;

	-- t_a: subtransactions per row, some writing t_b or t_p, kept or undone
	CREATE FUNCTION noisy_a() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		r record;
	BEGIN
		IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
		IF r.v % 5 = 0 THEN
			BEGIN
				RAISE unique_violation;
			EXCEPTION WHEN unique_violation THEN NULL;
			END;
		ELSIF r.v % 5 = 1 AND TG_OP = 'INSERT' THEN
			BEGIN
				INSERT INTO t_b VALUES (nextval('trig_ids'), r.tenant_id, r.v, 'undone@x');
				PERFORM 1 / 0;
			EXCEPTION WHEN division_by_zero THEN NULL;
			END;
		ELSIF r.v % 5 = 2 AND TG_OP = 'INSERT' THEN
			BEGIN
				INSERT INTO t_b VALUES (nextval('trig_ids'), r.tenant_id, r.v, 'kept@x');
			EXCEPTION WHEN unique_violation THEN NULL;
			END;
		END IF;
		-- rarely, more rows than the writer buffers, inside a subtransaction
		IF r.v = 211 AND TG_OP = 'INSERT' THEN
			BEGIN
				INSERT INTO t_p SELECT nextval('trig_ids'), r.tenant_id, g
				  FROM generate_series(1, 1100) g;
				IF r.id % 2 = 0 THEN
					RAISE EXCEPTION 'undo the big write';
				END IF;
			EXCEPTION WHEN raise_exception THEN NULL;
			END;
		END IF;
		RETURN NULL;
	END $$;

	-- t_p: an error caught for every third row
	CREATE FUNCTION catch_p() RETURNS trigger LANGUAGE plpgsql AS $$
	DECLARE
		r record;
	BEGIN
		IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
		IF r.v % 3 = 0 THEN
			BEGIN
				RAISE unique_violation;
			EXCEPTION WHEN unique_violation THEN NULL;
			END;
		END IF;
		RETURN NULL;
	END $$;

	-- at commit (or SET CONSTRAINTS ... IMMEDIATE), writes to t_p and t_b
	CREATE FUNCTION deferred_a() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		INSERT INTO t_p VALUES (nextval('trig_ids'), NEW.tenant_id, NEW.v);
		UPDATE t_b SET v = v + 1
		 WHERE tenant_id = NEW.tenant_id AND id BETWEEN NEW.id - 40 AND NEW.id + 40;
		BEGIN
			DELETE FROM t_p WHERE tenant_id = NEW.tenant_id AND id BETWEEN NEW.id - 30 AND NEW.id;
			IF NEW.id % 2 = 0 THEN
				RAISE EXCEPTION 'undo the delete';
			END IF;
		EXCEPTION WHEN raise_exception THEN NULL;
		END;
		RETURN NULL;
	END $$;

	CREATE TRIGGER oracle AFTER INSERT OR UPDATE OR DELETE ON t_a FOR EACH ROW EXECUTE FUNCTION oracle();
	CREATE TRIGGER oracle AFTER INSERT OR UPDATE OR DELETE ON t_b FOR EACH ROW EXECUTE FUNCTION oracle();
	CREATE TRIGGER oracle AFTER INSERT OR UPDATE OR DELETE ON t_p FOR EACH ROW EXECUTE FUNCTION oracle();
	CREATE TRIGGER noisy AFTER INSERT OR UPDATE OR DELETE ON t_a FOR EACH ROW EXECUTE FUNCTION noisy_a();
	CREATE TRIGGER catch AFTER INSERT OR UPDATE OR DELETE ON t_p FOR EACH ROW EXECUTE FUNCTION catch_p();
	CREATE CONSTRAINT TRIGGER deferred AFTER INSERT ON t_a DEFERRABLE INITIALLY DEFERRED
		FOR EACH ROW WHEN (NEW.v % 29 = 3) EXECUTE FUNCTION deferred_a();

	-- a sink for writable CTEs, whose AFTER ROW trigger catches an error
	CREATE FUNCTION sink_catch() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		BEGIN
			PERFORM 1 / 0;
		EXCEPTION WHEN division_by_zero THEN NULL;
		END;
		RETURN NULL;
	END $$;

	GRANT ALL ON t_a, t_b, t_p, shadow TO cap_app;
	GRANT USAGE ON SEQUENCE trig_ids TO cap_app;
	RESET ROLE;
	SELECT autora.protect('t_a');
	SELECT autora.protect('t_b', pii_columns => '{email}');
	SELECT autora.protect('t_p');
});

my @tenants = ('p1', 'p2');
my %tokens = map { $_ => token_for($_) } @tenants;
my @tables = ('t_a', 't_b', 't_p');
my $next_id = 1;
my $tenant;
my $nsp;
my $planned_errors = 0;

sub pick { return $_[ int(rand(@_)) ] }
sub chance { return rand() < $_[0] }

# v values spread over 0..999 (so every trigger branch is taken)
sub vexpr
{
	my $k = 1 + int(rand(997));
	my $c = int(rand(1000));
	return "(g * $k + $c) % 1000";
}

sub insert_sql
{
	my ($tbl, $n) = @_;
	my ($lo, $hi) = ($next_id, $next_id + $n - 1);
	$next_id += $n;
	my $email = $tbl eq 't_b' ? q{, 'u' || (g % 7) || '@x'} : '';
	return "INSERT INTO $tbl SELECT g, '$tenant', " . vexpr() . "$email FROM generate_series($lo, $hi) g";
}

sub where_some
{
	my ($m) = @_;
	return "tenant_id = '$tenant' AND id % $m = " . int(rand($m));
}

# One DML statement (no trailing semicolon).
sub dml
{
	my $r = rand();
	my $tbl = pick(@tables);
	return insert_sql($tbl, 1 + int(rand(20))) if $r < 0.35;
	return "UPDATE $tbl SET v = v + " . (1 + int(rand(5))) . ' WHERE ' . where_some(5 + int(rand(11)))
	  if $r < 0.65;
	return "DELETE FROM $tbl WHERE " . where_some(8 + int(rand(8))) if $r < 0.85;
	# an upsert: some existing rows of the tenant, some new ones
	my ($lo, $hi) = ($next_id, $next_id + 4);
	$next_id += 5;
	my $cols = $tbl eq 't_b' ? 'id, tenant_id, v, email' : 'id, tenant_id, v';
	my $extra = $tbl eq 't_b' ? q{, 'up@x'} : '';
	return "INSERT INTO $tbl ($cols) SELECT id, tenant_id, v$extra FROM $tbl WHERE "
	  . where_some(11)
	  . " UNION ALL SELECT g, '$tenant', g % 1000$extra FROM generate_series($lo, $hi) g"
	  . " ON CONFLICT (id) DO UPDATE SET v = $tbl.v + 1";
}

sub cte
{
	if (chance(0.5))
	{
		# the reproduction's shape: entries buffered while the sink's trigger
		# runs its subtransactions
		my $tbl = pick(@tables);
		return 'WITH c AS (' . insert_sql($tbl, 1 + int(rand(30)))
		  . ' RETURNING id) INSERT INTO sink SELECT id FROM c';
	}
	return 'WITH i AS (' . insert_sql('t_a', 1 + int(rand(10))) . ' RETURNING id), '
	  . 'u AS (UPDATE t_p SET v = v + 1 WHERE ' . where_some(5) . ' RETURNING id), '
	  . 'd AS (DELETE FROM t_b WHERE ' . where_some(9) . ' RETURNING id) '
	  . 'SELECT (SELECT count(*) FROM i) + (SELECT count(*) FROM u) + (SELECT count(*) FROM d)';
}

# A DO block: statements around an inner block that may be undone.
sub do_block
{
	my $inner = join(";\n", map { dml() } 1 .. 1 + int(rand(2)));
	my $nested = chance(0.3)
	  ? "BEGIN\n" . dml() . ";\nRAISE EXCEPTION 'undo nested';\nEXCEPTION WHEN raise_exception THEN NULL;\nEND;\n"
	  : '';
	my $raise = chance(0.5) ? "RAISE EXCEPTION 'undo';\n" : '';
	return "DO \$do\$ BEGIN\n" . dml() . ";\nBEGIN\n$inner;\n$nested$raise"
	  . "EXCEPTION WHEN raise_exception THEN NULL;\nEND;\n"
	  . (chance(0.5) ? dml() . ";\n" : '')
	  . "END \$do\$";
}

# Statements for one level of a transaction; savepoints nest up to depth 3.
sub ops
{
	my ($depth, $n) = @_;
	my @sql;
	for (1 .. $n)
	{
		my $r = rand();
		if ($r < 0.18 && $depth < 3)
		{
			my $sp = 's' . ++$nsp;
			push @sql, "SAVEPOINT $sp;";
			# statements larger than the writer's buffer, inside the subtransaction
			push @sql, insert_sql(pick(@tables), 1001 + int(rand(300))) . ';' if chance(0.15);
			push @sql, ops($depth + 1, 1 + int(rand(3)));
			my $end = rand();
			if ($end < 0.45) { push @sql, "RELEASE SAVEPOINT $sp;" }
			elsif ($end < 0.8) { push @sql, "ROLLBACK TO SAVEPOINT $sp;" }
			else
			{
				push @sql, "ROLLBACK TO SAVEPOINT $sp;", ops($depth + 1, 1),
				  "RELEASE SAVEPOINT $sp;";
			}
		}
		elsif ($r < 0.23 && $depth < 3)
		{
			# a nested savepoint left open: the outer RELEASE or ROLLBACK TO ends both
			my ($outer, $inner) = ('s' . ++$nsp, 's' . ++$nsp);
			push @sql, "SAVEPOINT $outer;", dml() . ';', "SAVEPOINT $inner;", dml() . ';';
			push @sql, chance(0.5) ? "RELEASE SAVEPOINT $outer;" : "ROLLBACK TO SAVEPOINT $outer;";
		}
		elsif ($r < 0.35) { push @sql, do_block() . ';' }
		elsif ($r < 0.45) { push @sql, cte() . ';' }
		elsif ($r < 0.50)
		{
			# an error inside a savepoint, after some rows of the statement
			my $sp = 's' . ++$nsp;
			my $id = $next_id++;
			push @sql, "SAVEPOINT $sp;",
			  "INSERT INTO t_a SELECT g, '$tenant', g % 1000 FROM generate_series($id, $id + 3) g"
			  . " UNION ALL SELECT $id, '$tenant', 0;",
			  "ROLLBACK TO SAVEPOINT $sp;";
			$next_id += 3;
			$planned_errors++;
		}
		elsif ($r < 0.54) { push @sql, 'SET CONSTRAINTS ALL IMMEDIATE;', 'SET CONSTRAINTS ALL DEFERRED;' }
		elsif ($r < 0.57) { push @sql, insert_sql(pick(@tables), 1001 + int(rand(300))) . ';' }
		else { push @sql, dml() . ';' }
	}
	return @sql;
}

my $app_p = session('prop', 'cap_app');
($st) = run_sql($app_p, q{
	CREATE TEMP TABLE sink (id int);
	CREATE TRIGGER sink_catch AFTER INSERT ON sink FOR EACH ROW EXECUTE FUNCTION sink_catch();});
is($st, 'ok', 'property: the application makes its sink temp table');
my ($committed, $errors, $duplicates) = (0, 0, 0);
for my $tx (1 .. $ntx)
{
	$tenant = pick(@tenants);
	$nsp = 0;
	my $commit = chance(0.75);
	my $sql = join("\n",
		'BEGIN;',
		"SELECT autora.set_context('$tokens{$tenant}') IS NOT NULL;",
		ops(0, 2 + int(rand(5))),
		$commit ? 'COMMIT;' : 'ROLLBACK;');
	$app_p->{stderr} = '';
	{
		# BackgroundPsql notes every query: keep the TAP output readable
		no warnings 'redefine';
		local *PostgreSQL::Test::BackgroundPsql::note = sub { };
		$app_p->query($sql);
	}
	my @err = $app_p->{stderr} =~ /ERROR:\s+([0-9A-Z]{5})/g;
	# the only errors are the planned duplicate keys, each inside a savepoint
	my @unplanned = grep { $_ ne '23505' } @err;
	$duplicates += @err - @unplanned;
	if (@unplanned)
	{
		diag("transaction $tx: unplanned errors @unplanned\n$sql\n$app_p->{stderr}");
		$errors++;
	}
	$committed++ if $commit;
}
$app_p->quit;
is($errors, 0, 'property: no transaction met an unplanned error');
is($duplicates, $planned_errors, 'property: each planned error inside a savepoint was raised');
note "property: $committed of $ntx transactions committed; workload took " . elapsed($t1) . ' s';

my $stats = $node->safe_psql('prop', q{
	SELECT count(*) || ' changes, ' || count(DISTINCT tbl) || ' tables, '
		   || count(*) FILTER (WHERE op = 'UPDATE') || ' updates, '
		   || count(*) FILTER (WHERE op = 'DELETE') || ' deletes, '
		   || count(*) FILTER (WHERE pk >= 10000000) || ' made by triggers' FROM shadow});
note "property: committed $stats";
my @stats = split / /, $stats;
cmp_ok($stats[0], '>', 1000, 'property: the workload committed more than 1000 row changes');
cmp_ok($stats[8], '>', 0, 'property: rows written by triggers were committed too');

# 1. the committed changes and the entries, one to one
my $diff = $node->safe_psql('prop', q{
	WITH s AS (SELECT tbl, op, pk, count(*) AS n FROM shadow GROUP BY 1, 2, 3),
		 -- a partition's rows are recorded under t_p, the partition in metadata
		 l AS (SELECT coalesce(metadata->'partition'->>'name', table_name) AS tbl, op,
					  (pk->>'id')::int AS pk, count(*) AS n
				 FROM autora.ledger
				WHERE table_name IN ('t_a', 't_b', 't_p')
				  AND op IN ('INSERT', 'UPDATE', 'DELETE')
				GROUP BY 1, 2, 3),
		 d AS (SELECT tbl, op, pk, coalesce(s.n, 0) AS committed, coalesce(l.n, 0) AS entries
				 FROM s FULL JOIN l USING (tbl, op, pk))
	SELECT coalesce(sum(greatest(committed - entries, 0)), 0) || ' '
		   || coalesce(sum(greatest(entries - committed, 0)), 0) || ' '
		   || coalesce((SELECT string_agg(concat_ws(' ', tbl, op, pk, 'committed', committed,
												  'entries', entries), '; ')
						  FROM (SELECT * FROM d WHERE committed <> entries
								 ORDER BY tbl, op, pk LIMIT 10) x), '')
	  FROM d});
my ($missing, $extra, $sample) = split / /, $diff, 3;
is($missing, 0, 'property: no committed row change lacks its entry')
  or diag("seed $seed: $sample");
is($extra, 0, 'property: no entry without a committed row change')
  or diag("seed $seed: $sample");

# 2. each table holds what its entries, applied in order, leave: the row an
# INSERT recorded, with the changed columns of each later UPDATE laid over it
# (format 2), unless a DELETE came last.  One session wrote everything, so
# entry ids are in the order of the changes.
my $fold = $node->safe_psql('prop', q{
	WITH e AS (
		SELECT id, coalesce(metadata->'partition'->>'name', table_name) AS tbl,
			   (pk->>'id')::int AS pk, op, after
		  FROM autora.ledger
		 WHERE table_name IN ('t_a', 't_b', 't_p')
		   AND op IN ('INSERT', 'UPDATE', 'DELETE')),
	born AS (
		SELECT tbl, pk, max(id) AS insert_id FROM e WHERE op = 'INSERT' GROUP BY 1, 2),
	live AS (
		SELECT e.* FROM e JOIN born b USING (tbl, pk)
		 WHERE e.id >= b.insert_id
		   AND NOT EXISTS (SELECT FROM e d WHERE d.tbl = e.tbl AND d.pk = e.pk
							  AND d.op = 'DELETE' AND d.id > b.insert_id)),
	state AS (
		SELECT tbl, pk, jsonb_object_agg(c.key, c.value ORDER BY live.id) AS row
		  FROM live, jsonb_each(live.after) c
		 GROUP BY tbl, pk),
	folded AS (
		SELECT tbl, (row->>'id')::int AS id, row->>'tenant_id' AS tenant_id,
			   (row->>'v')::int AS v
		  FROM state),
	actual AS (
		SELECT 't_a' AS tbl, id, tenant_id, v FROM t_a
		UNION ALL SELECT 't_b', id, tenant_id, v FROM t_b
		UNION ALL SELECT tableoid::regclass::text, id, tenant_id, v FROM t_p),
	d AS ((SELECT 'folded only', * FROM folded EXCEPT ALL SELECT 'folded only', * FROM actual)
		  UNION ALL
		  (SELECT 'table only', * FROM actual EXCEPT ALL SELECT 'table only', * FROM folded))
	SELECT count(*) || ' ' || coalesce(string_agg(concat_ws(' ', d.*), '; '), '')
	  FROM (SELECT * FROM d LIMIT 10) d});
my ($nfold, $fsample) = split / /, $fold, 2;
is($nfold, 0, 'property: every table equals the fold of its entries')
  or diag("seed $seed: $fsample");

# 3. PII: a vault row for each t_b entry whose images hold a PII value, no
# other and no orphan, each opening its entry's commitments
my $vault = $node->safe_psql('prop', q{
	SELECT (SELECT count(*) FROM autora.ledger l
			 WHERE table_name = 't_b' AND coalesce(l.after->>'email', l.before->>'email') IS NOT NULL
			   AND NOT EXISTS (SELECT FROM autora.pii_vault v WHERE v.entry_id = l.id)) || ' '
		|| (SELECT count(*) FROM autora.pii_vault v
			 WHERE NOT EXISTS (SELECT FROM autora.ledger l WHERE l.id = v.entry_id
								 AND coalesce(l.after->>'email', l.before->>'email') IS NOT NULL))});
is($vault, '0 0', 'property: each t_b entry with PII in its images has its vault row, and no vault row is orphaned')
  or diag("seed $seed");
my @opened = map { [ split /\|/ ] } split /\n/, $node->safe_psql('prop', q{
	SELECT i.commitment, encode(v.salt, 'hex'), v.clear->i.image->>'email'
	  FROM autora.ledger l JOIN autora.pii_vault v ON v.entry_id = l.id,
		   LATERAL (VALUES ('before', l.before->>'email'), ('after', l.after->>'email')) AS i(image, commitment)
	 WHERE l.table_name = 't_b' AND i.commitment IS NOT NULL});
my $unopened = grep { $_->[0] ne 'pii:' . encode_base64url(substr(hmac_sha256($_->[2] // '', pack('H*', $_->[1])), 0, 16)) } @opened;
cmp_ok(scalar(@opened), '>', 0, 'property: PII values were committed');
is($unopened, 0, 'property: every PII commitment opens with its vault row');

# 4. sealed, and the chains verify
is(sealed_and_verified('prop'), 'ok', 'property: every entry sealed, and verify is ok')
  or diag("seed $seed");
note 'property test took ' . elapsed($t1) . ' s';

log_clean($node, 'capture property');
$node->stop;
done_testing();
