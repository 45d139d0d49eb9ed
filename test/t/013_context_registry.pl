# 013_context_registry.pl: a session-scoped context follows the registry.
#
# A context set with is_local => false lives across transactions, while the
# platform may move its store to another group, change its actor role's
# scope, or delete the role or the store.  Each such change must count from
# the session's next transaction: the group and scope are read from
# autora.tenants / autora.actor_roles per transaction (not frozen when the
# context was set), and a context whose role or store is gone is refused
# with ZA004 by every access to a protected table (empty ones too), every
# reader and log_event.  Within one transaction nothing changes.  The honest
# path: an unchanged context keeps working, without scanning the registry
# per statement.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AutoraTenancy;

my $node = tenancy_node('context_registry');
my $db = 'ctx_registry';
tenancy_setup($node, $db);

# iso-a, iso-b in iso-g1; iso-c in iso-g2; deals: iso-a 1,2,3  iso-b 11,12
# iso-c 21.  A store iso-d (iso-g2, row 31), a role for the trusted path,
# and an empty protected table (no policy ever runs on it).
$node->safe_psql($db, q{
	SELECT autora.add_tenant('iso-d', 'iso-g2', 'Store D');
	SELECT autora.set_context_trusted('iso-d', 'setup', 'sales');
	INSERT INTO deals VALUES (31, 'iso-d', 'd1');
	SELECT autora.clear_context();
	CREATE ROLE iso_svc LOGIN IN ROLE autora_trusted;
	GRANT ALL ON deals TO iso_svc;
	CREATE TABLE empty_t (id int PRIMARY KEY, tenant_id text NOT NULL);
	SELECT autora.protect('empty_t');
	GRANT ALL ON empty_t TO iso_app, iso_svc;
	INSERT INTO autora.actor_roles (role, scope) VALUES
		('iso_mgr', 'group'), ('iso_tmp', 'tenant'), ('iso_ops', 'platform');
});

my $ids = q{SELECT coalesce(string_agg(id::text, ',' ORDER BY id), '-') FROM deals};
my $ctx_q = q{SELECT concat_ws('|', autora.context()->>'scope', coalesce(autora.context()->>'group', '-'), array_to_string(autora.visible_tenants(), ','))};
my ($st, $out);

# as the platform, committed in its own session
sub registry
{
	my ($sql) = @_;
	$node->safe_psql($db, $sql);
}

# the full error text (message, detail, hint) of a statement
sub error_text
{
	my ($s, $sql) = @_;
	no warnings 'redefine';
	local *PostgreSQL::Test::BackgroundPsql::note = sub { };
	$s->query('\set VERBOSITY default');
	$s->{stderr} = '';
	$s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	$s->query('\set VERBOSITY sqlstate');
	return $err;
}

# ------------------------------------------------------------ group moves
my $s = app_session($node, $db);
my $tok_ga = hs256_token(jwt_claims('iso-a', 'group_admin'));
($st, $out) = run_sql($s, "SELECT autora.set_context('$tok_ga', false) IS NOT NULL; $ids; $ctx_q");
is("$st:$out", "ok:t\n1,2,3,11,12\ngroup|iso-g1|iso-a,iso-b",
	'honest: a session-scoped group admin of iso-a sees its group iso-g1');

registry(q{SELECT autora.add_tenant('iso-a', 'iso-g2', 'Store A')});
($st, $out) = run_sql($s, "$ids; $ctx_q");
is("$st:$out", "ok:1,2,3,21,31\ngroup|iso-g2|iso-a,iso-c,iso-d",
	'its store moved to iso-g2: the next transaction sees iso-g2 (iso-b gone, iso-c and iso-d in), and context() says so');

# within one transaction the registry as it was at its first use counts
($st, $out) = run_sql($s, "BEGIN; $ids;");
registry(q{SELECT autora.add_tenant('iso-a', 'iso-g1', 'Store A')});
($st, $out) = run_sql($s, "$ids; $ctx_q; COMMIT;");
is("$st:$out", "ok:1,2,3,21,31\ngroup|iso-g2|iso-a,iso-c,iso-d",
	'a move committed during a transaction does not change that transaction');
($st, $out) = run_sql($s, "$ids; $ctx_q");
is("$st:$out", "ok:1,2,3,11,12\ngroup|iso-g1|iso-a,iso-b", '... it counts from the next one');

registry(q{SELECT autora.add_tenant('iso-a', NULL, 'Store A')});
($st, $out) = run_sql($s, "$ids; $ctx_q");
is("$st:$out", "ok:1,2,3\ngroup|-|iso-a", 'its store taken out of every group: the admin sees its own store only');
registry(q{SELECT autora.add_tenant('iso-a', 'iso-g1', 'Store A')});
run_sql($s, 'SELECT autora.clear_context()');

# ------------------------------------------------------------ scope changes (trusted path)
my $svc = app_session($node, $db, user => 'iso_svc');
($st, $out) = run_sql($svc,
	"SELECT autora.set_context_trusted('iso-a', 'm1', 'iso_mgr', is_local => false) IS NOT NULL; $ids; $ctx_q");
is("$st:$out", "ok:t\n1,2,3,11,12\ngroup|iso-g1|iso-a,iso-b",
	'honest: a trusted session-scoped context of a group-scope role sees its group');
registry(q{UPDATE autora.actor_roles SET scope = 'tenant' WHERE role = 'iso_mgr'});
($st, $out) = run_sql($svc, "$ids; $ctx_q");
is("$st:$out", "ok:1,2,3\ntenant|iso-g1|iso-a",
	'its role narrowed from group to tenant scope: the next transaction sees its own store only');
registry(q{UPDATE autora.actor_roles SET scope = 'platform' WHERE role = 'iso_mgr'});
($st, $out) = run_sql($svc, "$ids; $ctx_q");
is("$st:$out", "ok:1,2,3,11,12,21,31\nplatform|iso-g1|iso-a,iso-b,iso-c,iso-d",
	'its role widened to platform scope: the next transaction sees every store');
run_sql($svc, 'SELECT autora.clear_context()');

# a platform context without a store, whose role loses platform scope
($st, $out) = run_sql($svc,
	"SELECT autora.set_context_trusted(NULL, 'o1', 'iso_ops', is_local => false) IS NOT NULL; $ids");
is("$st:$out", "ok:t\n1,2,3,11,12,21,31", 'honest: a platform context without a store sees every store');
registry(q{UPDATE autora.actor_roles SET scope = 'group' WHERE role = 'iso_ops'});
($st) = run_sql($svc, $ids);
is($st, 'ZA004', 'its role no longer has platform scope: the store-less context is refused (ZA004)');
($st) = run_sql($svc, 'SELECT autora.visible_tenants()');
is($st, 'ZA004', '... visible_tenants() too');
run_sql($svc, 'SELECT autora.clear_context()');

# ------------------------------------------------------------ deleted role
my $tok_tmp = hs256_token(jwt_claims('iso-a', 'iso_tmp'));
($st, $out) = run_sql($s, "SELECT autora.set_context('$tok_tmp', false) IS NOT NULL; $ids; SELECT count(*) FROM empty_t");
is("$st:$out", "ok:t\n1,2,3\n0", 'honest: a session-scoped context of role iso_tmp reads');
registry(q{DELETE FROM autora.actor_roles WHERE role = 'iso_tmp'});
my %refused = (
	'a protected table' => $ids,
	'an empty protected table' => 'SELECT count(*) FROM empty_t',
	'an INSERT' => q{INSERT INTO deals (id, v) VALUES (40, 'x')},
	'autora.tenant()' => 'SELECT autora.tenant()',
	'autora.actor()' => 'SELECT autora.actor()',
	'autora.actor_role()' => 'SELECT autora.actor_role()',
	'autora.context()' => 'SELECT autora.context()',
	'autora.visible_tenants()' => 'SELECT autora.visible_tenants()',
	'autora.log_event()' => q{SELECT autora.log_event('after-delete')});
for my $what (sort keys %refused)
{
	($st) = run_sql($s, $refused{$what});
	is($st, 'ZA004', "role deleted: $what is refused at the next transaction (ZA004)");
}
my $err = error_text($s, $ids);
like($err, qr/actor role "iso_tmp" of the session context is no longer registered/,
	'the refusal names the deleted role');
like($err, qr/HINT:.*autora\.set_context.*autora\.clear_context/s, '... and hints to set a new context or clear it');
is($node->safe_psql($db, q{SELECT count(*) FROM autora.ledger WHERE event = 'after-delete' OR after->>'id' = '40'}),
	'0', 'nothing was written under the deleted role');
($st) = run_sql($s, "SELECT autora.set_context('$tok_ga', false) IS NOT NULL; $ids");
is($st, 'ok', 'a new context replaces the refused one');
run_sql($s, 'SELECT autora.clear_context()');
($st) = run_sql($s, $ids);
is($st, 'ZA001', 'clear_context() ends it as usual: ZA001');

# ------------------------------------------------------------ deleted tenant
my $tok_d = hs256_token(jwt_claims('iso-d', 'sales'));
($st, $out) = run_sql($s, "SELECT autora.set_context('$tok_d', false) IS NOT NULL; $ids");
is("$st:$out", "ok:t\n31", 'honest: a session-scoped context of store iso-d reads its row');
registry(q{DELETE FROM autora.tenants WHERE tenant_id = 'iso-d'});
for my $what (sort keys %refused)
{
	($st) = run_sql($s, $refused{$what});
	is($st, 'ZA004', "store deleted: $what is refused at the next transaction (ZA004)");
}
$err = error_text($s, 'SELECT autora.tenant()');
like($err, qr/tenant "iso-d" of the session context is no longer registered/, 'the refusal names the deleted store');
unlike($err, qr/iso-[abc]|iso-g/, '... and no other store or group');
registry(q{SELECT autora.add_tenant('iso-d', 'iso-g2', 'Store D')});
($st, $out) = run_sql($s, $ids);
is("$st:$out", 'ok:31', 'the store registered again: the same context reads again');
run_sql($s, 'SELECT autora.clear_context()');

# ------------------------------------------------------------ honest path, and its cost
my $stats_q = q{SELECT (SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relid = 'autora.tenants'::regclass)
	|| '/' || (SELECT coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_xact_user_tables WHERE relid = 'autora.actor_roles'::regclass)};
for my $case (['sales', '1,2,3', '0/0'], ['group_admin', '1,2,3,11,12', '1/0'])
{
	my ($role, $rows, $scans) = @$case;
	my $tok = hs256_token(jwt_claims('iso-a', $role));
	run_sql($s, "SELECT autora.set_context('$tok', false)");
	my @seen;
	for my $i (1 .. 30)
	{
		registry(qq{SELECT autora.add_tenant('iso-x$i', 'iso-g9', 'Elsewhere')}) if $i % 10 == 0;
		($st, $out) = run_sql($s, "BEGIN; $ids; SELECT autora.tenant(); SELECT autora.log_event('tick') > 0; COMMIT;");
		push @seen, "$st:$out";
	}
	is_deeply([ grep { $_ ne "ok:$rows\niso-a\nt" } @seen ], [],
		"honest: an unchanged session-scoped $role context works in 30 transactions, unrelated registry changes between them");
	# the counters hold this backend's scans not yet reported: take a difference
	my (undef, $before) = run_sql($s, "BEGIN; $stats_q");
	($st, $out) = run_sql($s, ("$ids; SELECT autora.tenant(), autora.visible_tenants(); " x 20) . $stats_q);
	run_sql($s, 'COMMIT');
	my @b = split m{/}, $before;
	my @a = split m{/}, (split /\n/, $out)[-1];
	is("$st:" . ($a[0] - $b[0]) . '/' . ($a[1] - $b[1]), "ok:$scans",
		"$role: 20 statements of one transaction scan autora.tenants / autora.actor_roles $scans times (cached)");
	run_sql($s, 'SELECT autora.clear_context()');
}

$s->quit;
$svc->quit;
ok(!log_has_crash($node), 'no backend crashed');
$node->stop;
done_testing();
