# 002_tamper_detect.pl: tampering done by a superuser while the library is
# not loaded (the only way past the guards) is detected by autora.verify(),
# which names the first bad entry.  Each case has its own database; all are
# built and sealed first, then tampered in one restart without the library,
# then checked after a restart with it.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use AutoraTest;

my $t_start = time();

# A long interval: after its first round the worker stays asleep, so blocks
# are cut where this test calls autora.seal().  (The node is stopped in
# immediate mode while the library is loaded: a sleeping sealer delays a
# fast shutdown, which 003_sealer.pl covers.)
my $node = autora_node('tamper', seal_interval => '1h');

# The documented entry encoding (src/encoding.c, format 1) in SQL, as an
# attacker with file or superuser access could write it: lets the test forge
# entries whose own hash is consistent.
my $hash_sql = q{
CREATE FUNCTION public.t_frame(b bytea) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN CASE WHEN b IS NULL THEN '\x00'::bytea
            ELSE '\x01'::bytea || int4send(length(b)) || b END;
CREATE FUNCTION public.t_txt(t text) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN public.t_frame(convert_to(t, 'UTF8'));
CREATE FUNCTION public.t_i8(v bigint) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN public.t_frame(int8send(v));
CREATE FUNCTION public.t_ts(v timestamptz) RETURNS bytea LANGUAGE sql IMMUTABLE
RETURN public.t_i8((extract(epoch FROM v) * 1000000)::bigint);
CREATE FUNCTION public.t_entry_hash(l autora.ledger) RETURNS bytea LANGUAGE sql STABLE
RETURN sha256(convert_to('autora-entry', 'UTF8')
    || t_i8(l.id) || t_i8(l.format) || t_txt(l.tenant_id) || t_i8(l.seq) || t_i8(l.xid)
    || t_ts(l.ts) || t_ts(l.stmt_ts)
    || t_txt(l.table_schema) || t_txt(l.table_name) || t_txt(l.op)
    || t_txt(l.pk::text) || t_txt(l.before::text) || t_txt(l.after::text)
    || CASE WHEN l.changed IS NULL THEN '\x00'::bytea
            ELSE '\x01'::bytea || int4send(cardinality(l.changed))
                 || coalesce((SELECT string_agg(t_txt(c), ''::bytea ORDER BY o)
                                FROM unnest(l.changed) WITH ORDINALITY u(c, o)), ''::bytea) END
    || t_txt(l.actor_id) || t_txt(l.actor_role) || t_txt(l.db_session_user) || t_txt(l.db_current_user)
    || t_txt(CASE WHEN l.client_addr IS NULL THEN NULL ELSE format('%s', l.client_addr) END)
    || t_txt(l.application_name) || t_txt(l.user_agent) || t_txt(l.endpoint) || t_txt(l.method)
    || t_txt(l.request_id) || t_i8(l.support_session)
    || t_txt(l.event) || t_txt(l.entity_type) || t_txt(l.entity_id) || t_txt(l.metadata::text));
};

# Three sealed blocks per tenant: [3 inserts], [update, delete, event], [insert].
sub populate
{
	my ($db, @tenants) = @_;
	my $sql = '';
	for my $t (@tenants)
	{
		$sql .= qq{
BEGIN;
SELECT autora.set_context_trusted('$t', 'alice', 'sales',
    '{"ip": "10.1.2.3", "ua": "Mozilla/5.0", "endpoint": "/deals", "method": "POST", "req": "r-1"}');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('$t', 'c1', 100), ('$t', 'c2', 200), ('$t', 'c3', 300);
COMMIT;
SELECT autora.seal();
BEGIN;
SELECT autora.set_context_trusted('$t', 'bob', 'dealer_admin', '{"req": "r-2"}');
UPDATE deals SET amount = amount + 1 WHERE tenant_id = '$t' AND customer = 'c2';
DELETE FROM deals WHERE tenant_id = '$t' AND customer = 'c3';
SELECT autora.log_event('export', 'deal', '1', '{"rows": 2}');
COMMIT;
SELECT autora.seal();
BEGIN;
SELECT autora.set_context_trusted('$t', 'carol', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('$t', 'c4', 400);
COMMIT;
SELECT autora.seal();
};
	}
	$node->safe_psql($db, $sql);
	return;
}

# ids of a tenant's entries in id order
sub entry_ids
{
	my ($db, $tenant) = @_;
	return split /\n/,
	  $node->safe_psql($db,
		"SELECT id FROM autora.ledger WHERE tenant_id = '$tenant' ORDER BY id");
}

sub block_first_entry
{
	my ($db, $tenant, $block_no) = @_;
	return $node->safe_psql($db,
		"SELECT first_entry FROM autora.ledger_blocks WHERE tenant_id = '$tenant' AND block_no = $block_no"
	);
}

# verify($db, $tenant) -> (ok, first_bad_entry, detail)
sub verify
{
	my ($db, $tenant) = @_;
	my $row = $node->safe_psql($db,
		"SELECT CASE WHEN ok THEN 't' WHEN NOT ok THEN 'f' ELSE 'null' END || '|' || coalesce(first_bad_entry::text, '') || '|' || coalesce(detail, '')"
		  . " FROM autora.verify('$tenant')");
	return split /\|/, $row, 3;
}

# ---------------------------------------------------------------------------
# Build and seal every case.
# ---------------------------------------------------------------------------
my @cases = qw(edit deleted merkle prevhash blockgone forged horizon swapped rehashed reordered
  duplicate farforged farduplicate sparse nullblock nulllast nullid crosslist columns blockcols
  longtenant);
my @column_tenants = map { sprintf('col%02d', $_) } 1 .. 32;
my @block_tenants = map { sprintf('blk%02d', $_) } 1 .. 20;
my $long_tenant = 'L' x 127;    # the longest tenant id
for my $db (@cases)
{
	my @tenants =
	    $db eq 'columns' ? @column_tenants
	  : $db eq 'blockcols' ? @block_tenants
	  : $db eq 'longtenant' ? ('101', '102', $long_tenant)
	  : ('101', '102');
	setup_db($node, $db, tenants => \@tenants);
	$node->safe_psql($db, $hash_sql);
	populate($db, @tenants);
}
# sparse: a fourth block per tenant, its entry's id a billion past the others
# (as after a restore that moved the sequence on): verify finds the entries
# of blocks by searching, not through a table indexed by id
$node->safe_psql('sparse', q{
SELECT setval('autora.ledger_id_seq', (SELECT max(id) FROM autora.ledger) + 1000000000);
BEGIN;
SELECT autora.set_context_trusted('101', 'dave', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('101', 'c5', 500);
COMMIT;
BEGIN;
SELECT autora.set_context_trusted('102', 'dave', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('102', 'c5', 500);
COMMIT;
SELECT autora.seal();
});
is($node->safe_psql('sparse',
		"SELECT count(*) FROM autora.ledger_blocks WHERE block_no = 4 AND last_entry > 1000000000"),
	'2', 'sparse: each tenant has a fourth block of a far-away id (precondition)');

# Ids shared across chains, without touching any file: the id sequence set
# back (setval, as a superuser may) so that new entries take ids that
# entries of another chain already have.  Ledger ids are unique ledger-wide:
# every chain holding one of them fails at that id, in verify() and in
# verify(tenant).  (verify(tenant) compares its own pending entries with
# other chains' entries once they are sealed.)
# reuse: an entry of 102 takes the id of 101's first entry; both sealed.
setup_db($node, 'reuse', tenants => [ '101', '102' ]);
populate('reuse', '101', '102');
my $reused = (entry_ids('reuse', '101'))[0];
$node->safe_psql('reuse', qq{
SELECT setval('autora.ledger_id_seq', $reused, false);
BEGIN;
SELECT autora.set_context_trusted('102', 'erin', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('102', 'c6', 600);
COMMIT;
SELECT autora.seal();
});
is( $node->safe_psql('reuse',
		"SELECT string_agg(DISTINCT b.tenant_id, ',') FROM autora.ledger_blocks b WHERE $reused = ANY (b.entry_ids)"),
	'101,102',
	'reuse: entries of 101 and 102 share an id, each sealed in its own chain (precondition)');
# reusepending: the same, the entry of 102 not sealed yet; and an entry of
# the platform chain and one of 101, both pending, sharing a fresh id
setup_db($node, 'reusepending', tenants => [ '101', '102' ]);
populate('reusepending', '101', '102');
my $reused_sealed = (entry_ids('reusepending', '101'))[0];
my $reused_fresh = $node->safe_psql('reusepending', 'SELECT max(id) + 1000 FROM autora.ledger');
$node->safe_psql('reusepending', qq{
SELECT setval('autora.ledger_id_seq', $reused_sealed, false);
BEGIN;
SELECT autora.set_context_trusted('102', 'erin', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('102', 'c6', 600);
COMMIT;
SELECT setval('autora.ledger_id_seq', $reused_fresh, false);
BEGIN;
SELECT autora.set_context_trusted(NULL, 'ops', 'platform_owner');
SELECT autora.log_event('audit-export');
COMMIT;
SELECT setval('autora.ledger_id_seq', $reused_fresh, false);
BEGIN;
SELECT autora.set_context_trusted('101', 'erin', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('101', 'c6', 600);
COMMIT;
});
is( $node->safe_psql('reusepending',
		"SELECT string_agg(coalesce(tenant_id, 'platform'), ',' ORDER BY id, tenant_id) FROM autora.ledger WHERE id IN ($reused_sealed, $reused_fresh)")
	  . ' '
	  . $node->safe_psql('reusepending',
		"SELECT string_agg(tenant_id, ',') FROM autora.ledger_blocks WHERE entry_ids && ARRAY[$reused_sealed, $reused_fresh]::bigint[]"),
	'101,102,101,platform 101',
	'reusepending: two ids each shared by two chains, only the first entry of the four sealed (precondition)');
for my $case (
	[ 'reuse', '101', $reused, 1 ],
	[ 'reuse', '102', $reused, 1 ],
	[ 'reusepending', '101', $reused_sealed, 1 ],
	[ 'reusepending', '102', $reused_sealed, 0 ])
{
	my ($db, $tenant, $id, $alone) = @$case;
	my $all = $node->safe_psql($db,
		"SELECT ok || '|' || first_bad_entry || '|' || detail FROM autora.verify() WHERE tenant_id = '$tenant'");
	like($all, qr/^false\|$id\|entry id $id is also the id of another chain's entry$/,
		"$db: verify() fails chain $tenant at the shared id $id");
	next unless $alone;
	my ($ok, $bad, $detail) = verify($db, $tenant);
	is("$ok|$bad|$detail", "f|$id|entry id $id is also the id of another chain's entry",
		"$db: verify('$tenant') fails at the shared id $id");
}
is( $node->safe_psql('reusepending',
		"SELECT ok || '|' || first_bad_entry FROM autora.verify() WHERE tenant_id IS NULL"),
	"false|$reused_fresh",
	'reusepending: the platform chain fails at the id its pending entry shares with a pending entry of 101');
is( $node->safe_psql('reuse', 'SELECT ok FROM autora.verify() WHERE tenant_id IS NULL'),
	't', 'reuse: the platform chain, which shares no id, still verifies');

for my $db (@cases)
{
	ok( poll($node, $db,
			'SELECT count(*) FILTER (WHERE ok IS NOT TRUE OR entries <> sealed) FROM autora.verify()',
			'0', 20),
		"$db: every chain verifies before tampering");
}
is($node->safe_psql('edit',
		"SELECT string_agg(block_no::text || ':' || entry_count, ',' ORDER BY block_no) FROM autora.ledger_blocks WHERE tenant_id = '101'"),
	'1:3,2:3,3:1', 'edit: tenant 101 has blocks [3], [3], [1]');
is( $node->safe_psql('rehashed',
		'SELECT count(*) FROM autora.ledger l WHERE public.t_entry_hash(l) IS DISTINCT FROM l.hash'),
	'0',
	'the SQL rendering of the entry encoding reproduces every stored hash (precondition)');

# Targets, chosen while everything is intact.
my %target;
{
	my @e = entry_ids('edit', '101');
	$target{edit} = $e[3];    # the UPDATE entry, first of block 2
	is($node->safe_psql('edit', "SELECT op FROM autora.ledger WHERE id = $e[3]"),
		'UPDATE', 'edit: target is the UPDATE entry');
}
$target{deleted} = (entry_ids('deleted', '101'))[1];    # middle of block 1
$target{merkle} = block_first_entry('merkle', '101', 2);
$target{prevhash} = block_first_entry('prevhash', '101', 2);
$target{blockgone} = block_first_entry('blockgone', '101', 2);
$target{swapped} = [ (entry_ids('swapped', '101'))[ 0, 2 ] ];
$target{rehashed} = (entry_ids('rehashed', '101'))[4];    # the DELETE entry
$target{reordered} = [ (entry_ids('reordered', '101'))[ 1, 2 ] ];
$target{forged} = $node->safe_psql('forged',
	"SELECT max(id) + 100 FROM autora.ledger");
$target{horizon} = $node->safe_psql('horizon',
	"SELECT max(id) + 100 FROM autora.ledger");
$target{duplicate} = (entry_ids('duplicate', '101'))[1];
$target{sparse} = (entry_ids('sparse', '101'))[3];    # the UPDATE entry, first of block 2
$target{nullblock} = block_first_entry('nullblock', '101', 2);
$target{crosslist} = block_first_entry('crosslist', '101', 1);
$target{nullid} = (entry_ids('nullid', '101'))[1];
$target{nulllast} = block_first_entry('nulllast', '102', 3);
# far beyond the ids in use: verify finds entries by sorting, not by a table
# indexed by id, when ids are this sparse
$target{farforged} = $node->safe_psql('farforged',
	"SELECT max(id) + 1000000000 FROM autora.ledger");
$target{farduplicate} = (entry_ids('farduplicate', '101'))[1];
$target{longtenant} = $node->safe_psql('longtenant', "SELECT max(id) + 100 FROM autora.ledger");
is($node->safe_psql('horizon',
		'SELECT tenant_id FROM autora.ledger_blocks ORDER BY block_id DESC LIMIT 1'),
	'102', 'horizon: the last block sealed belongs to tenant 102');

# Per-column case: tenant colNN gets column NN of its UPDATE entry changed.
my %mutation = (
	id => 'id + 1000000',
	format => 'format + 1',
	tenant_id => "tenant_id || 'x'",
	seq => 'seq + 1000',
	xid => 'xid + 1',
	ts => "ts + interval '1 microsecond'",
	stmt_ts => "stmt_ts + interval '1 microsecond'",
	client_addr => "CASE WHEN client_addr IS NULL THEN '0.0.0.0'::inet ELSE client_addr + 1 END",
	support_session => 'coalesce(support_session + 1, 0)',
	changed => "CASE WHEN changed IS NULL THEN '{}'::text[] ELSE changed || 'x'::text END",
	hash => 'sha256(hash)',
);
my @columns = split /\n/,
  $node->safe_psql('columns',
	"SELECT attname || ':' || atttypid::regtype FROM pg_attribute WHERE attrelid = 'autora.ledger'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
  );
cmp_ok(scalar(@columns), '<=', scalar(@column_tenants),
	'columns case: one tenant per ledger column');
my @column_tampers;
my %column_target;
for my $i (0 .. $#columns)
{
	my ($col, $type) = split /:/, $columns[$i], 2;
	my $tenant = $column_tenants[$i];
	my $expr = $mutation{$col};
	if (!defined $expr && $type eq 'text')
	{
		# NULL must differ from empty: NULL becomes ''
		$expr = "CASE WHEN $col IS NULL THEN '' ELSE $col || 'x' END";
	}
	elsif (!defined $expr && $type eq 'jsonb')
	{
		# SQL NULL must differ from JSON null
		$expr = "CASE WHEN $col IS NULL THEN 'null'::jsonb ELSE $col || '{\"x\": 1}' END";
	}
	ok(defined $expr, "columns case: a change is defined for ledger column $col ($type)")
	  or next;
	my $id = $node->safe_psql('columns',
		"SELECT id FROM autora.ledger WHERE tenant_id = '$tenant' AND op = 'UPDATE'");
	$column_target{$col} = [ $tenant, $id ];
	push @column_tampers, "UPDATE autora.ledger SET $col = $expr WHERE id = $id;";
}
# Block columns: tenant blkNN gets column NN of its block 2 changed.  Not
# here: block_id (a surrogate key) and the seal horizon (seal_xmin, seal_xmax,
# seal_xip), which only the last block's matters for; see the horizon case.
my %block_mutation = (
	tenant_id => "tenant_id || 'x'",
	block_no => 'block_no + 100',
	sealed_at => "sealed_at + interval '1 microsecond'",
	entry_count => 'entry_count + 1',
	first_entry => 'first_entry + 1',
	last_entry => 'last_entry + 1',
	entry_ids => 'entry_ids[2:2] || entry_ids[1:1] || entry_ids[3:]',
	entry_hashes => 'sha256(substr(entry_hashes, 1, 32)) || substr(entry_hashes, 33)',
	merkle_root => 'sha256(merkle_root)',
	prev_hash => 'sha256(prev_hash)',
	block_hash => 'sha256(block_hash)',
	format => 'format + 1',
);
my %block_skip = map { $_ => 1 } qw(block_id seal_xmin seal_xmax seal_xip);
my @block_columns = split /\n/,
  $node->safe_psql('blockcols',
	"SELECT attname FROM pg_attribute WHERE attrelid = 'autora.ledger_blocks'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
  );
my @block_tampers;
my %block_target;
{
	my $i = 0;
	for my $col (@block_columns)
	{
		next if $block_skip{$col};
		my $tenant = $block_tenants[ $i++ ];
		ok(defined $block_mutation{$col} && defined $tenant,
			"blockcols: a change is defined for ledger_blocks column $col")
		  or next;
		is( $node->safe_psql('blockcols',
				"SELECT entry_count FROM autora.ledger_blocks WHERE tenant_id = '$tenant' AND block_no = 2"),
			'3', "blockcols: block 2 of $tenant holds three entries");
		$block_target{$col} = [ $tenant, block_first_entry('blockcols', $tenant, 2) ];
		push @block_tampers,
		  "UPDATE autora.ledger_blocks SET $col = $block_mutation{$col} WHERE tenant_id = '$tenant' AND block_no = 2;";
	}
}

note 'column values of one UPDATE entry: '
  . $node->safe_psql('columns',
	"SELECT row_to_json(l) FROM autora.ledger l WHERE tenant_id = 'col01' AND op = 'UPDATE'");

# ---------------------------------------------------------------------------
# Restart without the library and tamper as superuser.
# ---------------------------------------------------------------------------
$node->stop('immediate');
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "''");
$node->start;

# SQL that adds a copy of tenant 101's first INSERT entry under id $id,
# with a hash consistent with its fields
sub forge_copy
{
	my ($id) = @_;
	return (
		qq{INSERT INTO autora.ledger
		   SELECT * FROM jsonb_populate_record(NULL::autora.ledger,
		     (SELECT to_jsonb(l) || jsonb_build_object('id', $id)
		        FROM autora.ledger l WHERE tenant_id = '101' AND op = 'INSERT' ORDER BY id LIMIT 1))},
		"UPDATE autora.ledger l SET hash = public.t_entry_hash(l) WHERE id = $id");
}

sub copy_entry
{
	my ($id) = @_;
	return "INSERT INTO autora.ledger SELECT * FROM autora.ledger WHERE id = $id";
}

my %tamper = (
	edit => [
		"UPDATE autora.ledger SET after = jsonb_set(after, '{amount}', '999'), actor_id = 'mallory' WHERE id = $target{edit}"
	],
	deleted => ["DELETE FROM autora.ledger WHERE id = $target{deleted}"],
	merkle => [
		"UPDATE autora.ledger_blocks SET merkle_root = sha256(merkle_root) WHERE tenant_id = '101' AND block_no = 2"
	],
	prevhash => [
		"UPDATE autora.ledger_blocks SET prev_hash = sha256(prev_hash) WHERE tenant_id = '101' AND block_no = 2"
	],
	blockgone => ["DELETE FROM autora.ledger_blocks WHERE tenant_id = '101' AND block_no = 2"],
	# a copy of a sealed entry under a new id, with a self-consistent hash
	forged => [ forge_copy($target{forged}) ],
	# an exact copy of a sealed entry, its id included
	duplicate => [ copy_entry($target{duplicate}) ],
	# tenant 101's first block made to list (and record the hash of) an entry
	# that tenant 102's chain seals: 101's chain fails, 102's must not
	crosslist => [
		qq{UPDATE autora.ledger_blocks b
		      SET entry_ids = b.entry_ids || e.id, entry_count = b.entry_count + 1,
		          last_entry = e.id, entry_hashes = b.entry_hashes || e.hash
		     FROM (SELECT id, hash FROM autora.ledger WHERE tenant_id = '102' ORDER BY id LIMIT 1) e
		    WHERE b.tenant_id = '101' AND b.block_no = 1}
	],
	# fields of a block set to NULL, its NOT NULL constraints dropped first
	nullblock => [
		# (event trigger off: it would load the library, and its guards)
		'ALTER EVENT TRIGGER autora_protect_new_tables DISABLE',
		'ALTER TABLE autora.ledger_blocks ALTER entry_ids DROP NOT NULL, ALTER seal_xip DROP NOT NULL',
		"UPDATE autora.ledger_blocks SET entry_ids = NULL, seal_xip = NULL WHERE tenant_id = '101' AND block_no = 2"
	],
	nullid => [
		'ALTER EVENT TRIGGER autora_protect_new_tables DISABLE',
		'ALTER TABLE autora.ledger ALTER id DROP NOT NULL',
		"UPDATE autora.ledger SET id = NULL WHERE id = $target{nullid}"
	],
	# a NULL in the last seal round's horizon (no constraint to drop for that)
	nulllast => [
		"UPDATE autora.ledger_blocks SET seal_xip = '{NULL}' WHERE block_id = (SELECT max(block_id) FROM autora.ledger_blocks)"
	],
	sparse => [
		"UPDATE autora.ledger SET after = jsonb_set(after, '{amount}', '999') WHERE id = $target{sparse}"
	],
	farforged => [ forge_copy($target{farforged}) ],
	# copies of an entry of the 127-byte tenant, with consistent hashes,
	# under an unregistered longer id that begins with it, and under ''
	longtenant => [
		map {
			my ($id, $tenant) = @$_;
			(   qq{INSERT INTO autora.ledger
			   SELECT * FROM jsonb_populate_record(NULL::autora.ledger,
			     (SELECT to_jsonb(l) || jsonb_build_object('id', $id, 'tenant_id', '$tenant')
			        FROM autora.ledger l WHERE tenant_id = '$long_tenant' AND op = 'INSERT' ORDER BY id LIMIT 1))},
				"UPDATE autora.ledger l SET hash = public.t_entry_hash(l) WHERE id = $id")
		} ([ $target{longtenant}, "${long_tenant}x" ], [ $target{longtenant} + 1, '' ])
	],
	farduplicate => [
		copy_entry($target{farduplicate}),
		forge_copy($node->safe_psql('farduplicate', "SELECT max(id) + 1000000000 FROM autora.ledger"))
	],
	swapped => [
		qq{UPDATE autora.ledger l SET hash = o.hash
		     FROM autora.ledger o
		    WHERE (l.id, o.id) IN (($target{swapped}[0], $target{swapped}[1]),
		                           ($target{swapped}[1], $target{swapped}[0]))}
	],
	# the entry is changed and its own hash recomputed: only the block's
	# record of the hash can tell
	rehashed => [
		"UPDATE autora.ledger SET before = jsonb_set(before, '{amount}', '1'), actor_id = 'mallory' WHERE id = $target{rehashed}",
		"UPDATE autora.ledger l SET hash = public.t_entry_hash(l) WHERE id = $target{rehashed}"
	],
	reordered => [
		"UPDATE autora.ledger SET id = -1 WHERE id = $target{reordered}[0]",
		"UPDATE autora.ledger SET id = $target{reordered}[0] WHERE id = $target{reordered}[1]",
		"UPDATE autora.ledger SET id = $target{reordered}[1] WHERE id = -1"
	],
	columns => \@column_tampers,
	blockcols => \@block_tampers,
	# a forged copy under an old transaction id of its own (one that wrote
	# no entry), and the last seal round's horizon (a block of another
	# tenant) edited to say that transaction was still running
	horizon => [
		qq{INSERT INTO autora.ledger
		   SELECT * FROM jsonb_populate_record(NULL::autora.ledger,
		     (SELECT to_jsonb(l) || jsonb_build_object('id', $target{horizon},
		                                               'xid', (SELECT min(xid) - 1 FROM autora.ledger))
		        FROM autora.ledger l WHERE tenant_id = '101' AND op = 'INSERT' ORDER BY id LIMIT 1))},
		"UPDATE autora.ledger l SET hash = public.t_entry_hash(l) WHERE id = $target{horizon}",
		qq{UPDATE autora.ledger_blocks b
		      SET seal_xmin = least(b.seal_xmin, f.xid), seal_xip = b.seal_xip || f.xid
		     FROM autora.ledger f
		    WHERE f.id = $target{horizon}
		      AND b.block_id = (SELECT max(block_id) FROM autora.ledger_blocks)}
	],
);
# DDL in a database with the extension works while the library is not loaded
# (autora's event trigger must not depend on the library's settings)
{
	my ($rc, $err) = sql_error($node, 'edit',
		'CREATE TABLE t_plain (x int); ALTER TABLE t_plain ADD COLUMN y int; DROP TABLE t_plain');
	is($rc, 0, 'CREATE and ALTER TABLE work without the library') or diag($err);
}
for my $db (@cases)
{
	my ($rc, $err) = sql_error($node, $db,
		join("\n", 'BEGIN;', map({ "$_;" } @{ $tamper{$db} }), 'COMMIT;'));
	is($rc, 0, "$db: tampering as superuser works without the library")
	  or diag($err);
}
is( $node->safe_psql('rehashed',
		"SELECT count(*) FROM autora.ledger l WHERE id = $target{rehashed} AND l.hash = public.t_entry_hash(l) AND actor_id = 'mallory'"),
	'1',
	'rehashed: the edited entry carries a hash consistent with its new fields');

# ---------------------------------------------------------------------------
# Restart with the library: verify names each tampering.
# ---------------------------------------------------------------------------
$node->stop;
$node->adjust_conf('postgresql.conf', 'shared_preload_libraries', "'autora_audit'");
$node->start;

is( $node->safe_psql('edit',
		"SELECT actor_id || ' ' || (after->>'amount') FROM autora.ledger WHERE id = $target{edit}"),
	'mallory 999', 'edit: the tampered values are in place');

sub detected
{
	my ($db, $want, $detail_re, $what) = @_;
	my ($ok, $bad, $detail) = verify($db, '101');
	is($ok, 'f', "$db: verify('101') ok = false ($what)");
	is($bad, $want, "$db: first_bad_entry = $want")
	  or diag("detail: $detail");
	like($detail, $detail_re, "$db: detail explains it") if $detail_re;
	my ($ok2) = verify($db, '102');
	is($ok2, 't', "$db: tenant 102 still verifies");
	return;
}

detected('edit', $target{edit}, qr/\b$target{edit}\b/,
	'after/actor_id of a sealed entry changed');
is( $node->safe_psql('edit',
		"SELECT ok FROM autora.verify() WHERE tenant_id IS NULL"),
	't', 'edit: the platform chain still verifies');

detected('deleted', $target{deleted}, qr/\b$target{deleted}\b.*missing|missing.*\b$target{deleted}\b/,
	'a sealed entry deleted');
detected('merkle', $target{merkle}, qr/block 2\b/, "block 2's merkle_root changed");
detected('prevhash', $target{prevhash}, qr/block 2\b/, "block 2's prev_hash changed");
# The entries of the removed block are the first that no longer verify.
detected('blockgone', $target{blockgone}, qr/block 2\b/, 'block 2 of 3 deleted');
detected('forged', $target{forged}, qr/\b$target{forged}\b/,
	'an entry inserted after sealing, with a consistent hash');
detected('duplicate', $target{duplicate}, qr/entry id $target{duplicate} appears more than once/,
	'a sealed entry copied, id and all');
detected('farforged', $target{farforged}, qr/\b$target{farforged}\b/,
	'an entry inserted after sealing under a far-away id');
detected('farduplicate', $target{farduplicate},
	qr/entry id $target{farduplicate} appears more than once/,
	'a sealed entry copied, id and all, and another under a far-away id');
# an entry without an id has no id to name: first_bad_entry is 0
detected('nullid', 0, qr/^an entry has no id/, 'the id of a sealed entry set to NULL');
detected('crosslist', $target{crosslist}, qr/block 1\b/,
	"tenant 101's block 1 also lists an entry of tenant 102");
is($node->safe_psql('crosslist', "SELECT ok FROM autora.verify() WHERE tenant_id = '102'"),
	't', 'crosslist: tenant 102 verifies when every chain is checked together');
detected('nullblock', $target{nullblock}, qr/block 2 is unreadable: NULL fields/,
	'NULLs in the entry list and horizon of block 2');
{
	my ($ok, $bad, $detail) = verify('nulllast', '102');
	ok($ok eq 'f' && $bad eq $target{nulllast} && $detail =~ /block 3 is unreadable/,
		'nulllast: a NULL in the last block\'s horizon is reported at its first entry')
	  or diag("verify('102'): ok=$ok first_bad=$bad detail=$detail");
	($ok) = verify('nulllast', '101');
	is($ok, 't', 'nulllast: tenant 101, all of whose entries are sealed, still verifies');
	my ($rc, $err) = sql_error($node, 'nulllast', 'SELECT autora.seal()');
	like($err, qr/XX001.*last ledger block .* was altered/s,
		'nulllast: the sealer refuses to seal on top of it as an altered block (XX001)');
}
# Forged entries of tenant ids that no registered tenant has are chains of
# their own: one that begins with the 127-byte tenant's id, and the empty id,
# are neither that tenant's chain nor the platform chain
is( $node->safe_psql('longtenant',
		"SELECT string_agg(coalesce(length(tenant_id)::text, 'platform') || ':' || ok || ':' || coalesce(first_bad_entry - $target{longtenant}, -1), ' ' ORDER BY length(tenant_id), tenant_id)"
		  . " FROM autora.verify() WHERE tenant_id IS NULL OR tenant_id NOT IN ('101', '102')"),
	'0:false:1 127:true:-1 128:false:0 platform:true:-1',
	'longtenant: the forged entries fail chains of their own; the 127-byte tenant and the platform chain verify');
is(join('|', verify('longtenant', $long_tenant)), "t||chain verified: 7 entries in 3 blocks",
	'longtenant: verify of the 127-byte tenant');

detected('sparse', $target{sparse}, qr/\b$target{sparse}\b/,
	'a sealed entry changed, in chains whose ids lie far apart');
detected('swapped', $target{swapped}[0], qr/\b$target{swapped}[0]\b/,
	'hashes of two entries swapped');
detected('rehashed', $target{rehashed}, qr/\b$target{rehashed}\b/,
	'entry edited and its hash recomputed');
detected('reordered', $target{reordered}[0], qr/\b$target{reordered}[0]\b/,
	'ids of two entries swapped');

# A forged entry made to look pending by editing the last seal horizon: the
# horizon is what tells pending from forged, so it must not be editable
# unnoticed, and the sealer must not turn the forgery into a sealed entry.
{
	my ($ok, $bad, $detail) = verify('horizon', '101');
	is($ok, 'f', "horizon: verify('101') ok = false (forged entry, horizon edited)")
	  or diag("first_bad=$bad detail=$detail");
	my ($rc, $err) = sql_error($node, 'horizon', 'SELECT autora.seal()');
	like($err, qr/XX001.*last ledger block .* was altered/s,
		'horizon: the sealer refuses to seal on top of the altered block (XX001)');
	($ok, $bad, $detail) = verify('horizon', '101');
	is($ok, 'f', "horizon: verify('101') still ok = false after a seal round")
	  or diag("first_bad=$bad detail=$detail");
	note "horizon after a seal round: first_bad=$bad detail=$detail";
}

for my $col (sort keys %block_target)
{
	my ($tenant, $id) = @{ $block_target{$col} };
	my ($ok, $bad, $detail) = verify('blockcols', $tenant);
	ok($ok eq 'f' && $bad eq $id,
		"blockcols: a change of ledger_blocks.$col in block 2 is detected at its first entry $id")
	  or diag("verify('$tenant'): ok=$ok first_bad=$bad detail=$detail");
}

for my $col (map { (split /:/)[0] } @columns)
{
	next unless $column_target{$col};
	my ($tenant, $id) = @{ $column_target{$col} };
	my ($ok, $bad, $detail) = verify('columns', $tenant);
	ok($ok eq 'f' && $bad eq $id,
		"columns: a change of ledger column $col is detected at entry $id")
	  or diag("verify('$tenant'): ok=$ok first_bad=$bad detail=$detail");
}

# ---------------------------------------------------------------------------
# With the library loaded the same statements are refused, superuser included.
# ---------------------------------------------------------------------------
for my $stmt (
	"UPDATE autora.ledger SET actor_id = 'mallory2' WHERE id = $target{edit}",
	"DELETE FROM autora.ledger WHERE id = $target{edit}",
	"INSERT INTO autora.ledger SELECT * FROM autora.ledger WHERE id = $target{edit}",
	"UPDATE autora.ledger_blocks SET prev_hash = sha256(prev_hash) WHERE block_no = 1",
	"DELETE FROM autora.ledger_blocks")
{
	my ($rc, $err) = sql_error($node, 'edit', $stmt);
	ok($rc != 0 && $err =~ /ERROR:\s+42501:/,
		"with the library: refused with 42501: $stmt")
	  or diag("rc=$rc stderr=$err");
}
is( $node->safe_psql('edit',
		"SELECT actor_id FROM autora.ledger WHERE id = $target{edit}"),
	'mallory', 'the refused UPDATE changed nothing');

# The sealer, running again, does not seal the forged entry.
$node->safe_psql('forged', 'SELECT autora.seal()');
is( $node->safe_psql('forged',
		"SELECT count(*) FROM autora.ledger_blocks WHERE $target{forged} = ANY (entry_ids)"),
	'0', 'forged: autora.seal() does not seal the forged entry');
my ($fok, $fbad) = verify('forged', '101');
is("$fok $fbad", "f $target{forged}", 'forged: still reported after another seal round');

# verify runs no SQL of its own (it scans the tables directly): with
# auto_explain showing nested statements, only the caller's statement runs
{
	my ($out, $err) = ('', '');
	$node->psql('edit',
		"LOAD 'auto_explain';\nSET auto_explain.log_min_duration = 0;\n"
		  . "SET auto_explain.log_nested_statements = on;\nSET auto_explain.log_level = notice;\n"
		  . "SELECT count(*) FROM autora.verify();\nSELECT count(*) FROM autora.verify('101');",
		stdout => \$out,
		stderr => \$err);
	my @statements = $err =~ /Query Text: ([^\n]*)/g;
	is_deeply(
		\@statements,
		[ 'SELECT count(*) FROM autora.verify();', "SELECT count(*) FROM autora.verify('101');" ],
		'verify() and verify(tenant) run no SQL statement of their own')
	  or diag($err);
}

log_clean($node, 'tamper');
$node->stop('immediate');
note 'total ' . elapsed($t_start) . ' s';
done_testing();
