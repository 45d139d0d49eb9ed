/*-------------------------------------------------------------------------
 * token.c
 *	  Verifies context tokens: JWT compact serialization signed with HS256
 *	  (HMAC-SHA256, shared secret) or EdDSA (Ed25519, PEM public key), keys
 *	  from autora.keys selected by the header's kid.
 *
 * The header's alg must equal the key's algorithm, so "none" and algorithm
 * confusion (an HS256 token "signed" with a public key) are refused.  All
 * parsing is non-throwing, the JSON checked against limits that keep the
 * parser and jsonb_in from raising, so every malformed input, before or
 * after the signature, ends in ZA002 with a message that names the problem
 * and never the token or the key.
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
#include "catalog/namespace.h"
#include "common/jsonapi.h"
#include "executor/tuptable.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "encoding.h"
#include "objects.h"
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
 * Limits on the JSON of a token.  Everything the parser or jsonb_in could
 * raise on is checked first, so that a malformed token ends in ZA002 and
 * nothing else:
 * - numbers become numerics, and numeric_in raises 22003 on a huge value or
 *   a huge exponent either way (1e-200000); ids and NumericDates are short
 *   and moderate, so anything longer, beyond the bigint range or with an
 *   exponent beyond TOKEN_NUMBER_MAX_EXPONENT is refused;
 * - the parser recurses once per nesting level and raises 54001 when the
 *   stack runs out; claims are nested a few levels at most.
 */
#define TOKEN_NUMBER_MAX_CHARS 32
#define TOKEN_NUMBER_MAX_EXPONENT 1000
#define TOKEN_JSON_MAX_DEPTH 64

typedef enum JsonProblem
{
	TOKEN_JSON_FINE,
	TOKEN_JSON_BAD_NUMBER,
	TOKEN_JSON_DUPLICATE_MEMBER
} JsonProblem;

typedef struct JsonCheck
{
	JsonProblem problem;		/* the first one found */
	List	   *objects;		/* member names of each open object,
								 * innermost first */
} JsonCheck;

/*
 * Can the database encoding hold this character?  Asked of the conversion
 * function itself, in its no-error mode: pg_unicode_to_server(), which the
 * JSON lexer calls for \u escapes, raises instead (22P05, or 0A000 where
 * there is no conversion, as in SQL_ASCII).
 */
static bool
CharacterFitsDatabase(pg_wchar code)
{
	int			encoding = GetDatabaseEncoding();
	unsigned char utf8[8];
	unsigned char converted[64];
	int			len;
	Oid			proc;

	if (code <= 0x7F || encoding == PG_UTF8)
		return true;
	proc = FindDefaultConversionProc(PG_UTF8, encoding);
	if (!OidIsValid(proc))
		return false;
	unicode_to_utf8(code, utf8);
	len = pg_utf_mblen(utf8);
	return pg_do_encoding_conversion_buf(proc, PG_UTF8, encoding, utf8, len,
										 converted, sizeof(converted), true) == len;
}

/* The code of a \uXXXX escape at p (len bytes left), or -1. */
static int32
UnicodeEscape(const char *p, size_t len)
{
	char		hex[5];

	if (len < 6 || p[0] != '\\' || p[1] != 'u')
		return -1;
	memcpy(hex, p + 2, 4);
	hex[4] = '\0';
	if (strspn(hex, "0123456789abcdefABCDEF") != 4)
		return -1;
	return (int32) strtol(hex, NULL, 16);
}

/*
 * Scans a JSON text for what the parser itself would raise on: nesting
 * deeper than TOKEN_JSON_MAX_DEPTH, and, in a database whose encoding is not
 * UTF8, a \u escape of a character that encoding cannot hold (escapes the
 * lexer refuses anyway, such as \u0000 or a lone surrogate, are left to it).
 * Every server encoding is ASCII-safe, so quotes, backslashes and brackets
 * are single bytes.  Returns the problem as a message part, or NULL.
 */
static const char *
PrescanJson(const char *text, size_t len)
{
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	bool		in_string = false;
	int			depth = 0;

	for (size_t i = 0; i < len; i++)
	{
		char		c = text[i];

		if (in_string)
		{
			int32		code;

			if (c == '"')
				in_string = false;
			else if (c != '\\' || i + 1 == len)
				continue;
			else if (utf8 || (code = UnicodeEscape(text + i, len - i)) < 0)
				i++;			/* the escaped character never ends the string */
			else
			{
				int32		low = UnicodeEscape(text + i + 6, len - i - 6);

				if (is_utf16_surrogate_first(code) && low >= 0 && is_utf16_surrogate_second(low))
				{
					code = surrogate_pair_to_codepoint(code, low);
					i += 6;
				}
				if (!is_utf16_surrogate_first(code) && !is_utf16_surrogate_second(code) &&
					code != 0 && !CharacterFitsDatabase(code))
					return "escapes a character the database encoding cannot hold";
				i += 5;
			}
		}
		else if (c == '"')
			in_string = true;
		else if (c == '[' || c == '{')
		{
			if (++depth > TOKEN_JSON_MAX_DEPTH)
				return "is nested too deeply";
		}
		else if (c == ']' || c == '}')
			depth--;
	}
	return NULL;
}

/* JsonSemAction scalar callback: is a number within the limits above? */
static void
CheckNumberToken(void *state, char *token, JsonTokenType type)
{
	JsonCheck  *check = (JsonCheck *) state;
	const char *exponent;
	double		d;

	if (type != JSON_TOKEN_NUMBER || check->problem != TOKEN_JSON_FINE)
		return;
	if (strlen(token) > TOKEN_NUMBER_MAX_CHARS)
	{
		check->problem = TOKEN_JSON_BAD_NUMBER;
		return;
	}
	exponent = strpbrk(token, "eE");
	if (exponent != NULL)
	{
		long		e;

		errno = 0;
		e = strtol(exponent + 1, NULL, 10);
		if (errno != 0 || e > TOKEN_NUMBER_MAX_EXPONENT || e < -TOKEN_NUMBER_MAX_EXPONENT)
		{
			check->problem = TOKEN_JSON_BAD_NUMBER;
			return;
		}
	}
	d = strtod(token, NULL);
	if (!isfinite(d) || fabs(d) > 1e19)
		check->problem = TOKEN_JSON_BAD_NUMBER;
}

/* JsonSemAction callbacks collecting each object's member names. */
static void
CheckObjectStart(void *state)
{
	JsonCheck  *check = (JsonCheck *) state;

	check->objects = lcons(NIL, check->objects);
}

static void
CheckMemberName(void *state, char *fname, bool isnull)
{
	JsonCheck  *check = (JsonCheck *) state;

	linitial(check->objects) = lappend(linitial(check->objects), fname);
}

static int
CompareNames(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/*
 * A member named twice: jsonb keeps the last one, and an issuer or a gateway
 * that read the first would have checked other claims than ours (RFC 7515
 * and 7519 allow refusing such tokens).  Names compare after unescaping.
 */
static void
CheckObjectEnd(void *state)
{
	JsonCheck  *check = (JsonCheck *) state;
	List	   *names = linitial(check->objects);

	list_sort(names, CompareNames);
	for (int i = 1; i < list_length(names); i++)
		if (strcmp(list_nth(names, i - 1), list_nth(names, i)) == 0 &&
			check->problem == TOKEN_JSON_FINE)
			check->problem = TOKEN_JSON_DUPLICATE_MEMBER;
	list_free(names);
	check->objects = list_delete_first(check->objects);
}

/*
 * Parses a decoded segment as a JSON object.  Nothing here raises anything
 * but ZA002: the checks above run before jsonb_in, which then cannot fail.
 */
static Jsonb *
ParseJsonObject(Bytes *b, const char *what)
{
	JsonLexContext *lex;
	JsonSemAction sem;
	JsonCheck	check;
	char	   *text = palloc(b->len + 1);
	const char *problem;
	Jsonb	   *jb;

	memcpy(text, b->data, b->len);
	text[b->len] = '\0';
	if (strlen(text) != b->len || !pg_verifymbstr(text, b->len, true))
		BadToken(psprintf("the %s is not valid text", what));
	if ((problem = PrescanJson(text, b->len)) != NULL)
		BadToken(psprintf("the %s %s", what, problem));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &check;
	sem.scalar = CheckNumberToken;
	sem.object_start = CheckObjectStart;
	sem.object_field_start = CheckMemberName;
	sem.object_end = CheckObjectEnd;
	check.problem = TOKEN_JSON_FINE;
	check.objects = NIL;
	lex = makeJsonLexContextCstringLen(text, b->len, GetDatabaseEncoding(), true);
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS)
		BadToken(psprintf("the %s is not valid JSON", what));
	if (check.problem == TOKEN_JSON_BAD_NUMBER)
		BadToken(psprintf("a number in the %s is out of range", what));
	if (check.problem == TOKEN_JSON_DUPLICATE_MEMBER)
		BadToken(psprintf("the %s has a member named twice", what));
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
	const AutoraOids *oids = AutoraGetOids(false);
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

/* An Ed25519 key from its PEM text; NULL if it is not one. */
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

/* Does sig sign the input under the Ed25519 public key in pem? */
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
