# 010_pooling.pl: transaction-scoped contexts under PgBouncer transaction
# pooling.
#
# A real pgbouncer (pool_mode = transaction, one server connection) sits in
# front of the node.  Two clients, one per store, alternate transactions on
# that same server connection: each sets its context with is_local = true,
# inserts a row and reads the table.  Neither may ever see the other's rows,
# and a transaction without set_context right after the other client's
# transaction must fail with ZA001: the previous client's context must not
# leak.  Finally, the documented hazard: a session-scoped context
# (is_local = false) does survive into the next client's transaction.
use strict;
use warnings;

use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);
use AutoraTenancy;

my $pgbouncer = '/usr/sbin/pgbouncer';
plan skip_all => "pgbouncer is not installed ($pgbouncer)" unless -x $pgbouncer;

my $rounds = 50;
my $node = tenancy_node('pooling');
my $db = 'iso_pool';
tenancy_setup($node, $db);

# ------------------------------------------------------------ pgbouncer
my $dir = PostgreSQL::Test::Utils::tempdir('pgbouncer');
my $port = PostgreSQL::Test::Cluster::get_free_port();
my $server_host = $node->host;    # unix socket directory of the node
my $server_port = $node->port;
append_to_file("$dir/users.txt", qq{"iso_app" ""\n"postgres" ""\n});
append_to_file("$dir/pgbouncer.ini", qq{[databases]
$db = host=$server_host port=$server_port dbname=$db

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = transaction
default_pool_size = 1
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 20
server_reset_query =
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
admin_users = postgres
});

my ($bout, $berr) = ('', '');
my $bouncer = IPC::Run::start([ $pgbouncer, "$dir/pgbouncer.ini" ],
	'<', \undef, '>', \$bout, '2>', \$berr);
my $up = 0;
for (1 .. 100)
{
	if (PostgreSQL::Test::Cluster::can_bind('127.0.0.1', $port)) { usleep(100_000); next; }
	$up = 1;
	last;
}
ok($up, "pgbouncer listens on 127.0.0.1:$port") or diag("pgbouncer: $bout $berr");

my $via_bouncer = "host=127.0.0.1 port=$port dbname=$db user=iso_app";
my %client = (
	'iso-a' => app_session($node, $db, connstr => $via_bouncer),
	'iso-b' => app_session($node, $db, connstr => $via_bouncer));
my %token = map { $_ => hs256_token(jwt_claims($_)) } keys %client;
my %own_ids = ('iso-a' => [ 1, 2, 3 ], 'iso-b' => [ 11, 12 ]);

# ------------------------------------------------------------ alternation
my (@leaks, @not_refused, @bad_own, %backends);
my $next_id = 1000;
for my $round (1 .. $rounds)
{
	for my $tenant ('iso-a', 'iso-b')
	{
		my $s = $client{$tenant};

		# straight after the other client's transaction, without a context
		my ($st, $out) = run_sql($s, 'SELECT count(*) FROM deals');
		push @not_refused, "round $round $tenant: $st $out" unless $st eq 'ZA001';
		($st, $out) = run_sql($s, 'SELECT autora.tenant()');
		push @not_refused, "round $round $tenant tenant(): $st $out" unless $st eq 'ZA001';

		my $id = $next_id++;
		push @{ $own_ids{$tenant} }, $id;
		($st, $out) = run_sql($s, qq{BEGIN;
SELECT autora.set_context('$token{$tenant}', true) ->> 'tenant';
INSERT INTO deals (id, v) VALUES ($id, 'pooled');
SELECT string_agg(DISTINCT tenant_id, ',') FROM deals;
SELECT string_agg(id::text, ',' ORDER BY id) FROM deals;
SELECT pg_backend_pid();
COMMIT;});
		my @lines = split /\n/, $out;
		if ($st ne 'ok' || @lines != 4)
		{
			push @bad_own, "round $round $tenant: $st [$out]";
			next;
		}
		my ($ctx, $tenants, $ids, $pid) = @lines;
		$backends{$pid}++;
		push @leaks, "round $round $tenant saw tenants $tenants" unless $tenants eq $tenant;
		push @bad_own, "round $round $tenant: context $ctx, ids $ids"
		  unless $ctx eq $tenant && $ids eq join(',', @{ $own_ids{$tenant} });
	}
}

is(scalar(keys %backends), 1,
	'both clients ran every transaction on the same single server connection')
  or diag('backend pids: ' . join(', ', sort keys %backends));
is_deeply(\@bad_own, [],
	"$rounds x 2 honest pooled transactions: context set, insert ok, exactly the client's own rows");
is_deeply(\@leaks, [], 'no pooled transaction ever saw the other store\'s rows');
is_deeply(\@not_refused, [],
	'a transaction without set_context right after the other client\'s transaction: ZA001 every time');

my ($st, $out) = run_sql($client{'iso-b'},
	"SELECT count(*) FROM deals WHERE tenant_id = 'iso-a'");
is($st, 'ZA001', 'after the alternation the idle connection carries no context');

is( $node->safe_psql($db,
		"SELECT string_agg(tenant_id || ':' || count, ',' ORDER BY tenant_id) FROM"
		  . " (SELECT tenant_id, count(*) FROM deals WHERE id >= 1000 GROUP BY tenant_id) c"),
	"iso-a:$rounds,iso-b:$rounds",
	'every pooled insert landed in its own store');

# ------------------------------------------------------------ documented hazard
# A session-scoped context belongs to the server connection, which transaction
# pooling hands to whichever client comes next.  That is why applications
# behind a transaction pooler must use is_local = true (the default).
run_sql($client{'iso-a'}, "SELECT autora.set_context('$token{'iso-a'}', false)");
($st, $out) = run_sql($client{'iso-b'}, 'SELECT autora.tenant()');
is("$st:$out", 'ok:iso-a',
	'DOCUMENTED: a session-scoped context (is_local = false) is inherited by the next pooled client');
run_sql($client{'iso-b'}, 'SELECT autora.clear_context()');
($st) = run_sql($client{'iso-a'}, 'SELECT autora.tenant()');
is($st, 'ZA001', 'clear_context() on the pooled connection ends it for every client');

$_->quit for values %client;
$bouncer->signal('TERM');
$bouncer->finish;
ok(!log_has_crash($node), 'no backend crashed');
$node->stop;
done_testing();
