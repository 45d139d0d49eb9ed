/*-------------------------------------------------------------------------
 * vault.c
 *	  PII columns of protected tables (ledger format 2).  An entry's images
 *	  hold, for each PII value, a commitment: "pii:" and the first 128 bits
 *	  of HMAC-SHA256 of the value's text under a random salt drawn for that
 *	  entry, in base64url.  The salt and the clear values go to
 *	  autora.pii_vault, one row per entry that holds PII.
 *
 * Erasing that row leaves commitments nobody can open or link: the salt
 * was random and is gone, so even whoever holds every key and row of the
 * database cannot try the few million phone numbers against them, as they
 * could against a digest under a long-lived key.  Nor do two entries of one
 * value look alike while the row exists.  The entry hash covers the
 * commitment, never the clear value, so erasure leaves the chain intact,
 * and the commitment lets an auditor check a clear value the vault shows.
 *
 * Why the clear values take a tuple of their own: they must be erasable,
 * and the ledger is append-only.  Only entries whose images hold PII write
 * one: an INSERT or DELETE of a row with PII, an UPDATE that changes a PII
 * column.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

/*
 * HMAC is computed from SHA-256 states that absorbed the salt's pads once
 * per entry (RFC 2104), copied per value: OpenSSL's EVP_MAC allocates and
 * keys a context per call.  The SHA256_* functions are deprecated in
 * OpenSSL 3 in favour of EVP, which cannot copy a state without allocating;
 * they are the same code underneath, and twice as fast on short inputs
 * (see the numbers in encoding.c).
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "common/base64.h"
#include "utils/builtins.h"

#include "objects.h"
#include "vault.h"
#include "writer.h"

#define HMAC_BLOCK_LEN		64
#define COMMITMENT_BITS		128

struct PiiSalt
{
	uint8		bytes[PII_SALT_LEN];
	SHA256_CTX	inner_pad;		/* states after the salt's inner and outer pads */
	SHA256_CTX	outer_pad;
};

/* A fresh random salt, with the SHA-256 states of its HMAC pads. */
/*
 * Random bytes for salts, drawn from the strong random source 4 kB at a
 * time: one call per entry was about 2% of a bulk INSERT (each call
 * also asks the kernel for the process id).  Each salt's bytes are wiped
 * from the pool as they are handed out.
 */
#define SALT_POOL_LEN	4096
static uint8 salt_pool[SALT_POOL_LEN];
static int	salt_pool_used = SALT_POOL_LEN;

static void
TakeRandomBytes(uint8 *out, int len)
{
	if (salt_pool_used + len > SALT_POOL_LEN)
	{
		if (!pg_strong_random(salt_pool, SALT_POOL_LEN))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random PII salt")));
		salt_pool_used = 0;
	}
	memcpy(out, salt_pool + salt_pool_used, len);
	explicit_bzero(salt_pool + salt_pool_used, len);
	salt_pool_used += len;
}

PiiSalt *
PiiSaltDraw(void)
{
	PiiSalt    *salt = palloc(sizeof(PiiSalt));
	unsigned char pad[HMAC_BLOCK_LEN];

	TakeRandomBytes(salt->bytes, PII_SALT_LEN);

	/* a salt shorter than the block is zero-padded, not hashed */
	memset(pad, 0, sizeof(pad));
	memcpy(pad, salt->bytes, PII_SALT_LEN);
	for (int i = 0; i < HMAC_BLOCK_LEN; i++)
		pad[i] ^= 0x36;
	SHA256_Init(&salt->inner_pad);
	SHA256_Update(&salt->inner_pad, pad, HMAC_BLOCK_LEN);
	for (int i = 0; i < HMAC_BLOCK_LEN; i++)
		pad[i] ^= 0x36 ^ 0x5c;
	SHA256_Init(&salt->outer_pad);
	SHA256_Update(&salt->outer_pad, pad, HMAC_BLOCK_LEN);
	explicit_bzero(pad, sizeof(pad));
	return salt;
}

char *
PiiCommit(const PiiSalt *salt, const char *value)
{
	SHA256_CTX	ctx;
	unsigned char inner[SHA256_DIGEST_LENGTH];
	unsigned char out[SHA256_DIGEST_LENGTH];
	char		encoded[64];
	int			len;

	ctx = salt->inner_pad;
	SHA256_Update(&ctx, value, strlen(value));
	SHA256_Final(inner, &ctx);
	ctx = salt->outer_pad;
	SHA256_Update(&ctx, inner, sizeof(inner));
	SHA256_Final(out, &ctx);

	len = pg_b64_encode((const char *) out, COMMITMENT_BITS / 8, encoded, sizeof(encoded));
	if (len < 0)
		elog(ERROR, "autora: could not encode a PII commitment");
	/* base64url without padding (RFC 4648, section 5) */
	while (len > 0 && encoded[len - 1] == '=')
		len--;
	for (int i = 0; i < len; i++)
		encoded[i] = encoded[i] == '+' ? '-' : encoded[i] == '/' ? '_' : encoded[i];
	return psprintf("%s%.*s", PII_COMMITMENT_PREFIX, len, encoded);
}

void
VaultStore(int64 entry_id, const char *tenant_id, const PiiSalt *salt, Jsonb *clear)
{
	const AutoraOids *oids = AutoraGetOids(false);
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	bytea	   *salt_datum = palloc(VARHDRSZ + PII_SALT_LEN);

	SET_VARSIZE(salt_datum, VARHDRSZ + PII_SALT_LEN);
	memcpy(VARDATA(salt_datum), salt->bytes, PII_SALT_LEN);
	values[0] = Int64GetDatum(entry_id);
	if (tenant_id)
		values[1] = CStringGetTextDatum(tenant_id);
	else
		nulls[1] = true;
	values[2] = PointerGetDatum(salt_datum);
	values[3] = JsonbPGetDatum(clear);
	WriterInsert(oids->vault, values, nulls);
}
