# 001_concurrency.pl: concurrent writers, one tenant and many, with the
# background sealer running meanwhile.  Afterwards every committed change has
# exactly one entry, every entry sits in exactly one block of its own tenant,
# per-tenant sequences and block numbers are consistent, and verify() is ok.
# Also: writers of one tenant do not wait for each other until commit.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AutoraTest;

my $t_start = time();
my $node = autora_node('concurrency', seal_interval => '200ms',
	conf => "log_statement = none\n");
my $db = 'conc';
my @spread = map { 200 + $_ } 1 .. 8;
setup_db($node, $db, tenants => [ '101', @spread ]);

my $clients = 4;
my $per_client = 1500;
my $total = $clients * $per_client;

# Each transaction: a context, an insert, an update of the new row, and an
# update of a random older row of the same tenant (often none).  `updates`
# counts the updates a row received, so no update is a no-op.
sub script
{
	my ($tenant_expr) = @_;
	return qq{\\set amt random(1, 1000)
\\set rid random(1, $total * 2)
BEGIN;
SELECT autora.set_context_trusted($tenant_expr, 'u' || :client_id, 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ($tenant_expr, 'c' || :client_id, :amt);
UPDATE deals SET amount = amount + 1, updates = updates + 1 WHERE id = currval('deals_id_seq');
UPDATE deals SET updates = updates + 1 WHERE id = :rid AND tenant_id = $tenant_expr;
COMMIT;
};
}

my %runs = (
	one_tenant => { script => script(q{'101'}), tenants => ['101'] },
	spread => {
		script => "\\set t random(1, 8)\n" . script(q{(200 + :t)::text}),
		tenants => [@spread]
	},
);

for my $run ('one_tenant', 'spread')
{
	my $t0 = time();
	$node->pgbench(
		"-n -c $clients -j 2 -t $per_client",
		0,
		[
			qr{actually processed: $total/$total},
			qr{number of failed transactions: 0\b}
		],
		[qr{^$}],
		"pgbench $run: $total transactions, none failed",
		{ "001_$run.sql" => $runs{$run}{script} },
		$db);
	note "pgbench $run took " . elapsed($t0) . ' s';
	my $in = join ',', map { "'$_'" } @{ $runs{$run}{tenants} };
	my $rows = $node->safe_psql($db,
		"SELECT count(*) FROM deals WHERE tenant_id IN ($in)");
	is($rows, $total, "$run: $total deals rows committed");
}

# Everything committed is sealed: by the worker meanwhile, and now.
$node->safe_psql($db, 'SELECT autora.seal()');
ok( poll(
		$node, $db,
		'SELECT count(*) FILTER (WHERE ok IS NOT TRUE) FROM autora.verify()',
		'0', 30),
	'verify(): every chain ok = true after sealing');

my $verify = $node->safe_psql($db,
	"SELECT coalesce(tenant_id, '<platform>') || ':' || entries || ':' || sealed || ':' || coalesce(ok::text, 'null')"
	  . ' FROM autora.verify() ORDER BY 1');
note "verify():\n$verify";
is( $node->safe_psql($db,
		'SELECT count(*) FROM autora.verify() WHERE entries <> sealed OR ok IS NOT TRUE'),
	'0',
	'verify(): every entry of every chain is sealed');
is($node->safe_psql($db, 'SELECT count(*) FROM autora.verify()'),
	'10', 'verify() reports the 9 tenants and the platform chain');

# Per tenant: INSERT entries = rows, UPDATE entries = updates counted in rows.
is( $node->safe_psql(
		$db, q{
		WITH r AS (SELECT tenant_id, count(*) AS ins, sum(updates) AS upd
		             FROM deals GROUP BY tenant_id),
		     l AS (SELECT tenant_id,
		                  count(*) FILTER (WHERE op = 'INSERT') AS ins,
		                  count(*) FILTER (WHERE op = 'UPDATE') AS upd
		             FROM autora.ledger WHERE table_name = 'deals' GROUP BY tenant_id)
		SELECT count(*) FROM r FULL JOIN l USING (tenant_id)
		 WHERE r.ins IS DISTINCT FROM l.ins OR r.upd IS DISTINCT FROM l.upd}),
	'0',
	'per tenant: one INSERT entry per row and one UPDATE entry per update');
is( $node->safe_psql($db,
		"SELECT count(*) FROM autora.ledger WHERE table_name = 'deals' AND op = 'INSERT'"),
	2 * $total,
	'INSERT entries = rows inserted by both runs');

# Each entry names the row's tenant and the actor of the session that wrote it.
is( $node->safe_psql(
		$db, q{
		SELECT count(*) FROM autora.ledger
		 WHERE table_name = 'deals' AND op = 'INSERT'
		   AND (tenant_id IS DISTINCT FROM after->>'tenant_id'
		        OR actor_id IS DISTINCT FROM 'u' || substr(after->>'customer', 2)
		        OR actor_role IS DISTINCT FROM 'sales')}),
	'0',
	'entries carry their own session context (tenant, actor, role)');

is( $node->safe_psql(
		$db, q{
		SELECT count(*) FROM (SELECT tenant_id, seq FROM autora.ledger
		                       GROUP BY tenant_id, seq HAVING count(*) > 1) d}),
	'0',
	'no duplicate (tenant_id, seq) in the ledger');

is( $node->safe_psql(
		$db, q{
		SELECT count(*) FROM (SELECT e FROM autora.ledger_blocks, unnest(entry_ids) e
		                       GROUP BY e HAVING count(*) > 1) d}),
	'0',
	'no entry is listed in two blocks');

is( $node->safe_psql(
		$db, q{
		SELECT count(*) FROM autora.ledger l
		  LEFT JOIN (SELECT b.tenant_id, e FROM autora.ledger_blocks b, unnest(b.entry_ids) e) s
		         ON s.e = l.id
		 WHERE s.e IS NULL OR s.tenant_id IS DISTINCT FROM l.tenant_id}),
	'0',
	'every entry is in a block of its own tenant');

is( $node->safe_psql(
		$db, q{
		SELECT count(*) FROM autora.ledger_blocks b, unnest(b.entry_ids) e
		 WHERE NOT EXISTS (SELECT FROM autora.ledger l WHERE l.id = e)}),
	'0',
	'every id listed in a block exists in the ledger');

is( $node->safe_psql(
		$db, q{
		SELECT count(*) FROM (
		  SELECT tenant_id FROM autora.ledger_blocks GROUP BY tenant_id
		  HAVING min(block_no) <> 1 OR max(block_no) <> count(*)
		      OR count(DISTINCT block_no) <> count(*)) d}),
	'0',
	'block_no is 1..n without gaps or duplicates per tenant');

is( $node->safe_psql(
		$db, q{
		SELECT count(*) FROM autora.ledger_blocks
		 WHERE entry_count <> cardinality(entry_ids)
		    OR first_entry <> entry_ids[1] OR last_entry <> entry_ids[cardinality(entry_ids)]}),
	'0',
	'block headers agree with their entry lists');

note 'blocks per tenant: '
  . $node->safe_psql($db,
	"SELECT string_agg(coalesce(tenant_id, '<platform>') || '=' || n, ' ' ORDER BY tenant_id)"
	  . ' FROM (SELECT tenant_id, count(*) n FROM autora.ledger_blocks GROUP BY 1) s');

# ---------------------------------------------------------------------------
# Writers of one tenant do not serialize: A holds an open transaction with an
# entry for tenant 101 while B writes for 101, commits, and gets sealed.
# ---------------------------------------------------------------------------
my $a = $node->background_psql($db, on_error_stop => 1, timeout => 60);
my (undef, $a_err) = $a->query(
	q{BEGIN;
	  SELECT autora.set_context_trusted('101', 'alice', 'sales');
	  INSERT INTO deals (tenant_id, customer) VALUES ('101', 'session-a');});
is($a_err, 0, 'session A inserts for tenant 101 and keeps its transaction open')
  or diag($a->{stderr});

my ($timed_out, $b_out, $b_err);
my $t0 = time();
my $rc = $node->psql(
	$db, q{
	BEGIN;
	SELECT autora.set_context_trusted('101', 'bob', 'sales');
	INSERT INTO deals (tenant_id, customer) VALUES ('101', 'session-b');
	UPDATE deals SET amount = 7 WHERE customer = 'session-b';
	COMMIT;
	SELECT autora.seal();},
	stdout => \$b_out,
	stderr => \$b_err,
	on_error_stop => 1,
	timeout => 15,
	timed_out => \$timed_out);
my $b_secs = elapsed($t0);
ok(!$timed_out && $rc == 0,
	"session B writes tenant 101 and commits while A's transaction is open (took ${b_secs}s)")
  or diag("rc=$rc timed_out=$timed_out stderr=$b_err");
cmp_ok($b_secs, '<', 5, 'session B did not wait for session A');

my $b_block = $node->safe_psql($db, q{
	SELECT b.block_no FROM autora.ledger l
	  JOIN autora.ledger_blocks b ON l.id = ANY (b.entry_ids)
	 WHERE l.op = 'INSERT' AND l.after->>'customer' = 'session-b'});
like($b_block, qr/^\d+$/, "B's entry is sealed while A is still open (block $b_block)");
is( $node->safe_psql($db,
		"SELECT ok FROM autora.verify('101')"),
	't', "verify('101') ok while A's entry is uncommitted");

(undef, $a_err) = $a->query('COMMIT');
is($a_err, 0, 'session A commits') or diag($a->{stderr});
$a->quit;

$node->safe_psql($db, 'SELECT autora.seal()');
ok(poll($node, $db, "SELECT ok FROM autora.verify('101')", 't', 15),
	"verify('101') ok after A commits and is sealed");
my $a_block = $node->safe_psql($db, q{
	SELECT b.block_no FROM autora.ledger l
	  JOIN autora.ledger_blocks b ON l.id = ANY (b.entry_ids)
	 WHERE l.op = 'INSERT' AND l.after->>'customer' = 'session-a'});
like($a_block, qr/^\d+$/, "A's entry is sealed after its commit (block $a_block)");
cmp_ok($a_block, '>', $b_block,
	"A's entry (older transaction, later commit) is sealed in a later block than B's");
is( $node->safe_psql($db,
		"SELECT actor_id FROM autora.ledger WHERE op = 'INSERT' AND after->>'customer' = 'session-a'"),
	'alice', "A's entry carries A's actor");
is( $node->safe_psql($db,
		"SELECT count(*) FROM autora.verify() WHERE entries <> sealed OR ok IS NOT TRUE"),
	'0', 'all chains verify with every entry sealed');

# ---------------------------------------------------------------------------
# Two transactions writing two tenants in opposite order do not wait for
# each other (no per-tenant lock held to commit, so no deadlock).
# ---------------------------------------------------------------------------
{
	my @s = map { $node->background_psql($db, on_error_stop => 0, timeout => 60) } 1 .. 2;
	$_->query("SET lock_timeout = '5s'; SET statement_timeout = '10s'") for @s;
	my @steps = (
		[ 0, '201', 'x-a1' ], [ 1, '202', 'x-b1' ],
		[ 0, '202', 'x-a2' ], [ 1, '201', 'x-b2' ]);
	my $errors = '';
	$s[$_]->query('BEGIN') for 0 .. 1;
	for my $step (@steps)
	{
		my ($i, $tenant, $customer) = @$step;
		my ($out, $err) = $s[$i]->query(
			qq{SELECT autora.set_context_trusted('$tenant', 'cross-$i', 'sales');
			   INSERT INTO deals (tenant_id, customer) VALUES ('$tenant', '$customer');});
		$errors .= "session $i, tenant $tenant: $s[$i]->{stderr}\n" if $err;
	}
	for my $i (0 .. 1)
	{
		my (undef, $err) = $s[$i]->query('COMMIT');
		$errors .= "session $i COMMIT: $s[$i]->{stderr}\n" if $err;
		$s[$i]->quit;
	}
	is($errors, '', 'two transactions writing tenants 201/202 in opposite order neither wait nor fail');
	$node->safe_psql($db, 'SELECT autora.seal()');
	is( $node->safe_psql($db,
			"SELECT count(*) FROM autora.ledger WHERE op = 'INSERT' AND after->>'customer' LIKE 'x-__'"),
		'4', 'their four entries are in the ledger');
	is( $node->safe_psql($db,
			"SELECT count(*) FROM autora.verify() WHERE entries <> sealed OR ok IS NOT TRUE"),
		'0', 'and every chain verifies, fully sealed');
}

log_clean($node, 'concurrency');
$node->stop;
note 'total ' . elapsed($t_start) . ' s';
done_testing();
