/*-------------------------------------------------------------------------
 * token.c
 *	  Verifies context tokens: JWT compact serialization signed with HS256
 *	  (HMAC-SHA256, shared secret) or EdDSA (Ed25519, PEM public key), keys
 *	  from autora.keys selected by the header's kid.
 *
 * The header's alg must equal the key's algorithm, so "none" and algorithm
 * confusion (an HS256 token "signed" with a public key) are refused.  All
 * parsing is non-throwing until the signature has been checked, so every
 * malformed input ends in ZA002 with a message that names the problem and
 * never the token or the key.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "access/table.h"
#include "access/tableam.h"
#include "common/jsonapi.h"
#include "executor/tuptable.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "encoding.h"
#include "ledger.h"
#include "token.h"

typedef struct Bytes
{
	unsigned char *data;
	size_t		len;
} Bytes;

static void
BadToken(const char *problem)
{
	ereport(ERROR,
			(errcode(ERRCODE_AUTORA_BAD_TOKEN),
			 errmsg("invalid context token: %s", problem),
			 errhint("Issue a token signed with a key registered by autora.add_key(); see the README for its claims.")));
}

/* base64url without padding (RFC 7515 section 2); false on a bad character. */
static bool
Base64UrlDecode(const char *in, size_t len, Bytes *out)
{
	uint32		acc = 0;
	int			bits = 0;

	out->data = palloc(len * 3 / 4 + 3);
	out->len = 0;
	if (len % 4 == 1)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		char		c = in[i];
		int			v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '-')
			v = 62;
		else if (c == '_')
			v = 63;
		else
			return false;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out->data[out->len++] = (acc >> bits) & 0xFF;
		}
	}
	/* leftover bits must be zero: one spelling per byte string */
	return (acc & ((1u << bits) - 1)) == 0;
}

/*
 * Numbers in a token become numerics; a huge one would make jsonb_in raise
 * 22003 before the signature is even checked.  Ids and NumericDates are
 * short, so anything longer, or beyond the bigint range, is refused.
 */
#define TOKEN_NUMBER_MAX_CHARS 32

typedef struct NumberCheck
{
	bool		bad;
} NumberCheck;

static void
CheckNumberToken(void *state, char *token, JsonTokenType type)
{
	NumberCheck *check = (NumberCheck *) state;
	double		d;

	if (type != JSON_TOKEN_NUMBER)
		return;
	d = strtod(token, NULL);
	if (strlen(token) > TOKEN_NUMBER_MAX_CHARS || !isfinite(d) || fabs(d) > 1e19)
		check->bad = true;
}

/* Parses a decoded segment as a JSON object without throwing on bad input. */
static Jsonb *
ParseJsonObject(Bytes *b, const char *what)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	NumberCheck check;
	char	   *text = palloc(b->len + 1);
	Jsonb	   *jb;

	memcpy(text, b->data, b->len);
	text[b->len] = '\0';
	if (strlen(text) != b->len || !pg_verifymbstr(text, b->len, true))
		BadToken(psprintf("the %s is not valid text", what));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &check;
	sem.scalar = CheckNumberToken;
	check.bad = false;
	lex = makeJsonLexContextCstringLen(text, b->len, GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		BadToken(psprintf("the %s is not valid JSON", what));
	if (check.bad)
		BadToken(psprintf("a number in the %s is out of range", what));
	jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		BadToken(psprintf("the %s is not a JSON object", what));
	return jb;
}

JsonbValue *
JsonbMember(Jsonb *jb, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	return findJsonbValueFromContainer(&jb->root, JB_FOBJECT, &k);
}

static char *
GetStringMember(Jsonb *jb, const char *key, const char *what)
{
	JsonbValue *v = JsonbMember(jb, key);

	if (v == NULL)
		return NULL;
	if (v->type != jbvString)
		BadToken(psprintf("the %s member \"%s\" is not a string", what, key));
	return pnstrdup(v->val.string.val, v->val.string.len);
}

/* A NumericDate claim (seconds since the epoch); false when absent. */
static bool
GetTimeClaim(Jsonb *payload, const char *key, double *seconds)
{
	JsonbValue *v = JsonbMember(payload, key);
	char	   *text;
	char	   *end;

	if (v == NULL || v->type == jbvNull)
		return false;
	if (v->type != jbvNumeric)
		BadToken(psprintf("claim \"%s\" is not a number", key));
	text = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	errno = 0;
	*seconds = strtod(text, &end);
	if (errno != 0 || *end != '\0' || !isfinite(*seconds))
		BadToken(psprintf("claim \"%s\" is out of range", key));
	return true;
}

typedef struct TokenKey
{
	char	   *alg;
	char	   *key;
} TokenKey;

/*
 * The verification key: by kid, or the only key of the token's algorithm
 * when the token names none.  Read straight from autora.keys: the caller
 * may be any role, and must never be able to read the keys itself.
 */
static bool
FindKey(const char *kid, const char *alg, TokenKey *found)
{
	const LedgerOids *oids = LedgerGetOids(false);
	Relation	rel = table_open(oids->keys, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, GetLatestSnapshot(), 0, NULL);
	int			matches = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		char	   *row_kid = TextDatumGetCString(slot_getattr(slot, 1, &isnull));
		char	   *row_alg = TextDatumGetCString(slot_getattr(slot, 2, &isnull));

		(void) slot_getattr(slot, 5, &isnull);
		if (!isnull)
			continue;			/* revoked */
		if (kid != NULL ? strcmp(kid, row_kid) != 0 : strcmp(alg, row_alg) != 0)
			continue;
		found->alg = row_alg;
		found->key = TextDatumGetCString(slot_getattr(slot, 3, &isnull));
		matches++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return matches == 1;
}

static EVP_PKEY *
ReadEd25519Key(const char *pem, bool private_key)
{
	BIO		   *bio = BIO_new_mem_buf(pem, -1);
	EVP_PKEY   *pkey = NULL;

	if (bio != NULL)
	{
		pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)
			: PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		BIO_free(bio);
	}
	if (pkey != NULL && EVP_PKEY_id(pkey) != EVP_PKEY_ED25519)
	{
		EVP_PKEY_free(pkey);
		pkey = NULL;
	}
	return pkey;
}

static bool
VerifyHS256(const char *secret, const char *signing_input, size_t input_len, Bytes *sig)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t		maclen = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
				  (const unsigned char *) signing_input, input_len,
				  mac, sizeof(mac), &maclen) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("HMAC-SHA256 computation failed in OpenSSL")));
	return sig->len == maclen && CRYPTO_memcmp(mac, sig->data, maclen) == 0;
}

static bool
VerifyEdDSA(const char *pem, const char *signing_input, size_t input_len, Bytes *sig)
{
	EVP_PKEY   *pkey = ReadEd25519Key(pem, false);
	EVP_MD_CTX *ctx;
	bool		ok;

	if (pkey == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("registered EdDSA key is not an Ed25519 public key in PEM form"),
				 errhint("Replace it with autora.add_key().")));
	ctx = EVP_MD_CTX_new();
	ok = ctx != NULL &&
		EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
		EVP_DigestVerify(ctx, sig->data, sig->len,
						 (const unsigned char *) signing_input, input_len) == 1;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return ok;
}

Jsonb *
TokenVerify(const char *token)
{
	size_t		len;
	const char *dot1;
	const char *dot2;
	Bytes		header_bytes,
				payload_bytes,
				sig;
	Jsonb	   *header;
	Jsonb	   *payload;
	char	   *alg;
	char	   *kid;
	TokenKey	key;
	bool		valid;
	double		now,
				t;

	if (token == NULL || (len = strlen(token)) == 0)
		BadToken("the token is empty");
	if (len > TOKEN_MAX_LENGTH)
		BadToken("the token is too long");
	dot1 = strchr(token, '.');
	dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
	if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
		BadToken("a JWT has three dot-separated parts");
	if (!Base64UrlDecode(token, dot1 - token, &header_bytes) ||
		!Base64UrlDecode(dot1 + 1, dot2 - dot1 - 1, &payload_bytes) ||
		!Base64UrlDecode(dot2 + 1, len - (dot2 + 1 - token), &sig))
		BadToken("a part is not base64url");

	header = ParseJsonObject(&header_bytes, "header");
	alg = GetStringMember(header, "alg", "header");
	kid = GetStringMember(header, "kid", "header");
	if (alg == NULL)
		BadToken("the header has no alg");
	if (strcmp(alg, "HS256") != 0 && strcmp(alg, "EdDSA") != 0)
		BadToken("only the HS256 and EdDSA algorithms are accepted");
	if (JsonbMember(header, "crit") != NULL)
		BadToken("critical header extensions are not supported");

	if (!FindKey(kid, alg, &key))
		BadToken(kid ? "unknown key id" : "the token names no key id and its algorithm has no single key");
	if (strcmp(key.alg, alg) != 0)
		BadToken("the token's algorithm does not match its key");

	/* the signing input is the first two parts as sent */
	if (strcmp(alg, "HS256") == 0)
		valid = VerifyHS256(key.key, token, dot2 - token, &sig);
	else
		valid = VerifyEdDSA(key.key, token, dot2 - token, &sig);
	if (!valid)
		BadToken("bad signature");

	payload = ParseJsonObject(&payload_bytes, "payload");
	now = (double) TimestampToUnixMicros(GetCurrentTimestamp()) / USECS_PER_SEC;
	if (GetTimeClaim(payload, "exp", &t) && now > t + TOKEN_LEEWAY_SECONDS)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_TOKEN_TIME),
				 errmsg("context token has expired"),
				 errhint("Issue a fresh token.")));
	if (GetTimeClaim(payload, "nbf", &t) && now < t - TOKEN_LEEWAY_SECONDS)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_TOKEN_TIME),
				 errmsg("context token is not valid yet"),
				 errhint("Check the issuer's clock; tokens are accepted up to %d seconds early.",
						 TOKEN_LEEWAY_SECONDS)));
	(void) GetTimeClaim(payload, "iat", &t);
	return payload;
}

void
TokenCheckKey(const char *alg, const char *key)
{
	EVP_PKEY   *pkey;

	if (strcmp(alg, "HS256") == 0)
	{
		if (strlen(key) < 32)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("an HS256 secret must be at least 32 bytes long"),
					 errhint("Use a random secret, e.g. from openssl rand -base64 48.")));
		return;
	}
	if (strcmp(alg, "EdDSA") != 0 && strcmp(alg, "EdDSA-sign") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unsupported key algorithm \"%s\"", alg),
				 errhint("Use HS256, EdDSA (token verification) or EdDSA-sign (digest signing).")));
	pkey = ReadEd25519Key(key, strcmp(alg, "EdDSA-sign") == 0);
	if (pkey == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("key is not an Ed25519 %s key in PEM form",
						strcmp(alg, "EdDSA") == 0 ? "public" : "private"),
				 errhint("Generate one with: openssl genpkey -algorithm ed25519 (and openssl pkey -pubout for the public key).")));
	EVP_PKEY_free(pkey);
}

PG_FUNCTION_INFO_V1(autora_check_key);
Datum
autora_check_key(PG_FUNCTION_ARGS)
{
	TokenCheckKey(text_to_cstring(PG_GETARG_TEXT_PP(0)), text_to_cstring(PG_GETARG_TEXT_PP(1)));
	PG_RETURN_VOID();
}
