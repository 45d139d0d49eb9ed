-- isolation_tokens.sql: forged, stale and malformed context tokens.
--
-- Tokens are built here in SQL (pgcrypto HMAC-SHA256, base64url).  An
-- application role presents expired / not-yet-valid / tampered / wrong-key /
-- alg=none / algorithm-confusion / malformed tokens and tokens for unknown
-- stores or roles: each must fail with ZA002 (bad token), ZA003 (time) or
-- ZA004 (unknown tenant or role), never switch the context, and never echo
-- the token or the secret.  EdDSA signatures (openssl) are exercised in
-- test/t/012_isolation_sessions.pl.
BEGIN;
SELECT plan(60);

-- ------------------------------------------------------------------ set-up
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE SCHEMA iso;
CREATE FUNCTION iso.b64url(bytea) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT translate(encode($1, 'base64'), E'+/=\n', '-_') $$;
CREATE FUNCTION iso.b64(text) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT iso.b64url(convert_to($1, 'UTF8')) $$;
CREATE FUNCTION iso.secret() RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT 'iso-token-secret-0123456789-abcdefghijkl' $$;
CREATE FUNCTION iso.other_secret() RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT 'iso-other-secret-0123456789-abcdefghijkl' $$;
-- the Ed25519 public key registered for EdDSA tokens (public: fine in a test)
CREATE FUNCTION iso.ed_pem() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT
'-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAdmO7OyfDD2PgIzwctUKwu6ifZc6En0dd5CTSYqjcEDI=
-----END PUBLIC KEY-----
' $$;
CREATE FUNCTION iso.mac(input text, secret text) RETURNS text LANGUAGE sql
AS $$ SELECT iso.b64url(hmac(convert_to(input, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256')) $$;
-- HS256 over already-encoded header and payload parts
CREATE FUNCTION iso.sign_parts(h text, p text, secret text DEFAULT iso.secret())
RETURNS text LANGUAGE sql AS $$ SELECT h || '.' || p || '.' || iso.mac(h || '.' || p, secret) $$;
CREATE FUNCTION iso.jwt(hdr jsonb, pay jsonb, secret text DEFAULT iso.secret())
RETURNS text LANGUAGE sql AS $$ SELECT iso.sign_parts(iso.b64(hdr::text), iso.b64(pay::text), secret) $$;
CREATE FUNCTION iso.hdr(kid text DEFAULT 'iso-hs') RETURNS jsonb LANGUAGE sql
AS $$ SELECT jsonb_strip_nulls(jsonb_build_object('alg', 'HS256', 'typ', 'JWT', 'kid', kid)) $$;
CREATE FUNCTION iso.claims(tenant text, role text DEFAULT 'sales', extra jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_strip_nulls(jsonb_build_object('tenant', tenant,
               'sub', 'u-' || coalesce(tenant, 'platform'), 'role', role)) || extra $$;
CREATE FUNCTION iso.tok(tenant text, role text DEFAULT 'sales', extra jsonb DEFAULT '{}')
RETURNS text LANGUAGE sql AS $$ SELECT iso.jwt(iso.hdr(), iso.claims(tenant, role, extra)) $$;
CREATE FUNCTION iso.now_s() RETURNS bigint LANGUAGE sql
AS $$ SELECT extract(epoch FROM clock_timestamp())::bigint $$;
-- SQLSTATE of set_context(token), or 'ok:<tenant>'
CREATE FUNCTION iso.outcome(token text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN 'ok:' || coalesce(autora.set_context(token) ->> 'tenant', '<none>');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE;
END $$;
-- everything an error tells the user: message, detail, hint, context
CREATE FUNCTION iso.error_text(token text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    m text; d text; h text; c text;
BEGIN
    PERFORM autora.set_context(token);
    RETURN '';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL, h = PG_EXCEPTION_HINT;
    RETURN concat_ws(' | ', m, d, h);
END $$;

CREATE ROLE iso_app;
GRANT USAGE ON SCHEMA iso TO iso_app;

DO $$
DECLARE
    r record;
BEGIN
    PERFORM autora.revoke_key(kid) FROM autora.keys WHERE revoked_at IS NULL;
    PERFORM autora.add_key('iso-hs', 'HS256', iso.secret());
    PERFORM autora.add_key('iso-ed', 'EdDSA', iso.ed_pem());
    PERFORM autora.add_key('iso-old', 'HS256', iso.other_secret() || '-old');
    PERFORM autora.revoke_key('iso-old');
    PERFORM autora.add_tenant('iso-a', 'iso-g1', 'Store A');
    PERFORM autora.add_tenant('iso-b', 'iso-g1', 'Store B');
    PERFORM autora.add_tenant('iso-c', 'iso-g2', 'Store C');
    FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
             WHERE c.relnamespace = pg_my_temp_schema() AND c.relkind IN ('r', 'S') LOOP
        EXECUTE format('GRANT ALL ON %s TO iso_app', r.rel);
    END LOOP;
END $$;

SET ROLE iso_app;

-- ------------------------------------------------------------------ honest tokens
SELECT is(iso.outcome(iso.tok('iso-a')), 'ok:iso-a', 'honest: HS256 token with kid sets the context');
SELECT is(iso.outcome(iso.jwt('{"alg": "HS256"}', iso.claims('iso-a'))), 'ok:iso-a',
    'honest: HS256 token without kid uses the single HS256 key');
SELECT is(iso.outcome(iso.tok('iso-a', 'sales', jsonb_build_object('exp', iso.now_s() - 10))), 'ok:iso-a',
    'honest: expired 10 s ago is inside the 30 s leeway');
SELECT is(iso.outcome(iso.tok('iso-a', 'sales', jsonb_build_object('nbf', iso.now_s() + 10))), 'ok:iso-a',
    'honest: valid in 10 s is inside the 30 s leeway');
SELECT is(iso.outcome(iso.tok('iso-a', 'sales', jsonb_build_object('exp', iso.now_s() + 600,
            'nbf', iso.now_s() - 600, 'iat', iso.now_s(), 'iss', 'dms', 'email', 'a@example.com',
            'ip', '203.0.113.7', 'ua', 'Mozilla/5.0', 'endpoint', '/deals', 'method', 'GET', 'req', 'r-1'))),
    'ok:iso-a', 'honest: a token with every optional claim is accepted');

-- ------------------------------------------------------------------ time
SELECT is(iso.outcome(iso.tok('iso-b', 'sales', jsonb_build_object('exp', iso.now_s() - 3600))), 'ZA003',
    'expired an hour ago: ZA003');
SELECT is(iso.outcome(iso.tok('iso-b', 'sales', jsonb_build_object('exp', iso.now_s() - 45))), 'ZA003',
    'expired 45 s ago (beyond the leeway): ZA003');
SELECT is(iso.outcome(iso.tok('iso-b', 'sales', jsonb_build_object('nbf', iso.now_s() + 3600))), 'ZA003',
    'not valid for another hour: ZA003');
SELECT is(iso.outcome(iso.tok('iso-b', 'sales', jsonb_build_object('exp', (iso.now_s() + 600)::text))), 'ZA002',
    'exp as a string: ZA002');
SELECT is(iso.outcome(iso.tok('iso-b', 'sales', jsonb_build_object('nbf', jsonb_build_object('t', 1)))), 'ZA002',
    'nbf as an object: ZA002');

-- ------------------------------------------------------------------ tampering
SELECT iso.tok('iso-a') AS tok_a \gset
SELECT is(iso.outcome(split_part(:'tok_a', '.', 1) || '.' || iso.b64(iso.claims('iso-b')::text) || '.'
                      || split_part(:'tok_a', '.', 3)), 'ZA002',
    'payload tenant changed to iso-b, signature kept: ZA002');
SELECT is(iso.outcome(split_part(:'tok_a', '.', 1) || '.' || iso.b64(iso.claims('iso-a', 'platform_owner')::text) || '.'
                      || split_part(:'tok_a', '.', 3)), 'ZA002',
    'payload role raised to platform_owner, signature kept: ZA002');
SELECT is(iso.outcome(iso.b64(iso.hdr('iso-old')::text) || '.' || split_part(:'tok_a', '.', 2) || '.'
                      || split_part(:'tok_a', '.', 3)), 'ZA002',
    'header kid swapped, signature kept: ZA002');
SELECT is(iso.outcome(split_part(:'tok_a', '.', 1) || '.' || split_part(:'tok_a', '.', 2) || '.'
                      || translate(left(split_part(:'tok_a', '.', 3), 1), 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_',
                                   'BCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_A')
                      || substr(split_part(:'tok_a', '.', 3), 2)), 'ZA002',
    'first signature character changed: ZA002');
SELECT is(iso.outcome(left(:'tok_a', length(:'tok_a') - 4)), 'ZA002', 'signature truncated: ZA002');
SELECT is(iso.outcome(split_part(:'tok_a', '.', 1) || '.' || split_part(:'tok_a', '.', 2) || '.'), 'ZA002',
    'signature removed: ZA002');
SELECT is(iso.outcome(iso.jwt(iso.hdr(), iso.claims('iso-b'), iso.other_secret())), 'ZA002',
    'signed with an unregistered secret: ZA002');
SELECT is(iso.outcome(iso.jwt(iso.hdr('iso-nope'), iso.claims('iso-b'))), 'ZA002', 'unknown kid: ZA002');
SELECT is(iso.outcome(iso.jwt(iso.hdr('iso-old'), iso.claims('iso-b'), iso.other_secret() || '-old')), 'ZA002',
    'correctly signed with a revoked key: ZA002');
SELECT is(iso.outcome(iso.jwt(iso.hdr($$iso-hs' OR '1'='1$$), iso.claims('iso-b'))), 'ZA002',
    'kid carrying SQL: ZA002');

-- ------------------------------------------------------------------ algorithms
SELECT is(iso.outcome(iso.b64('{"alg": "none", "typ": "JWT"}') || '.' || iso.b64(iso.claims('iso-b')::text) || '.'),
    'ZA002', 'alg none, no signature: ZA002');
SELECT is(iso.outcome(iso.jwt('{"alg": "none", "kid": "iso-hs"}', iso.claims('iso-b'))), 'ZA002',
    'alg none with a kid and an HMAC signature: ZA002');
SELECT is(iso.outcome(iso.jwt('{"alg": "NONE"}', iso.claims('iso-b'))), 'ZA002', 'alg NONE: ZA002');
SELECT is(iso.outcome(iso.jwt('{"alg": "HS512", "kid": "iso-hs"}', iso.claims('iso-b'))), 'ZA002',
    'alg HS512: ZA002');
SELECT is(iso.outcome(iso.jwt('{"kid": "iso-hs"}', iso.claims('iso-b'))), 'ZA002', 'no alg: ZA002');
SELECT is(iso.outcome(iso.jwt('{"alg": "HS256", "kid": "iso-ed"}', iso.claims('iso-b'), iso.ed_pem())), 'ZA002',
    'alg confusion: HS256 keyed with the Ed25519 public PEM, kid of the EdDSA key: ZA002');
SELECT is(iso.outcome(iso.jwt('{"alg": "HS256"}', iso.claims('iso-b'), iso.ed_pem())), 'ZA002',
    'alg confusion without kid: HS256 keyed with the Ed25519 public PEM: ZA002');
SELECT is(iso.outcome(iso.jwt('{"alg": "EdDSA", "kid": "iso-hs"}', iso.claims('iso-b'))), 'ZA002',
    'EdDSA header naming an HS256 key: ZA002');
SELECT is(iso.outcome(iso.jwt('{"alg": "HS256", "kid": "iso-hs", "crit": ["exp"]}', iso.claims('iso-b'))), 'ZA002',
    'critical header extension: ZA002');

-- ------------------------------------------------------------------ malformed
SELECT is(iso.outcome('garbage'), 'ZA002', 'not a JWT: ZA002');
SELECT is(iso.outcome(''), 'ZA002', 'empty token: ZA002');
SELECT is(iso.outcome(NULL), 'ZA002', 'NULL token: ZA002');
SELECT is(iso.outcome('..'), 'ZA002', 'three empty parts: ZA002');
SELECT is(iso.outcome(split_part(:'tok_a', '.', 1) || '.' || split_part(:'tok_a', '.', 2)), 'ZA002',
    'two parts: ZA002');
SELECT is(iso.outcome(:'tok_a' || '.' || split_part(:'tok_a', '.', 3)), 'ZA002', 'four parts: ZA002');
SELECT is(iso.outcome(:'tok_a' || E'\n'), 'ZA002', 'trailing newline: ZA002');
SELECT is(iso.outcome('@@@@.' || split_part(:'tok_a', '.', 2) || '.' || split_part(:'tok_a', '.', 3)), 'ZA002',
    'header is not base64url: ZA002');
SELECT is(iso.outcome(iso.sign_parts(iso.b64('not json'), iso.b64(iso.claims('iso-a')::text))), 'ZA002',
    'header is not JSON: ZA002');
SELECT is(iso.outcome(iso.sign_parts(iso.b64('["HS256"]'), iso.b64(iso.claims('iso-a')::text))), 'ZA002',
    'header is a JSON array: ZA002');
SELECT is(iso.outcome(iso.sign_parts(iso.b64(iso.hdr()::text), iso.b64('{"tenant": "iso-a", '))), 'ZA002',
    'validly signed payload that is not JSON: ZA002');
SELECT is(iso.outcome(iso.sign_parts(iso.b64(iso.hdr()::text), iso.b64('["iso-a", "u", "sales"]'))), 'ZA002',
    'validly signed payload that is a JSON array: ZA002');
SELECT is(iso.outcome(iso.sign_parts(iso.b64(iso.hdr()::text), iso.b64url('\x7b2274656e616e74223a2022ff227d'::bytea))),
    'ZA002', 'validly signed payload that is not UTF-8: ZA002');
SELECT is(iso.outcome(iso.sign_parts(iso.b64(iso.hdr()::text),
                                     iso.b64url('\x7b2274656e616e74223a2022697300227d'::bytea))),
    'ZA002', 'validly signed payload with a NUL byte: ZA002');
SELECT is(iso.outcome(iso.b64('{"alg": "HS256", "kid": "iso-hs", "x": 1e200000}') || '.' ||
                      split_part(:'tok_a', '.', 2) || '.' || split_part(:'tok_a', '.', 3)), 'ZA002',
    'unsigned header with a number beyond numeric range (parsed before the signature check): ZA002');
SELECT is(iso.outcome(iso.sign_parts(iso.b64(iso.hdr()::text),
                                     iso.b64('{"tenant": "iso-a", "sub": "u", "role": "sales", "exp": 1e200000}'))),
    'ZA002', 'validly signed payload with a number beyond numeric range: ZA002');
SELECT is(iso.outcome(iso.tok('iso-a', 'sales', '{"tenant": {"id": "iso-b"}}')), 'ZA002',
    'tenant claim that is an object: ZA002');
SELECT is(iso.outcome(iso.jwt(iso.hdr(), '{"tenant": "iso-a", "role": "sales"}')), 'ZA002',
    'no sub claim: ZA002');
SELECT is(iso.outcome(iso.jwt(iso.hdr(), '{"tenant": "iso-a", "sub": "u"}')), 'ZA002', 'no role claim: ZA002');
SELECT is(iso.outcome(iso.tok('iso-a', 'sales', '{"ip": "not-an-address"}')), 'ZA002',
    'ip claim that is not an address: ZA002');
SELECT is(iso.outcome(iso.tok('iso-a', 'sales', jsonb_build_object('pad', repeat('x', 20000)))), 'ZA002',
    'oversized (20 kB) token: ZA002');

-- ------------------------------------------------------------------ unknown store / role, scopes
SELECT is(iso.outcome(iso.tok('iso-zz')), 'ZA004', 'validly signed token for an unknown store: ZA004');
SELECT is(iso.outcome(iso.tok('iso-a', 'superhero')), 'ZA004', 'validly signed token for an unknown role: ZA004');
SELECT is(iso.outcome(iso.tok(NULL, 'sales')), 'ZA004', 'tenant-scope role without a tenant: ZA004');
SELECT is(iso.outcome(iso.tok('iso-a', 'sales', '{"scope": "platform", "group": "iso-g2", "via": "trusted"}'))
          || ':' || array_to_string(autora.visible_tenants(), ','),
    'ok:iso-a:iso-a', 'scope/group/via claims in a token are ignored: a sales token still sees one store');
SELECT is(iso.outcome(iso.tok('iso-a', 'group_admin')) || ':' || array_to_string(autora.visible_tenants(), ','),
    'ok:iso-a:iso-a,iso-b', 'honest: group admin of iso-g1 sees the stores of its group');
SELECT is(iso.outcome(iso.tok(NULL, 'platform_owner')), 'ok:<none>', 'honest: platform owner needs no tenant');
SELECT ok(autora.visible_tenants() @> ARRAY['iso-a', 'iso-b', 'iso-c'], 'honest: platform scope sees every store');

-- ------------------------------------------------------------------ failures never switch the context
SELECT iso.outcome(iso.tok('iso-a')) AS back_to_a \gset
SELECT is(iso.outcome(iso.tok('iso-b', 'sales', jsonb_build_object('exp', iso.now_s() - 3600)))
          || ':' || autora.tenant() || ':' || autora.actor(), 'ZA003:iso-a:u-iso-a',
    'a refused token leaves the previous context in force');

-- ------------------------------------------------------------------ ambiguous keys
RESET ROLE;
SELECT autora.add_key('iso-hs2', 'HS256', iso.other_secret()) IS NULL AS second_hs \gset
SET ROLE iso_app;
SELECT is(iso.outcome(iso.jwt('{"alg": "HS256"}', iso.claims('iso-a'))), 'ZA002',
    'no kid while two HS256 keys are registered: ZA002 (no guessing)');

-- ------------------------------------------------------------------ messages never echo secrets
SELECT is((SELECT count(*) FROM (VALUES
              (iso.jwt(iso.hdr(), iso.claims('iso-b'), iso.other_secret())),
              (iso.jwt('{"alg": "HS256", "kid": "iso-ed"}', iso.claims('iso-b'), iso.ed_pem())),
              (iso.tok('iso-b', 'sales', jsonb_build_object('exp', iso.now_s() - 3600))),
              (:'tok_a' || 'x'),
              ('garbage.' || iso.secret() || '.x')) AS t(tok)
           WHERE strpos(iso.error_text(tok), iso.secret()) > 0
              OR strpos(iso.error_text(tok), iso.other_secret()) > 0
              OR strpos(iso.error_text(tok), 'MCowBQYDK2VwAyEA') > 0
              OR (length(split_part(tok, '.', 3)) >= 16 AND strpos(iso.error_text(tok), split_part(tok, '.', 3)) > 0)
              OR strpos(iso.error_text(tok), tok) > 0
              OR iso.error_text(tok) = ''), 0::bigint,
    'error messages name the problem but never contain the token, its signature or a key');

SELECT * FROM finish();
ROLLBACK;
