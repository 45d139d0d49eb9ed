# test/t/lib/AutoraTenancy.pm: helpers for the tenancy TAP suites
# (010_pooling, 011_token_fuzz, 012_isolation_sessions).
#
# A node preloading autora_audit, a database with three stores, an
# application role and a protected table; context tokens signed here
# (HS256 with Digest::SHA, EdDSA with the openssl command line); and
# sessions whose statements report their SQLSTATE.
package AutoraTenancy;

use strict;
use warnings;

use Exporter 'import';
use Digest::SHA qw(hmac_sha256);
use File::Temp qw(tempfile);
use JSON::PP;
use MIME::Base64 qw(encode_base64);
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

our @EXPORT = qw(
  tenancy_node tenancy_setup b64url hs256_token eddsa_token jwt_claims
  app_session run_sql sql_state log_has_crash
  $HS_SECRET $HS_KID $ED_KID);

our $HS_SECRET = 'iso-tap-secret-0123456789-abcdefghijklmnop';
our $HS_KID = 'iso-hs';
our $ED_KID = 'iso-ed';

my $json = JSON::PP->new->canonical;

# tenancy_node($name, conf => "..."): started node with autora_audit preloaded.
sub tenancy_node
{
	my ($name, %opt) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'autora_audit'\n"
		  . "autora.seal_interval = '1s'\n"
		  . "log_min_messages = warning\n"
		  . ($opt{conf} // ''));
	$node->start;
	return $node;
}

# Ed25519 key pair in the node's directory: (private key file, public PEM).
sub ed25519_keypair
{
	my ($node, $stem) = @_;
	my $priv = $node->basedir . "/$stem.pem";
	my $pub = $node->basedir . "/$stem.pub.pem";

	system('openssl', 'genpkey', '-algorithm', 'ed25519', '-out', $priv) == 0
	  or die "openssl genpkey failed";
	system('openssl', 'pkey', '-in', $priv, '-pubout', '-out', $pub) == 0
	  or die "openssl pkey -pubout failed";
	return ($priv, slurp_file($pub));
}

# tenancy_setup($node, $db): database $db with the extension, stores iso-a,
# iso-b (group iso-g1) and iso-c (iso-g2), keys iso-hs (HS256) and iso-ed
# (EdDSA), LOGIN role iso_app, table deals owned by iso_owner with rows
# iso-a: 1,2,3  iso-b: 11,12  iso-c: 21.  Returns a hash with the key files.
sub tenancy_setup
{
	my ($node, $db) = @_;
	my ($ed_priv, $ed_pub) = ed25519_keypair($node, 'iso-ed');
	my ($other_priv, $other_pub) = ed25519_keypair($node, 'iso-ed-other');

	$node->safe_psql('postgres', qq{CREATE DATABASE "$db"});
	$node->safe_psql($db, qq{
		CREATE EXTENSION autora_audit;
		SELECT autora.add_key('$HS_KID', 'HS256', '$HS_SECRET');
		SELECT autora.add_key('$ED_KID', 'EdDSA', \$pem\$$ed_pub\$pem\$);
		SELECT autora.add_tenant('iso-a', 'iso-g1', 'Store A');
		SELECT autora.add_tenant('iso-b', 'iso-g1', 'Store B');
		SELECT autora.add_tenant('iso-c', 'iso-g2', 'Store C');
		DO \$\$ BEGIN
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'iso_app') THEN
				CREATE ROLE iso_app LOGIN;
			END IF;
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'iso_owner') THEN
				CREATE ROLE iso_owner LOGIN;
			END IF;
		END \$\$;
		GRANT CREATE ON SCHEMA public TO iso_app;
		CREATE TABLE deals (id int PRIMARY KEY, tenant_id text NOT NULL, v text);
		ALTER TABLE deals OWNER TO iso_owner;
		SELECT autora.protect('deals');
		GRANT ALL ON deals TO iso_app;
		SELECT autora.set_context_trusted('iso-a', 'setup', 'sales');
		INSERT INTO deals VALUES (1, 'iso-a', 'a1'), (2, 'iso-a', 'a2'), (3, 'iso-a', 'a3');
		SELECT autora.set_context_trusted('iso-b', 'setup', 'sales');
		INSERT INTO deals VALUES (11, 'iso-b', 'b1'), (12, 'iso-b', 'b2');
		SELECT autora.set_context_trusted('iso-c', 'setup', 'sales');
		INSERT INTO deals VALUES (21, 'iso-c', 'c1');
	});
	return {
		ed_priv => $ed_priv,
		ed_pub => $ed_pub,
		other_priv => $other_priv,
		other_pub => $other_pub
	};
}

sub b64url
{
	my ($bytes) = @_;
	my $s = encode_base64($bytes, '');
	$s =~ tr{+/}{-_};
	$s =~ s/=+$//;
	return $s;
}

# Claims for a store and role, valid for ten minutes, plus any extras.
sub jwt_claims
{
	my ($tenant, $role, %extra) = @_;
	my %c = (sub => 'u-' . ($tenant // 'platform'), role => $role // 'sales', exp => time() + 600);
	$c{tenant} = $tenant if defined $tenant;
	return { %c, %extra };
}

sub encode_part
{
	my ($part) = @_;
	return b64url(ref $part ? $json->encode($part) : $part);
}

# hs256_token($claims, header => {...}, secret => '...'): header and claims
# may be hashes (JSON-encoded) or raw strings (taken as the bytes to encode).
sub hs256_token
{
	my ($claims, %opt) = @_;
	my $header = $opt{header} // { alg => 'HS256', typ => 'JWT', kid => $HS_KID };
	my $input = encode_part($header) . '.' . encode_part($claims);
	return $input . '.' . b64url(hmac_sha256($input, $opt{secret} // $HS_SECRET));
}

# eddsa_token($claims, $private_key_file, header => {...}): signed by openssl.
sub eddsa_token
{
	my ($claims, $keyfile, %opt) = @_;
	my $header = $opt{header} // { alg => 'EdDSA', typ => 'JWT', kid => $ED_KID };
	my $input = encode_part($header) . '.' . encode_part($claims);
	my ($fh, $infile) = tempfile(UNLINK => 1);
	print $fh $input;
	close $fh;
	my $sigfile = "$infile.sig";
	system('openssl', 'pkeyutl', '-sign', '-inkey', $keyfile, '-rawin',
		'-in', $infile, '-out', $sigfile) == 0
	  or die "openssl pkeyutl -sign failed";
	my $sig = slurp_file($sigfile);
	unlink $sigfile;
	return $input . '.' . b64url($sig);
}

# A background psql session that keeps going after errors and prints bare
# SQLSTATEs.  user => role (default iso_app); connstr => overrides the node's.
sub app_session
{
	my ($node, $db, %opt) = @_;
	my $connstr = $opt{connstr} // ($node->connstr($db) . ' user=' . ($opt{user} // 'iso_app'));
	my $s = $node->background_psql($db,
		on_error_stop => 0,
		extra_params => [ '-d', $connstr ]);
	run_sql($s, '\set VERBOSITY sqlstate');
	return $s;
}

# run_sql($session, $sql): (sqlstate of the first error or 'ok', stdout).
sub run_sql
{
	my ($s, $sql) = @_;
	# BackgroundPsql notes every query and result; keep the TAP output readable
	no warnings 'redefine';
	local *PostgreSQL::Test::BackgroundPsql::note = sub { };
	$s->{stderr} = '';
	my $out = $s->query($sql);
	my $err = $s->{stderr};
	$s->{stderr} = '';
	my $state = $err =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5})\b/ ? $1 : 'ok';
	return ($state, $out);
}

# sql_state($node, $db, $sql, %psql_params): SQLSTATE of a one-off psql run
# (first error) or 'ok'; in list context also stdout and stderr.
sub sql_state
{
	my ($node, $db, $sql, %params) = @_;
	my ($out, $err) = ('', '');
	$node->psql($db, "\\set VERBOSITY sqlstate\n$sql",
		stdout => \$out, stderr => \$err, on_error_stop => 1, %params);
	my $state = $err =~ /(?:ERROR|FATAL):\s+([0-9A-Z]{5})\b/ ? $1 : 'ok';
	return wantarray ? ($state, $out, $err) : $state;
}

# True when the server log shows a crashed backend.
sub log_has_crash
{
	my ($node) = @_;
	my $log = slurp_file($node->logfile);
	return $log =~ /terminated by signal|was terminated by exception|server process .* exited with exit code [1-9]/;
}

1;
