# 017_format_checker.pl: docs/ledger-format.md is the contract an auditor
# checks a ledger with, without the server.  Its Python checker, taken from
# the document itself, recomputes every entry hash, Merkle root, block hash
# and chain link of a ledger written here through the real capture path
# (tenant and platform tables, partitions, PII, events, TRUNCATE, client
# addresses, non-ASCII text), from COPY exports made in another TimeZone, and
# opens every PII commitment with the vault's salts.  Then it must notice an
# edited entry, an edited clear value and a broken chain link in the exports.
use strict;
use warnings;

use File::Copy qw(copy);
use IPC::Run qw(run);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use AutoraTest;

my $src = $ENV{AUTORA_SRC} // '..';
my $doc = slurp_file("$src/docs/ledger-format.md");
my ($script) = $doc =~ /^## 9\. Worked example.*?^```python\n(.*?)^```/ms;
my $python = (grep { -x $_ } qw(/usr/bin/python3 /bin/python3))[0];
plan skip_all => 'python3 is not installed (make deps installs it)' unless $python;
ok(defined $script, 'the worked example of docs/ledger-format.md holds a Python checker');

my $dir = PostgreSQL::Test::Utils::tempdir;
chmod 0777, $dir;
open my $fh, '>', "$dir/autora_check.py" or die $!;
print $fh $script;
close $fh;

my $node = autora_node('checker');
$node->safe_psql('postgres', 'CREATE DATABASE chk');
$node->safe_psql('chk', q{
	CREATE EXTENSION autora_audit;
	SELECT autora.add_tenant('store-a', 'g1', 'Store A');
	SELECT autora.add_tenant('Zoë ☃', 'g1', 'Store with a non-ASCII id');
	CREATE TABLE cars (id int PRIMARY KEY, tenant_id text, vin text, price numeric(10,2),
					   owner_email text, phone text, seen timestamptz, doc jsonb, touched date);
	SELECT autora.protect('cars', pii_columns => '{owner_email,phone}', exclude_columns => '{touched}');
	CREATE TABLE jobs (id int, tenant_id text NOT NULL, kind text, PRIMARY KEY (tenant_id, id))
		PARTITION BY LIST (tenant_id);
	CREATE TABLE jobs_a PARTITION OF jobs FOR VALUES IN ('store-a');
	CREATE TABLE jobs_z PARTITION OF jobs FOR VALUES IN ('Zoë ☃');
	SELECT autora.protect('jobs');
	CREATE TABLE price_book (sku text PRIMARY KEY, price numeric(10,2));
	SELECT autora.protect('price_book', platform => true);
});
$node->safe_psql('chk', q{
	BEGIN;
	SELECT autora.set_context_trusted('store-a', 'u-ann', 'sales',
		'{"ip": "203.0.113.24", "ua": "Desk/1.0 \"quoted\"", "endpoint": "/api/cars", "method": "POST", "req": "r-1"}');
	INSERT INTO cars (id, vin, price, owner_email, phone, seen, doc)
		 VALUES (1, 'VIN1', 19999.90, 'ann@example.com', '+1 555 0100', '2026-03-29 01:30:00+01',
				 '{"a": [1, 2.50, "tab\there"], "é": null}'),
				(2, 'VIN2', 5, NULL, NULL, NULL, NULL);
	UPDATE cars SET price = 18999.90, touched = now() WHERE id = 1;
	UPDATE cars SET owner_email = 'ann@example.org' WHERE id = 1;
	DELETE FROM cars WHERE id = 2;
	INSERT INTO jobs (id, tenant_id, kind) VALUES (1, 'store-a', 'oil change');
	SELECT autora.log_event('deal.price_override', 'deal', '5', '{"new_price": 30450.00, "reason": "competitor"}');
	COMMIT;
	BEGIN;
	SELECT autora.set_context_trusted('Zoë ☃', 'u-zoë', 'dealer_admin', '{"ip": "2001:db8::7"}');
	INSERT INTO cars (id, vin, owner_email) VALUES (3, 'VIN3 ☃', 'zoë@example.com');
	INSERT INTO jobs (id, tenant_id, kind) VALUES (1, 'Zoë ☃', 'réglage');
	UPDATE price_book SET price = 1;
	INSERT INTO price_book VALUES ('OIL', 39.90);
	COMMIT;
	BEGIN;
	SET LOCAL autora.allow_truncate = on;
	SELECT autora.set_context_trusted(NULL, 'u-ops', 'platform_owner');
	TRUNCATE jobs;
	COMMIT;
});
$node->safe_psql('chk', 'SELECT autora.seal()');
ok( poll($node, 'chk', q{
		SELECT count(*) FROM autora.ledger l
		 WHERE NOT EXISTS (SELECT FROM autora.ledger_blocks b WHERE l.id = ANY (b.entry_ids))}, '0', 30),
	'every entry is sealed');
is($node->safe_psql('chk', 'SELECT bool_and(ok) FROM autora.verify()'), 't', 'verify() agrees: ok');

# the exports of section 8, made in a session whose TimeZone is not UTC
$node->safe_psql('chk', qq{
	SET TimeZone = 'America/St_Johns';
	COPY autora.ledger TO '$dir/ledger.copy' WITH (FORMAT text, HEADER);
	COPY autora.ledger_blocks TO '$dir/blocks.copy' WITH (FORMAT text, HEADER);
	COPY autora.pii_vault TO '$dir/vault.copy' WITH (FORMAT text, HEADER);});
my ($entries, $blocks, $vault_rows) = split /\|/, $node->safe_psql('chk', q{
	SELECT (SELECT count(*) FROM autora.ledger), (SELECT count(*) FROM autora.ledger_blocks),
		   (SELECT count(*) FROM autora.pii_vault)});
cmp_ok($vault_rows, '>=', 3, 'the ledger has PII vault rows to open');

# check(ledger, blocks, vault): (exit code, output)
sub check
{
	my @files = @_;
	my ($out, $err);
	run([ $python, "$dir/autora_check.py", @files ], '>', \$out, '2>', \$err);
	return ($? >> 8, ($out // '') . ($err // ''));
}

my ($rc, $out) = check("$dir/ledger.copy", "$dir/blocks.copy", "$dir/vault.copy");
is($rc, 0, 'the checker of the document accepts the real ledger') or diag($out);
is(scalar(() = $out =~ /^entry \d+: ok$/mg), $entries, "every entry's hash is recomputed ($entries)");
is(scalar(() = $out =~ /^chain .* block \d+: ok$/mg), $blocks, "every block and chain link checks out ($blocks)");
is(scalar(() = $out =~ /^vault row of entry \d+: ok$/mg), $vault_rows,
	"every PII commitment opens with its vault row ($vault_rows rows)");
like($out, qr/^chain Zoë ☃ block 1: ok$/m, 'the non-ASCII store\'s chain is checked');
like($out, qr/^chain \(platform\) block \d+: ok$/m, 'the platform chain is checked');

# tampering in the export is noticed
sub tampered
{
	my ($file, $edit) = @_;
	my $text = slurp_file("$dir/$file");
	my $new = $edit->($text);
	die "the edit of $file changed nothing" if $new eq $text;
	open my $out, '>', "$dir/bad.$file" or die $!;
	print $out $new;
	close $out;
	return "$dir/bad.$file";
}

my $bad = tampered('ledger.copy', sub { my $t = shift; $t =~ s/"price": 18999\.90/"price": 1899.90/; $t });
($rc, $out) = check($bad, "$dir/blocks.copy");
is($rc, 1, 'an edited entry fails the check');
like($out, qr/^entry \d+: HASH MISMATCH$/m, 'and the checker names the entry');

$bad = tampered('vault.copy', sub { my $t = shift; $t =~ s/ann\@example\.org/bob\@example.org/; $t });
($rc, $out) = check("$dir/ledger.copy", "$dir/blocks.copy", $bad);
is($rc, 1, 'an edited clear PII value fails the check');
like($out, qr/^vault row of entry \d+: DOES NOT OPEN$/m, 'and the checker names its entry');

$bad = tampered('blocks.copy', sub {
	my $t = shift;
	# the platform chain's first block: its prev_hash is no longer zeros
	$t =~ s/\\\\x0{64}/'\\\\x' . ('1' x 64)/e;
	$t });
($rc, $out) = check("$dir/ledger.copy", $bad);
is($rc, 1, 'a broken chain link fails the check');
like($out, qr/block 1: BAD .*prev_hash/m, 'and the checker names the block');

log_clean($node, 'format checker');
$node->stop;
done_testing();
