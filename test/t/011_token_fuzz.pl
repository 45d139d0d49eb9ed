# 011_token_fuzz.pl: 100,000 random, truncated, bit-flipped, oversized and
# fuzzed-but-signed tokens through autora.set_context, bounded in time.
#
# The tokens are generated in SQL from a seed (so a failure can be replayed
# with the same seed), ten classes in turn:
#   0 printable garbage          1 three random base64url parts
#   2 valid token truncated      3 one character replaced
#   4 one bit flipped in the decoded header or payload, signature kept
#   5 oversized (> 16 kB)
#   6 validly signed, fuzzed claims (types, unknown stores/roles, times)
#   7 validly signed, fuzzed header (alg, kid, crit, odd members)
#   8 validly signed raw JSON payload texts
#   9 unsigned raw header texts (the header is parsed before the signature)
# Classes 0-5 and 9 carry no valid signature: they must never be accepted.
# Every failure must be ZA002, ZA003 or ZA004, and no error text may contain
# the token, its signature or the secret.  The server must never crash, and
# a valid token must still work afterwards.
# Then malformed JSON case by case (numbers out of range, deep nesting,
# invalid text, \u0000, lone surrogates, members named twice, non-objects),
# before and after the signature, and \u escapes in LATIN1 and SQL_ASCII
# databases: always ZA002.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use JSON::PP;
use AutoraTenancy;

my $batches = 10;
my $per_batch = 10_000;
my $budget_s = 60;

my $node = tenancy_node('token_fuzz');
my $db = 'iso_fuzz';
tenancy_setup($node, $db);

(my $fuzz_sql = <<'SQL') =~ s/\@SECRET\@/$HS_SECRET/g;
CREATE SCHEMA fuzz;
CREATE FUNCTION fuzz.b64url(bytea) RETURNS text LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT translate(encode($1, 'base64'), E'+/=\n', '-_') $$;
CREATE FUNCTION fuzz.b64(text) RETURNS text LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT fuzz.b64url(convert_to($1, 'UTF8')) $$;
CREATE FUNCTION fuzz.unb64(text) RETURNS bytea LANGUAGE sql IMMUTABLE STRICT
AS $$ SELECT decode(translate($1, '-_', '+/') || repeat('=', (4 - length($1) % 4) % 4), 'base64') $$;
CREATE FUNCTION fuzz.secret() RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT '@SECRET@'::text $$;
CREATE FUNCTION fuzz.sign(h text, p text) RETURNS text LANGUAGE sql
AS $$ SELECT h || '.' || p || '.' || fuzz.b64url(hmac(convert_to(h || '.' || p, 'UTF8'), convert_to(fuzz.secret(), 'UTF8'), 'sha256')) $$;
CREATE FUNCTION fuzz.rnd(n int) RETURNS int LANGUAGE sql
AS $$ SELECT floor(random() * n)::int $$;
CREATE FUNCTION fuzz.hex(len int) RETURNS text LANGUAGE sql
AS $$ SELECT left(string_agg(md5(random()::text), ''), len) FROM generate_series(0, len / 32) $$;
CREATE FUNCTION fuzz.garbage(len int) RETURNS text LANGUAGE sql
AS $$ SELECT translate(fuzz.hex(len), '0123456789abcdef', 'A.z_-=+/ {"é9Q\~') $$;
CREATE FUNCTION fuzz.pick(choices jsonb) RETURNS jsonb LANGUAGE sql
AS $$ SELECT choices -> fuzz.rnd(jsonb_array_length(choices)) $$;
-- a JSON object from optional members: a choice "$absent" leaves the key out
CREATE FUNCTION fuzz.object(members jsonb) RETURNS jsonb LANGUAGE sql AS $$
    SELECT coalesce(jsonb_object_agg(key, v) FILTER (WHERE v IS DISTINCT FROM '"$absent"'), '{}')
    FROM (SELECT key, fuzz.pick(value) AS v FROM jsonb_each(members)) m $$;

-- One token of a class; "forgery" classes carry no valid signature.
CREATE FUNCTION fuzz.token(class int, good text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    now_s bigint := extract(epoch FROM clock_timestamp())::bigint;
    parts text[] := string_to_array(good, '.');
    t text;
    b bytea;
    pos int;
    n int;
BEGIN
    CASE class
    WHEN 0 THEN     -- printable garbage with dots
        RETURN fuzz.garbage(fuzz.rnd(300));
    WHEN 1 THEN     -- three random base64url parts of random lengths
        RETURN fuzz.b64url(decode(fuzz.hex(2 * fuzz.rnd(60)), 'hex')) || '.' ||
               fuzz.b64url(decode(fuzz.hex(2 * fuzz.rnd(200)), 'hex')) || '.' ||
               left(fuzz.b64url(decode(fuzz.hex(2 * fuzz.rnd(70)), 'hex')), fuzz.rnd(100));
    WHEN 2 THEN     -- a valid token truncated
        RETURN left(good, fuzz.rnd(length(good)));
    WHEN 3 THEN     -- one character replaced (never the last: its low bits are padding)
        pos := 1 + fuzz.rnd(length(good) - 1);
        t := substr('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/', 1 + fuzz.rnd(68), 1);
        IF t = substr(good, pos, 1) THEN
            t := CASE WHEN t = 'A' THEN 'B' ELSE 'A' END;
        END IF;
        RETURN overlay(good PLACING t FROM pos FOR 1);
    WHEN 4 THEN     -- one bit flipped in the decoded header or payload, signature kept
        n := 1 + fuzz.rnd(2);
        b := fuzz.unb64(parts[n]);
        pos := fuzz.rnd(length(b) * 8);
        b := set_bit(b, pos, 1 - get_bit(b, pos));
        parts[n] := fuzz.b64url(b);
        RETURN array_to_string(parts, '.');
    WHEN 5 THEN     -- oversized
        RETURN good || repeat(fuzz.garbage(64), 256 + fuzz.rnd(400));
    WHEN 6 THEN     -- validly signed, fuzzed claims
        RETURN fuzz.sign(parts[1], fuzz.b64(fuzz.object(jsonb_build_object(
            'tenant', jsonb_build_array('iso-a', 'iso-b', 'iso-zz', '', 123, null, '{"x": 1}'::jsonb,
                                        '["iso-a"]'::jsonb, true, repeat('t', 5000), 'iso-a ', 'ISO-A', '$absent'),
            'sub', jsonb_build_array('u', '', 0, null, '{"a": 1}'::jsonb, repeat('s', 3000), '$absent'),
            'role', jsonb_build_array('sales', 'platform_owner', 'group_admin', 'support', 'bogus', '', 1,
                                      null, '["sales"]'::jsonb, '$absent'),
            'exp', jsonb_build_array(now_s + 600, now_s - 600, now_s - 25, now_s - 35, 1e308, -1e308,
                                     '1e400'::jsonb, (now_s + 600)::text, null, 0, 1.5, '$absent', '$absent'),
            'nbf', jsonb_build_array(now_s - 600, now_s + 600, now_s + 25, now_s + 35, '1e-400'::jsonb,
                                     '$absent', '$absent', '$absent'),
            'ip', jsonb_build_array('203.0.113.7', '::1', 'nope', 7, null, '1.2.3.4/8', '$absent', '$absent'),
            'email', jsonb_build_array('a@example.com', 5, '[1]'::jsonb, '$absent', '$absent'),
            'scope', jsonb_build_array('platform', '$absent')))::text));
    WHEN 7 THEN     -- validly signed, fuzzed header
        RETURN fuzz.sign(fuzz.b64(fuzz.object(jsonb_build_object(
            'alg', jsonb_build_array('HS256', 'HS256', 'none', 'EdDSA', 'HS384', 'hs256', '', null, 1,
                                     '["HS256"]'::jsonb, '{}'::jsonb, '$absent'),
            'kid', jsonb_build_array('iso-hs', 'iso-hs', 'iso-ed', 'nope', '', null, 7, repeat('k', 2000), '$absent'),
            'typ', jsonb_build_array('JWT', 5, '$absent'),
            'crit', jsonb_build_array('["exp"]'::jsonb, '$absent', '$absent', '$absent'),
            'x', jsonb_build_array(('1e' || (100 + fuzz.rnd(900)))::numeric, repeat('[', 50)::text,
                                   '$absent', '$absent', '$absent', '$absent')))::text), parts[2]);
    WHEN 8 THEN     -- validly signed raw JSON texts
        RETURN fuzz.sign(parts[1], fuzz.b64((jsonb_build_array(
            '{"tenant": "iso-a", "sub": "u", "role": "sales"',
            '{"tenant": "iso-a", "sub": "u", "role": "sales", "exp": 1e' || (131072 + fuzz.rnd(100000)) || '}',
            '{"tenant": "iso-a", "sub": "u", "role": "sales", "x": ' || repeat('[', 3000) || repeat(']', 3000) || '}',
            '[]', '"iso-a"', 'null', '{}', '{"tenant": "iso-a", "tenant": "iso-b", "sub": "u", "role": "sales"}',
            '{"tenant": "iso-a", "sub": "u\u0000", "role": "sales"}',
            '{"tenant": "iso-a", "sub": "\ud800", "role": "sales"}',
            '{"tenant": "iso-a", "sub": "u", "role": "sales", "req": ' || repeat('9', 1000) || '}',
            fuzz.garbage(fuzz.rnd(100))) ->> fuzz.rnd(12))));
    ELSE            -- unsigned raw headers (parsed before the signature is checked)
        RETURN fuzz.b64((jsonb_build_array(
            '{"alg": "HS256", "kid": "iso-hs", "x": 1e' || (131072 + fuzz.rnd(100000)) || '}',
            '{"alg": "HS256", "kid": "iso-hs", "x": -1e' || (131072 + fuzz.rnd(100000)) || '}',
            repeat('[', 2000 + fuzz.rnd(6000)),
            '{"alg": "HS256", "kid": "iso-hs\u0000"}',
            '{"alg": "HS256", "kid": "\udc00"}',
            '{"alg": "HS256", "kid": "iso-hs"',
            fuzz.garbage(fuzz.rnd(100))) ->> fuzz.rnd(7))) || '.' || parts[2] || '.' || parts[3];
    END CASE;
END $$;

-- Feeds n tokens of every class to set_context (as the calling role) and
-- records each outcome: SQLSTATE, and whether the error text leaked.
CREATE FUNCTION fuzz.run(seed float8, n int) RETURNS TABLE (class int, state text, tokens bigint, leaks bigint)
LANGUAGE plpgsql AS $$
DECLARE
    good text := fuzz.sign(fuzz.b64('{"alg": "HS256", "kid": "iso-hs", "typ": "JWT"}'),
                           fuzz.b64(jsonb_build_object('tenant', 'iso-a', 'sub', 'u-iso-a', 'role', 'sales',
                               'exp', extract(epoch FROM now())::bigint + 3600)::text));
    tok text;
    st text;
    msg text;
    detail text;
    hint text;
    leaked boolean;
BEGIN
    PERFORM setseed(seed);
    CREATE TEMP TABLE IF NOT EXISTS fuzz_out (class int, state text, leak boolean);
    TRUNCATE fuzz_out;
    FOR i IN 0 .. n - 1 LOOP
        tok := fuzz.token(i % 10, good);
        BEGIN
            PERFORM autora.set_context(tok);
            st := 'ok';
            leaked := false;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT,
                                    detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
            msg := concat_ws(' ', msg, detail, hint);
            leaked := strpos(msg, fuzz.secret()) > 0
                   OR (length(tok) >= 16 AND strpos(msg, tok) > 0)
                   OR (length(split_part(tok, '.', 3)) >= 16 AND strpos(msg, split_part(tok, '.', 3)) > 0);
        END;
        INSERT INTO fuzz_out VALUES (i % 10, st, leaked);
    END LOOP;
    RETURN QUERY SELECT o.class, o.state, count(*), count(*) FILTER (WHERE o.leak)
                 FROM fuzz_out o GROUP BY 1, 2 ORDER BY 1, 2;
END $$;
GRANT USAGE ON SCHEMA fuzz TO PUBLIC;
SQL
$node->safe_psql($db, "CREATE EXTENSION pgcrypto;\n$fuzz_sql");
my $app = $node->connstr($db) . ' user=iso_app';

my (%count, %by_state, %ok_by_class, $leaks, $alive, $done);
$alive = 1;
my $t0 = time();
for my $batch (1 .. $batches)
{
	my ($out, $err) = ('', '');
	$node->psql($db, "SELECT class, state, tokens, leaks FROM fuzz.run($batch / 100.0, $per_batch)",
		connstr => $app, stdout => \$out, stderr => \$err, on_error_stop => 1);
	diag("batch $batch: $err") if $err ne '';
	for my $line (split /\n/, $out)
	{
		my ($class, $state, $n, $l) = split /\|/, $line;
		$count{"$class|$state"} += $n;
		$by_state{$state} += $n;
		$ok_by_class{$class} += $n if $state eq 'ok';
		$leaks += $l;
		$done += $n;
	}
	my ($rc) = $node->psql('postgres', 'SELECT 1');
	$alive &&= $rc == 0;
	last if time() - $t0 > $budget_s;
}
my $elapsed = time() - $t0;
note sprintf('%d tokens in %.1f s; by SQLSTATE: %s', $done // 0, $elapsed,
	join(', ', map { "$_=$by_state{$_}" } sort keys %by_state));
note 'by class|SQLSTATE: ' . join(', ', map { "$_=$count{$_}" } sort keys %count);

is($done, $batches * $per_batch, "all $batches x $per_batch tokens went through set_context");
cmp_ok($elapsed, '<', $budget_s, "the fuzz run stayed within ${budget_s} s");
ok($alive, 'the server answered after every batch');
ok(!log_has_crash($node), 'no backend crashed (server log)');

my @forged = grep { /^[0-5]$|^9$/ } sort keys %ok_by_class;
is_deeply(\@forged, [], 'no unsigned, truncated, bit-flipped or oversized token was ever accepted')
  or diag(join ', ', map { "class $_: $ok_by_class{$_} accepted" } @forged);
my @unsigned_not_za002 = grep { /^[0-5]\|/ && !/\|ZA002$/ } sort keys %count;
is_deeply(\@unsigned_not_za002, [], 'garbage, truncated, altered and oversized tokens: always ZA002')
  or diag(join ', ', map { "$_=$count{$_}" } @unsigned_not_za002);
my @other_states = grep { !/^(ok|ZA002|ZA003|ZA004)$/ } sort keys %by_state;
is_deeply(\@other_states, [], 'every refusal has SQLSTATE ZA002, ZA003 or ZA004')
  or diag(join ', ', map { my $s = $_; "$s in " . join(' ', map { "class $_" } grep { $count{"$_|$s"} } 0 .. 9) . " ($by_state{$s})" } @other_states);
ok($by_state{ok} && $by_state{ZA002} && $by_state{ZA003} && $by_state{ZA004},
	'the signed classes reached every outcome: accepted, ZA002, ZA003 and ZA004');
is($leaks, 0, 'no error message, detail or hint contained the token, its signature or the secret');

# the honest path still works on a fresh connection
my $token = hs256_token(jwt_claims('iso-a'));
my ($st, $out) = AutoraTenancy::sql_state($node, $db,
	"BEGIN;\nSELECT autora.set_context('$token') ->> 'tenant';\n"
	  . "SELECT string_agg(id::text, ',' ORDER BY id) FROM deals;\nCOMMIT;",
	connstr => $app);
is("$st:$out", "ok:iso-a\n1,2,3", 'a valid token still works afterwards and reads its own rows');

# Malformed JSON, case by case: each text as the header of an unsigned token
# (the header is parsed before the signature is checked), as the header of
# a signed token and as the payload of one.  Every one is ZA002: nothing in
# a token may raise another SQLSTATE.  HEADER and CLAIMS stand for valid
# members, so that only the named defect is wrong.
my @malformed = (
	[ 'a tiny number', '{BASE, "x": 1e-200000}' ],
	[ 'a tiny zero', '{BASE, "x": -0.0e-200000}' ],
	[ 'zero with a huge exponent', '{BASE, "x": 0e99999999999}' ],
	[ 'a huge number', '{BASE, "x": 1e400}' ],
	[ 'a long number', '{BASE, "x": 0.' . ('0' x 300) . '1}' ],
	[ 'deep nesting', '{BASE, "x": ' . ('[' x 3000) . (']' x 3000) . '}' ],
	[ 'deep nesting of objects', '{BASE, "x": ' . ('{"a": ' x 1000) . '1' . ('}' x 1000) . '}' ],
	[ 'invalid UTF-8', qq({BASE, "x": "\xc3\x28"}) ],
	[ 'a NUL byte', qq({BASE, "x": "a\x00b"}) ],
	[ 'a \\u0000 escape', '{BASE, "x": "a\u0000b"}' ],
	[ 'a lone high surrogate', '{BASE, "x": "\ud800"}' ],
	[ 'a lone low surrogate', '{BASE, "x": "\udc00x"}' ],
	[ 'a reversed surrogate pair', '{BASE, "x": "\udc00\ud800"}' ],
	[ 'a member named twice', '{BASE, DUPLICATE}' ],
	[ 'a member named twice, once escaped', '{BASE, ESCAPED_DUPLICATE}' ],
	[ 'a member of a nested object named twice', '{BASE, "x": {"a": 1, "a": 2}}' ],
	[ 'an array', '[{BASE}]' ],
	[ 'a number', '1e-200000' ],
	[ 'a string', '"x"' ],
	[ 'null', 'null' ],
	[ 'truncated JSON', '{BASE' ],
	[ 'nothing', '' ],);
my %base = (
	header => [ '"alg": "HS256", "kid": "iso-hs"', '"kid": "iso-hs"', '"\u006bid": "iso-hs"' ],
	payload => [
		'"tenant": "iso-a", "sub": "u", "role": "sales"', '"tenant": "iso-b"',
		'"\u0074enant": "iso-b"'
	]);
sub malformed_text
{
	my ($text, $part) = @_;
	my ($members, $dup, $escaped) = @{ $base{$part} };
	$text =~ s/ESCAPED_DUPLICATE/$escaped/;
	$text =~ s/DUPLICATE/$dup/;
	$text =~ s/BASE/$members/;
	return $text;
}
my $good_header = '{"alg": "HS256", "kid": "iso-hs"}';
my $good_claims = JSON::PP->new->encode(jwt_claims('iso-a'));
{
	my $s = app_session($node, $db);
	my @wrong;
	for my $case (@malformed)
	{
		my ($what, $text) = @$case;
		my $header = malformed_text($text, 'header');
		my %tokens = (
			'unsigned header' => join('.',
				b64url($header), b64url($good_claims), b64url('x' x 32)),
			'signed header' => hs256_token($good_claims, header => $header),
			'signed payload' => hs256_token(malformed_text($text, 'payload'), header => $good_header));
		for my $how (sort keys %tokens)
		{
			my ($state) = run_sql($s, "SELECT autora.set_context('$tokens{$how}');");
			push @wrong, "$what ($how): $state" if $state ne 'ZA002';
		}
	}
	is_deeply(\@wrong, [], 'malformed JSON in a token: always ZA002, before and after the signature')
	  or diag(join("\n", @wrong));
	# deep nesting must not reach the parser's recursion: with a small stack
	# it would raise 54001 (stack depth limit exceeded)
	my $deep = hs256_token($good_claims,
		header => '{"alg": "HS256", "kid": "iso-hs", "x": ' . ('[' x 3000) . (']' x 3000) . '}');
	my ($state) = sql_state($node, $db,
		"SET max_stack_depth = '100kB';\nSELECT autora.set_context('$deep');");
	is($state, 'ZA002', 'a deeply nested token is refused before the parser recurses (small stack)');
	$s->quit;
}

# In a database whose encoding is not UTF8, the parser converts \u escapes
# to the database encoding and raises (22P05, or 0A000 in SQL_ASCII) on a
# character it cannot hold: such escapes are refused first, with ZA002.
# Escapes the encoding can hold are accepted (the store is unknown in these
# databases: ZA004).
my %escapes = (
	LATIN1 => { '\u0041' => 'ZA004', '\u00e9' => 'ZA004', '\u4e2d' => 'ZA002', '\ud83d\ude97' => 'ZA002' },
	SQL_ASCII => { '\u0041' => 'ZA004', '\u00e9' => 'ZA002', '\u4e2d' => 'ZA002' });
for my $encoding (sort keys %escapes)
{
	my $edb = 'fuzz_' . lc $encoding;
	$node->safe_psql('postgres',
		"CREATE DATABASE $edb ENCODING '$encoding' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
	$node->safe_psql($edb,
		"CREATE EXTENSION autora_audit; SELECT autora.add_key('$HS_KID', 'HS256', '$HS_SECRET');");
	my @wrong;
	for my $escape (sort keys %{ $escapes{$encoding} })
	{
		my $want = $escapes{$encoding}{$escape};
		my $header = qq({"alg": "HS256", "kid": "iso-hs", "x": "$escape"});
		my $claims = JSON::PP->new->encode(jwt_claims('iso-a')) =~ s/\}$/, "name": "$escape"}/r;
		my %tokens = (
			'unsigned header' => join('.', b64url($header), b64url($good_claims), b64url('x' x 32)),
			'signed header' => hs256_token($good_claims, header => $header),
			'signed payload' => hs256_token($claims, header => $good_header));
		for my $how (sort keys %tokens)
		{
			my $state = sql_state($node, $edb, "SELECT autora.set_context('$tokens{$how}');");
			my $expected = $how eq 'unsigned header' ? 'ZA002' : $want;
			push @wrong, "$escape ($how): $state, not $expected" if $state ne $expected;
		}
	}
	is_deeply(\@wrong, [],
		"$encoding database: a \\u escape of a character the encoding cannot hold is ZA002; others work")
	  or diag(join("\n", @wrong));
}

$node->stop;
done_testing();
