# 015_restore.pl: pg_dump / pg_restore with the documented procedure
# (README, "Restore"): a superuser restores with autora.restore_mode = on,
# then runs autora.restore_finish().  Into a fresh database of the same
# cluster and into a fresh cluster whose transaction counter is far behind
# the source's, in one piece, in two parts (ledger first, blocks later) and
# with pg_restore -j:
# - the restored chains verify, with the same chain heads as the source;
# - entries that were pending at dump time, and new ones, are sealed;
# - no false tamper alarm;
# and a plain pg_restore (no restore_mode) fails with hints naming the
# procedure, and its empty ledger is not reported as a verified chain.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use AutoraTest;

my $t_start = time();

# The source's transaction counter runs well ahead of a fresh cluster's.
my $src = autora_node('rsrc', seal_interval => '1h');
$src->safe_psql('postgres', join('', map { "SELECT txid_current();\n" } 1 .. 3000));
setup_db($src, 'src', tenants => [ '101', '102' ]);
$src->safe_psql('src', q{
	CREATE TABLE customers (id int PRIMARY KEY, tenant_id text NOT NULL, name text, email text);
	SELECT autora.protect('customers', pii_columns => '{email}');});

sub write_rows
{
	my ($node, $db, $tenant, $from, $to) = @_;
	my $sql = '';
	for my $i ($from .. $to)
	{
		$sql .= qq{BEGIN;
SELECT autora.set_context_trusted('$tenant', 'u$tenant', 'sales');
INSERT INTO deals (tenant_id, customer, amount) VALUES ('$tenant', 'c$i', $i);
INSERT INTO customers VALUES ($i, '$tenant', 'n$i', 'e$i\@x.example');
COMMIT;
};
	}
	$node->safe_psql($db, $sql);
	return;
}
write_rows($src, 'src', '101', 1, 5);
write_rows($src, 'src', '102', 6, 9);
$src->safe_psql('src', 'SELECT autora.seal()');
# committed after the last seal round: pending when the dump is taken
write_rows($src, 'src', '101', 10, 12);

my $heads_sql = q{SELECT coalesce(tenant_id, '<platform>') || ':' || head_block || ':' || encode(head_hash, 'hex')
                    FROM autora.chain_status WHERE head_block IS NOT NULL ORDER BY 1};
my $heads = $src->safe_psql('src', $heads_sql);
my $entries = $src->safe_psql('src', 'SELECT count(*) FROM autora.ledger');
my $pending = $src->safe_psql('src', 'SELECT sum(pending) FROM autora.chain_status');
cmp_ok($pending, '>', 0, "the dump holds entries pending seal ($pending)");
my $dump = $src->basedir . '/src.dump';
command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $src->connstr('src') ], 'pg_dump of the source');

my $dst = autora_node('rdst', seal_interval => '200ms');
cmp_ok($dst->safe_psql('postgres', 'SELECT txid_current()'), '<',
	$src->safe_psql('postgres', 'SELECT txid_current()'),
	'the fresh cluster\'s transaction counter is behind the source\'s');

# pg_restore as the documented procedure says; returns (exit code, stderr)
sub restore
{
	my ($node, $db, %opt) = @_;
	my ($out, $err) = ('', '');
	my @cmd = ('pg_restore', '-d', $node->connstr($db), @{ $opt{args} // [] }, $dump);
	local $ENV{PGOPTIONS} = '-c autora.restore_mode=on' unless $opt{plain};
	my $rc = IPC::Run::run(\@cmd, '>', \$out, '2>', \$err) ? 0 : 1;
	return ($rc, $err);
}

my $all_sealed = q{SELECT count(*) FILTER (WHERE ok IS NOT TRUE OR entries <> sealed) FROM autora.verify()};

# checks shared by every honest restore
sub restored_ok
{
	my ($node, $db, $label) = @_;
	is($node->safe_psql($db, q{SELECT count(*) FROM autora.ledger
	                            WHERE event IS DISTINCT FROM 'restore_finished'}), $entries,
		"$label: every entry was loaded");
	is($node->safe_psql($db, q{SELECT count(*) FROM autora.ledger WHERE event = 'restore_finished'}), '1',
		"$label: restore_finish recorded the restore");
	my $report = $node->safe_psql($db, q{SELECT count(*) FILTER (WHERE ok IS FALSE) FROM autora.verify()});
	is($report, '0', "$label: verify raises no alarm right after the restore");
	ok(poll($node, $db, $all_sealed, '0', 10),
		"$label: the entries pending at dump time are sealed, and every chain verifies");
	my @differ;
	for my $head (split /\n/, $heads)
	{
		my ($t, $b, $h) = split /:/, $head;
		my $tenant = $t eq '<platform>' ? 'IS NULL' : "= '$t'";
		push @differ, $head
		  if $node->safe_psql($db, qq{SELECT encode(block_hash, 'hex') FROM autora.ledger_blocks
		                               WHERE tenant_id $tenant AND block_no = $b}) ne $h;
	}
	is(scalar(@differ), 0, "$label: the source's chain heads are in the restored chains, unchanged")
	  or diag("heads that differ:\n" . join("\n", @differ));
	write_rows($node, $db, '102', 100, 102);
	write_rows($node, $db, '101', 103, 103);
	# (the source node seals only on request: its interval is an hour)
	$node->safe_psql($db, 'SELECT autora.seal()') if $node == $src;
	ok(poll($node, $db, $all_sealed, '0', 10), "$label: new entries are sealed and verify");
	return;
}

# --- a fresh database of the same cluster ---------------------------------------
$src->safe_psql('postgres', 'CREATE DATABASE dst1');
my ($rc, $err) = restore($src, 'dst1');
is($rc, 0, 'same cluster: pg_restore with restore_mode succeeds') or diag($err);
is($src->safe_psql('dst1', $all_sealed) ne '0' ? 'waiting' : 'sealed', 'waiting',
	'same cluster: nothing is sealed before restore_finish');
like($src->safe_psql('dst1', 'SELECT detail FROM autora.verify() LIMIT 1'),
	qr/restore_finish/, 'same cluster: verify says the restore is not finished');
$src->safe_psql('dst1', 'SELECT autora.restore_finish()');
restored_ok($src, 'dst1', 'same cluster');

# --- a fresh cluster, behind in transaction ids ------------------------------------
$dst->safe_psql('postgres', 'CREATE DATABASE dst2');
($rc, $err) = restore($dst, 'dst2');
is($rc, 0, 'fresh cluster: pg_restore with restore_mode succeeds') or diag($err);
usleep(600_000);
is($dst->safe_psql('dst2', 'SELECT count(*) FROM autora.ledger_blocks'),
	$src->safe_psql('src', 'SELECT count(*) FROM autora.ledger_blocks'),
	'fresh cluster: the sealer waits for restore_finish');
$dst->safe_psql('dst2', 'SELECT autora.restore_finish()');
restored_ok($dst, 'dst2', 'fresh cluster');

# --- in two parts: a sealer round between ledger and blocks must not reseal ----------
my $list = $dst->basedir . '/list';
command_ok([ 'pg_restore', '-l', '-f', $list, $dump ], 'pg_restore -l');
my @lines = split /\n/, slurp_file($list);
my @blocks = grep { /TABLE DATA autora ledger_blocks/ } @lines;
is(scalar(@blocks), 1, 'the dump has the blocks\' data');
my ($first, $second) = ("$list.1", "$list.2");
append_to_file($first, join("\n", grep { !/TABLE DATA autora ledger_blocks/ } @lines) . "\n");
append_to_file($second, join("\n", @blocks) . "\n");
$dst->safe_psql('postgres', 'CREATE DATABASE dst3');
($rc, $err) = restore($dst, 'dst3', args => [ '-L', $first ]);
is($rc, 0, 'two parts: everything but the blocks') or diag($err);
usleep(1_000_000);
is($dst->safe_psql('dst3', 'SELECT count(*) FROM autora.ledger_blocks'), '0',
	'two parts: no sealer round between the parts');
($rc, $err) = restore($dst, 'dst3', args => [ '-L', $second ]);
is($rc, 0, 'two parts: then the blocks') or diag($err);
$dst->safe_psql('dst3', 'SELECT autora.restore_finish()');
restored_ok($dst, 'dst3', 'two parts');

# --- pg_restore -j -------------------------------------------------------------------
$dst->safe_psql('postgres', 'CREATE DATABASE dst4');
($rc, $err) = restore($dst, 'dst4', args => [ '-j', '2' ]);
is($rc, 0, 'parallel: pg_restore -j 2 succeeds') or diag($err);
$dst->safe_psql('dst4', 'SELECT autora.restore_finish()');
restored_ok($dst, 'dst4', 'parallel');

# --- a plain pg_restore, without the procedure -------------------------------------------
$dst->safe_psql('postgres', 'CREATE DATABASE plain');
($rc, $err) = restore($dst, 'plain', plain => 1);
isnt($rc, 0, 'plain: pg_restore without restore_mode fails');
like($err, qr/autora\.restore_mode/, 'plain: the errors point to autora.restore_mode');
unlike($err, qr/Entries are added only by changes/, 'plain: no hint points elsewhere');
is($dst->safe_psql('plain', q{SELECT count(*) FROM autora.verify() WHERE ok}), '0',
	'plain: no chain whose entries were not loaded is reported as verified');
like($dst->safe_psql('plain', q{SELECT detail FROM autora.verify() WHERE tenant_id = '101'}),
	qr/no entries/, 'plain: verify says the chain has no entries although its numbers were used');

my ($rc2, $err2) = sql_error($src, 'dst1', 'SELECT autora.restore_finish()');
like($err2, qr/55000/, 'restore_finish without a restore under way: 55000');

# (pg_dump's catalog queries name proleakproof)
log_clean($src, '015 source', allow => [qr/proleakproof/]);
log_clean($dst, '015 fresh cluster', allow => [qr/proleakproof/]);
note 'total ' . elapsed($t_start) . ' s';
done_testing();
