# 012_isolation_sessions.pl: cross-tenant isolation across transaction and
# session boundaries, which pgTAP (one transaction per file) cannot reach.
#
# Transaction- vs session-scoped context across COMMIT and ROLLBACK,
# DISCARD ALL / RESET ALL, WITH HOLD cursors, procedures that COMMIT,
# prepared statements and PL/pgSQL plans across transactions, COPY TO / FROM,
# settings planted for a role or database, PGOPTIONS, ALTER SYSTEM, EdDSA
# tokens (signed with openssl) and algorithm confusion with the real public
# key, the cached tenant and actor-role registries across sessions, and two
# concurrent sessions.  Every attack must fail; the honest path
# must work.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AutoraTenancy;

my $node = tenancy_node('isolation_sessions');
my $db = 'iso_sessions';
my $keys = tenancy_setup($node, $db);

my $tok_a = hs256_token(jwt_claims('iso-a'));
my $tok_b = hs256_token(jwt_claims('iso-b'));
my $ids = q{SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') FROM deals};
my $state_q = q{SELECT concat_ws('|', current_setting('autora.tenant_id'), current_setting('autora.actor_id'), autora.tenant(), autora.actor())};

my $s = app_session($node, $db);
my ($st, $out);

# ------------------------------------------------------------ transaction scope
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_a') IS NOT NULL; $ids; COMMIT;");
is($out, "t\n1,2,3", 'honest: transaction-scoped context of iso-a reads its rows');
($st) = run_sql($s, $ids);
is($st, 'ZA001', 'after COMMIT the transaction-scoped context is gone: ZA001');
($st) = run_sql($s, 'SELECT autora.tenant()');
is($st, 'ZA001', 'after COMMIT autora.tenant() raises ZA001');
run_sql($s, "SELECT autora.set_context('$tok_a')");
($st) = run_sql($s, $ids);
is($st, 'ZA001', 'set_context in an autocommit statement ends with that statement');
($st) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_a') IS NOT NULL; ROLLBACK;");
($st) = run_sql($s, $ids);
is($st, 'ZA001', 'a context set in a rolled-back transaction is gone');

# ------------------------------------------------------------ session scope
($st, $out) = run_sql($s, "SELECT autora.set_context('$tok_a', false) IS NOT NULL; $ids");
is($out, "t\n1,2,3", 'honest: session-scoped context (is_local false) survives the statement');
($st, $out) = run_sql($s, "BEGIN; $ids; COMMIT; $ids");
is($out, "1,2,3\n1,2,3", 'honest: session-scoped context survives COMMIT');
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_b') IS NOT NULL; $ids; COMMIT; $state_q; $ids");
is($out, "t\n11,12\niso-a|u-iso-a|iso-a|u-iso-a\n1,2,3",
	'a transaction-scoped iso-b context on top of a session iso-a context reverts whole at COMMIT');
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_b', false) IS NOT NULL; ROLLBACK; $state_q");
is($out, "t\niso-a|u-iso-a|iso-a|u-iso-a", 'ROLLBACK restores the previous session context');
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_b', false) IS NOT NULL; SELECT 1/0; ROLLBACK; $state_q; $ids");
is($out, "t\niso-a|u-iso-a|iso-a|u-iso-a\n1,2,3", 'a transaction aborted by an error restores the previous context');
($st, $out) = run_sql($s, "SELECT autora.clear_context(); $ids");
is($st, 'ZA001', 'clear_context() ends a session-scoped context');
run_sql($s, "SELECT autora.set_context('$tok_a', false)");
run_sql($s, 'DISCARD ALL');
($st) = run_sql($s, $ids);
is($st, 'ZA001', 'DISCARD ALL clears a session-scoped context');
run_sql($s, "SELECT autora.set_context('$tok_a', false)");
run_sql($s, 'RESET ALL');
($st) = run_sql($s, $ids);
is($st, 'ZA001', 'RESET ALL clears a session-scoped context');

# ------------------------------------------------------------ WITH HOLD cursors
# The cursor's rows are materialized at COMMIT under iso-a's authority; they
# must not be handed to a session whose context has ended or changed.
($st) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_a'); "
	  . "DECLARE iso_hold CURSOR WITH HOLD FOR SELECT id, tenant_id FROM deals ORDER BY id; COMMIT;");
note "DECLARE ... WITH HOLD under iso-a: $st";
($st, $out) = run_sql($s, 'FETCH 1 FROM iso_hold');
unlike("$st:$out", qr/iso-a/,
	'a WITH HOLD cursor opened under iso-a yields none of its rows once the context has ended');
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_b') IS NOT NULL; FETCH ALL FROM iso_hold; COMMIT;");
unlike("$st:$out", qr/iso-a/,
	'a WITH HOLD cursor opened under iso-a yields none of its rows to a later iso-b context');
run_sql($s, 'CLOSE iso_hold');

# ------------------------------------------------------------ procedures that COMMIT
$node->safe_psql($db, q{
	CREATE PROCEDURE iso_local(tok text) LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM autora.set_context(tok, true);
		INSERT INTO deals (id, v) VALUES (100, 'before commit');
		COMMIT;
		INSERT INTO deals (id, v) VALUES (101, 'after commit');
	END $$;
	CREATE PROCEDURE iso_session(tok text) LANGUAGE plpgsql AS $$
	BEGIN
		PERFORM autora.set_context(tok, false);
		INSERT INTO deals (id, v) VALUES (102, 'before commit');
		COMMIT;
		INSERT INTO deals (id, v) VALUES (103, 'after commit');
	END $$;
	GRANT EXECUTE ON PROCEDURE iso_local(text), iso_session(text) TO iso_app;
});
($st) = run_sql($s, "CALL iso_local('$tok_a')");
is($st, 'ZA001', 'procedure: a transaction-scoped context ends at the COMMIT inside it (next INSERT: ZA001)');
is($node->safe_psql($db, 'SELECT string_agg(id::text, \',\' ORDER BY id) FROM deals WHERE id IN (100, 101)'),
	'100', 'procedure: the row written before its COMMIT is kept, none after');
($st, $out) = run_sql($s, "CALL iso_session('$tok_a'); $ids");
is("$st:$out", 'ok:1,2,3,100,102,103',
	'procedure: a session-scoped context survives the COMMIT inside it, and the call');
run_sql($s, 'SELECT autora.clear_context()');

# ------------------------------------------------------------ plans across transactions
$node->safe_psql($db, q{
	CREATE FUNCTION iso_ids() RETURNS text LANGUAGE plpgsql AS $$
	DECLARE r text;
	BEGIN
		SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') INTO r FROM deals WHERE id < 100;
		RETURN r;
	END $$;
});
run_sql($s, "PREPARE iso_q AS SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') FROM deals WHERE id < 100");
for my $mode ('auto', 'force_generic_plan')
{
	run_sql($s, "SET plan_cache_mode = $mode");
	my @seen;
	for my $round (1 .. 3)
	{
		for my $tok ($tok_a, $tok_b)
		{
			(undef, $out) = run_sql($s,
				"BEGIN; SELECT autora.set_context('$tok') IS NOT NULL; EXECUTE iso_q; SELECT iso_ids(); COMMIT;");
			push @seen, $out;
		}
	}
	is(join(' ', map { s/^t\n//r =~ s/\n/+/r } @seen),
		join(' ', ('1,2,3+1,2,3', '11,12+11,12') x 3),
		"plan_cache_mode=$mode: prepared statement and PL/pgSQL follow each transaction's tenant");
	my ($st1) = run_sql($s, 'EXECUTE iso_q');
	my ($st2) = run_sql($s, 'SELECT iso_ids()');
	is("$st1/$st2", 'ZA001/ZA001', "plan_cache_mode=$mode: the cached plans without a context: ZA001");
}
run_sql($s, 'RESET plan_cache_mode');

# ------------------------------------------------------------ COPY
($st, $out) = sql_state($node, $db,
	"BEGIN;\nSELECT autora.set_context('$tok_a') IS NOT NULL;\nCOPY deals (id, tenant_id) TO STDOUT;\nCOMMIT;",
	connstr => $node->connstr($db) . ' user=iso_app');
is("$st:$out", "ok:t\n1\tiso-a\n2\tiso-a\n3\tiso-a\n100\tiso-a\n102\tiso-a\n103\tiso-a",
	'COPY table TO STDOUT under iso-a: only iso-a rows');
($st, $out) = sql_state($node, $db,
	"BEGIN;\nSELECT autora.set_context('$tok_b') IS NOT NULL;\nCOPY (SELECT id, tenant_id FROM deals ORDER BY id) TO STDOUT;\nCOMMIT;",
	connstr => $node->connstr($db) . ' user=iso_app');
is("$st:$out", "ok:t\n11\tiso-b\n12\tiso-b", 'COPY (query) TO STDOUT under iso-b: only iso-b rows');
($st) = sql_state($node, $db, 'COPY deals TO STDOUT;', connstr => $node->connstr($db) . ' user=iso_app');
is($st, 'ZA001', 'COPY TO without a context: ZA001');
($st) = sql_state($node, $db,
	"BEGIN;\nSELECT autora.set_context('$tok_a') IS NOT NULL;\nCOPY deals FROM STDIN;\n900\tiso-a\tcopied\n\\.\nCOMMIT;",
	connstr => $node->connstr($db) . ' user=iso_app');
is($st, '0A000', 'COPY FROM into a protected table: refused by PostgreSQL (0A000, row level security)');
($st) = sql_state($node, $db,
	"BEGIN;\nSELECT autora.set_context('$tok_a') IS NOT NULL;\nCOPY deals FROM STDIN;\n901\tiso-b\tplanted\n\\.\nCOMMIT;",
	connstr => $node->connstr($db) . ' user=iso_app');
is($st, '0A000', 'COPY FROM with another store\'s rows: refused (0A000)');
($st) = sql_state($node, $db, "COPY deals FROM STDIN;\n902\tiso-b\tplanted\n\\.\n",
	connstr => $node->connstr($db) . ' user=iso_app');
like($st, qr/^(ZA001|0A000)$/, 'COPY FROM without a context: refused');
is($node->safe_psql($db, 'SELECT count(*) FROM deals WHERE id >= 900'), '0', 'no COPY FROM row arrived');

# ------------------------------------------------------------ planted settings, PGOPTIONS, ALTER SYSTEM
my $app_conn = $node->connstr($db) . ' user=iso_app';
my $probe = "SELECT concat_ws('|', current_setting('autora.tenant_id'), current_setting('autora.actor_role'));\n$ids;";

# "connection refused, or connected with an empty context that cannot read"
sub empty_or_refused
{
	my ($state, $stdout, $stderr, $name) = @_;
	# a refusal must be about the context setting, not any connection problem
	my $refused = $stdout eq "" && $stderr =~ /FATAL:[^\n]*(permission denied to set parameter "autora\.|autora session context)/;
	my $empty = $stdout eq '|' && $state eq 'ZA001';
	note "$name: " . ($refused ? 'connection refused' : $empty ? 'connected, empty context' : 'neither');
	ok($refused || $empty, $name)
	  or diag("state=$state stdout=[$stdout] stderr=[$stderr]");
}

# ALTER ROLE/DATABASE SET are refused (pgTAP too); plant the settings in the
# catalog directly, as a careless migration or restore might.
$node->safe_psql($db, q{
	INSERT INTO pg_db_role_setting VALUES
		(0, 'iso_app'::regrole, ARRAY['autora.tenant_id=iso-b', 'autora.actor_role=platform_owner']);
});
empty_or_refused(sql_state($node, $db, $probe, connstr => $app_conn),
	'planted role setting autora.tenant_id: login fails or the context stays empty');
$node->safe_psql($db, q{
	UPDATE pg_db_role_setting SET setconfig =
		ARRAY['autora.context={"tenant": "iso-b", "sub": "x", "role": "platform_owner", "scope": "platform"}']
	 WHERE setdatabase = 0 AND setrole = 'iso_app'::regrole;
});
empty_or_refused(sql_state($node, $db, $probe, connstr => $app_conn),
	'planted role setting autora.context: login fails or the context stays empty');
$node->safe_psql($db, qq{
	DELETE FROM pg_db_role_setting WHERE setrole = 'iso_app'::regrole;
	INSERT INTO pg_db_role_setting VALUES
		((SELECT oid FROM pg_database WHERE datname = '$db'), 0, ARRAY['autora.tenant_id=iso-b']);
});
empty_or_refused(sql_state($node, $db, $probe, connstr => $app_conn),
	'planted database setting autora.tenant_id: login fails or the context stays empty');
$node->safe_psql($db, q{DELETE FROM pg_db_role_setting WHERE setrole = 0 AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())});

{
	local $ENV{PGOPTIONS} = '-c autora.tenant_id=iso-b';
	empty_or_refused(sql_state($node, $db, $probe, connstr => $app_conn),
		'PGOPTIONS -c autora.tenant_id (application role): connection fails or context stays empty');
	empty_or_refused(sql_state($node, $db, $probe),
		'PGOPTIONS -c autora.tenant_id (superuser): connection fails or context stays empty');
}
{
	local $ENV{PGOPTIONS} =
	  q{-c autora.context={"tenant":"iso-b","sub":"x","role":"platform_owner","scope":"platform"}};
	empty_or_refused(sql_state($node, $db, $probe, connstr => $app_conn),
		'PGOPTIONS -c autora.context: connection fails or context stays empty');
}
($st) = sql_state($node, $db, q{ALTER SYSTEM SET autora.tenant_id = 'iso-b'});
isnt($st, 'ok', 'ALTER SYSTEM SET autora.tenant_id is refused');
unlike(slurp_file($node->data_dir . '/postgresql.auto.conf'), qr/autora\.(tenant_id|context)/,
	'postgresql.auto.conf holds no context setting');

# ------------------------------------------------------------ EdDSA tokens
my $ed = sub { eddsa_token(jwt_claims(@_), $keys->{ed_priv}) };
my $try = sub {
	my ($token) = @_;
	my ($state, $o) = run_sql($s, "SELECT autora.set_context('$token') ->> 'tenant'");
	return $state eq 'ok' ? "ok:$o" : $state;
};
is($try->($ed->('iso-a')), 'ok:iso-a', 'honest: EdDSA token signed by the registered key');
is($try->(eddsa_token(jwt_claims('iso-a'), $keys->{ed_priv}, header => { alg => 'EdDSA' })), 'ok:iso-a',
	'honest: EdDSA token without kid uses the single EdDSA key');
my $good = $ed->('iso-a');
my ($h, $p, $sig) = split /\./, $good;
is($try->(join '.', $h, b64url(JSON::PP->new->canonical->encode(jwt_claims('iso-b'))), $sig), 'ZA002',
	'EdDSA: payload switched to iso-b, signature kept: ZA002');
is($try->(eddsa_token(jwt_claims('iso-b'), $keys->{other_priv})), 'ZA002',
	'EdDSA: signed by an unregistered Ed25519 key: ZA002');
is($try->(join '.', $h, $p, substr($sig, 0, 40)), 'ZA002', 'EdDSA: truncated signature: ZA002');
is($try->(join '.', $h, $p, b64url("\0" x 64)), 'ZA002', 'EdDSA: all-zero signature: ZA002');
is($try->(hs256_token(jwt_claims('iso-b'), header => { alg => 'HS256', kid => $ED_KID }, secret => $keys->{ed_pub})),
	'ZA002', 'alg confusion: HS256 keyed with the real Ed25519 public PEM, kid of the EdDSA key: ZA002');
is($try->(hs256_token(jwt_claims('iso-b'), header => { alg => 'HS256' }, secret => $keys->{ed_pub})),
	'ZA002', 'alg confusion: HS256 keyed with the real Ed25519 public PEM, no kid: ZA002');
is($try->(eddsa_token(jwt_claims('iso-b'), $keys->{ed_priv}, header => { alg => 'EdDSA', kid => $HS_KID })),
	'ZA002', 'EdDSA token naming the HS256 key: ZA002');
is($try->(eddsa_token(jwt_claims('iso-b'), $keys->{ed_priv}, header => { alg => 'none', kid => $ED_KID })),
	'ZA002', 'alg none naming the EdDSA key: ZA002');

# ------------------------------------------------------------ group membership changes
# A group admin with a session-scoped context sees the stores of its group.
# When a store leaves the group (committed by the platform), the admin's next
# transaction must no longer see it: the group's store list is live data.
my $tok_ga = hs256_token(jwt_claims('iso-a', 'group_admin'));
($st, $out) = run_sql($s, "SELECT autora.set_context('$tok_ga', false) IS NOT NULL; "
	  . "SELECT count(*) FROM deals WHERE tenant_id = 'iso-b'");
is("$st:$out", "ok:t\n2", 'honest: a group admin (session context) sees the other store of its group');
$node->safe_psql($db, q{SELECT autora.add_tenant('iso-b', 'iso-g2', 'Store B')});
($st, $out) = run_sql($s, "SELECT count(*) FROM deals WHERE tenant_id = 'iso-b'");
is("$st:$out", 'ok:0', 'a store moved to another group is no longer visible to the group admin\'s next statement');
$node->safe_psql($db, q{SELECT autora.add_tenant('iso-b', 'iso-g1', 'Store B')});
run_sql($s, 'SELECT autora.clear_context()');

# ------------------------------------------------------------ registry caches
# Backends cache tenant and actor-role lookups across transactions; a change
# committed elsewhere must count from the next transaction on, a rolled-back
# one never, and a lookup under an older snapshot must not keep what it saw.
my $group_q = q{SELECT autora.context()->>'group'};
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_ga') IS NOT NULL; $group_q; COMMIT;");
is("$st:$out", "ok:t\niso-g1", 'honest: the group admin of iso-a is in iso-g1 (and the lookup is cached)');
$node->safe_psql($db, q{SELECT autora.add_tenant('iso-a', 'iso-g2', 'Store A')});
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_ga') IS NOT NULL; $group_q; COMMIT;");
is("$st:$out", "ok:t\niso-g2", 'a store moved to another group by another session counts at the next transaction');
($st, $out) = run_sql($s, "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1;");
$node->safe_psql($db, q{SELECT autora.add_tenant('iso-a', 'iso-g1', 'Store A')});
($st, $out) = run_sql($s, "SELECT autora.set_context('$tok_ga') IS NOT NULL; $group_q; COMMIT;");
is("$st:$out", "ok:t\niso-g2", 'a repeatable-read transaction sees the registry as of its snapshot');
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_ga') IS NOT NULL; $group_q; COMMIT;");
is("$st:$out", "ok:t\niso-g1", '... and what it saw was not kept: the next transaction sees the committed group');

$node->safe_psql($db, q{INSERT INTO autora.actor_roles (role, scope) VALUES ('iso_temp', 'tenant')});
my $tok_temp = hs256_token(jwt_claims('iso-a', 'iso_temp'));
($st, $out) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_temp') IS NOT NULL; COMMIT;");
is("$st:$out", "ok:t", 'honest: an actor role added by the platform is usable');
$node->safe_psql($db, q{DELETE FROM autora.actor_roles WHERE role = 'iso_temp'});
($st) = run_sql($s, "BEGIN; SELECT autora.set_context('$tok_temp'); COMMIT;");
is($st, 'ZA004', 'an actor role deleted by another session is refused at the next transaction: ZA004');

my $su = app_session($node, $db, connstr => $node->connstr($db));
($st, $out) = run_sql($su, "BEGIN; SELECT autora.add_tenant('iso-tmp', 'iso-g1', 'Temp'); "
	  . "SELECT autora.set_context_trusted('iso-tmp', 'x', 'sales') IS NOT NULL; ROLLBACK;");
like("$st:$out", qr/^ok:.*t$/s, 'honest: a store added in a transaction is usable inside it');
($st) = run_sql($su, "SELECT autora.set_context_trusted('iso-tmp', 'x', 'sales')");
is($st, 'ZA004', 'a store whose registration rolled back is unknown afterwards: ZA004');
$su->quit;

# ------------------------------------------------------------ two concurrent sessions
my $s2 = app_session($node, $db);
run_sql($s, "SELECT autora.set_context('$tok_a', false)");
run_sql($s2, "SELECT autora.set_context('$tok_b', false)");
my @interleaved;
for (1 .. 3)
{
	push @interleaved, (run_sql($s, "$ids WHERE id < 100"))[1];
	push @interleaved, (run_sql($s2, "$ids WHERE id < 100"))[1];
}
is(join(' ', @interleaved), join(' ', ('1,2,3', '11,12') x 3),
	'two concurrent sessions with different stores never see each other\'s rows');
$s->quit;
$s2->quit;

ok(!log_has_crash($node), 'no backend crashed');
$node->stop;
done_testing();
