# test/t/lib/AutoraTest.pm: shared helpers for the autora_audit TAP suites.
#
# Nodes are created with PostgreSQL::Test::Cluster and, unless told
# otherwise, preload autora_audit with a short seal interval.  Every wait is
# bounded: poll() gives up after its own timeout (seconds), never the
# framework's 180 s default, so a broken feature fails fast.
package AutoraTest;

use strict;
use warnings;

use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(autora_node setup_db sql_error poll elapsed log_clean);

# autora_node($name, preload => 1, seal_interval => '200ms', conf => "...")
sub autora_node
{
	my ($name, %opt) = @_;
	my $preload = exists $opt{preload} ? $opt{preload} : 1;
	my $interval = $opt{seal_interval} // '200ms';
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init;
	my $conf = '';
	$conf .= "shared_preload_libraries = 'autora_audit'\n"
	  . "autora.seal_interval = '$interval'\n"
	  if $preload;
	$conf .= $opt{conf} if defined $opt{conf};
	$node->append_conf('postgresql.conf', $conf);
	$node->start;
	return $node;
}

# setup_db($node, $db, tenants => ['101', ...], create_db => 1): creates the
# database (unless it is postgres or create_db is false), the extension, the
# tenants, and a protected deals table.
sub setup_db
{
	my ($node, $db, %opt) = @_;
	my @tenants = @{ $opt{tenants} // ['101'] };

	$node->safe_psql('postgres', qq{CREATE DATABASE "$db"})
	  unless $db eq 'postgres' || (exists $opt{create_db} && !$opt{create_db});
	# one transaction: its commit is the first to append entries here, so
	# the sealer it starts finds protect()'s entry in its first round
	my $sql = "BEGIN;\nCREATE EXTENSION autora_audit;\n";
	$sql .= "SELECT autora.add_tenant('$_', 'g1', 'store $_');\n" for @tenants;
	$sql .= q{
		CREATE TABLE deals (
			id        bigserial PRIMARY KEY,
			tenant_id text NOT NULL,
			customer  text,
			amount    numeric NOT NULL DEFAULT 0,
			updates   integer NOT NULL DEFAULT 0
		);
		SELECT autora.protect('deals');
		COMMIT;
	};
	$node->safe_psql($db, $sql);
	return;
}

# sql_error($node, $db, $sql): runs $sql with VERBOSITY verbose and returns
# (exit code, stderr); stderr then carries "ERROR:  <SQLSTATE>: message".
sub sql_error
{
	my ($node, $db, $sql) = @_;
	my ($stdout, $stderr);
	my $rc = $node->psql(
		$db, "\\set VERBOSITY verbose\n$sql",
		stdout => \$stdout,
		stderr => \$stderr,
		on_error_stop => 1);
	return ($rc, $stderr // '');
}

# poll($node, $db, $query, $expected, $timeout_s): true once $query returns
# $expected, false after $timeout_s seconds.
sub poll
{
	my ($node, $db, $query, $expected, $timeout) = @_;
	$timeout //= 30;
	my $deadline = time() + $timeout;
	my $last = '';
	while (time() < $deadline)
	{
		my ($stdout, $stderr);
		$node->psql($db, $query, stdout => \$stdout, stderr => \$stderr);
		$last = $stdout // '';
		return 1 if $last eq $expected;
		usleep(100_000);
	}
	diag("poll timed out after ${timeout}s: $query\n  expected: $expected\n  last: $last");
	return 0;
}

# log_clean($node, $name, allow => [qr/.../]): the server log shows no
# resource leak, assertion failure, PANIC or crashed process, except lines
# matching an allowed pattern (e.g. a process the test killed on purpose).
sub log_clean
{
	my ($node, $name, %opt) = @_;
	my @allow = @{ $opt{allow} // [] };
	my @bad;
	for my $line (split /\n/, slurp_file($node->logfile))
	{
		next
		  unless $line =~ /leak|TRAP:|PANIC:|terminated by signal|exited with exit code [^01]|was terminated/;
		next if grep { $line =~ $_ } @allow;
		push @bad, $line;
	}
	local $Test::Builder::Level = $Test::Builder::Level + 1;
	is(scalar(@bad), 0, "$name: the server log shows no leak, assertion failure or crash")
	  or diag(join("\n", @bad[ 0 .. ($#bad < 9 ? $#bad : 9) ]));
	return;
}

sub elapsed
{
	my ($t0) = @_;
	return sprintf('%.2f', time() - $t0);
}

1;
