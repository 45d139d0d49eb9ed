/*-------------------------------------------------------------------------
 * vault.c
 *	  PII columns of protected tables.  The ledger records a keyed digest,
 *	  HMAC-SHA256 under a per-database key, and the clear value goes to
 *	  autora.pii_vault, one row per entry.  Erasing a vault row (the right
 *	  to be forgotten) leaves every entry hash intact, so the chain still
 *	  verifies; the key makes digests of small value spaces (e-mail
 *	  addresses, phone numbers) useless to whoever copies the ledger alone.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/snapmgr.h"

#include "ledger.h"
#include "vault.h"
#include "writer.h"

#define VAULT_KEY_LEN	32
#define DIGEST_PREFIX	"hmac-sha256:"

static EVP_MAC_CTX *keyed_mac = NULL;	/* initialised with the key */
static Oid	keyed_relid = InvalidOid;	/* the key table it was read from */

/*
 * Set while the key in keyed_mac is one this session made and its
 * transaction has not ended: if that transaction aborts the key is gone,
 * so once it ends the key is read again.
 */
static LocalTransactionId key_made_in = InvalidLocalTransactionId;

/* The key in autora.vault_key, or NULL when none was made yet. */
static bytea *
ReadKey(Oid relid, Snapshot snapshot)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	bytea	   *key = NULL;

	if (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, 2, &isnull);

		if (!isnull)
			key = DatumGetByteaPCopy(d);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return key;
}

/*
 * The database's PII key, made on first use.  Making it takes a
 * self-conflicting lock held to commit, so concurrent first users wait for
 * one key instead of making two; this happens once per database.
 */
static bytea *
GetOrCreateKey(const LedgerOids *oids)
{
	bytea	   *key = ReadKey(oids->vault_key, GetActiveSnapshot());
	Datum		values[2];
	bool		nulls[2] = {false, false};

	if (key != NULL)
		return key;
	LockRelationOid(oids->vault_key, ShareRowExclusiveLock);
	key = ReadKey(oids->vault_key, GetLatestSnapshot());
	if (key != NULL)
		return key;

	key = palloc(VARHDRSZ + VAULT_KEY_LEN);
	SET_VARSIZE(key, VARHDRSZ + VAULT_KEY_LEN);
	if (!pg_strong_random(VARDATA(key), VAULT_KEY_LEN))
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not generate a random key")));
	values[0] = Int16GetDatum(1);
	values[1] = PointerGetDatum(key);
	WriterInsert(oids->vault_key, values, nulls);
	WriterFlushAll();
	key_made_in = MyProc->lxid;
	return key;
}

/* Keys the MAC context with the database's PII key. */
static void
LoadKey(const LedgerOids *oids)
{
	bytea	   *key = GetOrCreateKey(oids);
	EVP_MAC    *mac;
	OSSL_PARAM	params[2];

	if (VARSIZE_ANY_EXHDR(key) != VAULT_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the autora PII key is damaged"),
				 errhint("autora.vault_key must hold one 32-byte key.")));

	if (keyed_mac != NULL)
		EVP_MAC_CTX_free(keyed_mac);
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	keyed_mac = mac ? EVP_MAC_CTX_new(mac) : NULL;
	EVP_MAC_free(mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (keyed_mac == NULL ||
		EVP_MAC_init(keyed_mac, (unsigned char *) VARDATA_ANY(key), VAULT_KEY_LEN, params) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("could not initialise HMAC-SHA256 from OpenSSL")));
	keyed_relid = oids->vault_key;
}

char *
VaultDigest(const char *value)
{
	const LedgerOids *oids = LedgerGetOids(false);
	EVP_MAC_CTX *ctx;
	unsigned char out[EVP_MAX_MD_SIZE];
	size_t		outlen = 0;
	char	   *result;

	if (key_made_in != InvalidLocalTransactionId && key_made_in != MyProc->lxid)
	{
		key_made_in = InvalidLocalTransactionId;
		keyed_relid = InvalidOid;
	}
	if (keyed_mac == NULL || keyed_relid != oids->vault_key)
		LoadKey(oids);

	ctx = EVP_MAC_CTX_dup(keyed_mac);
	if (ctx == NULL ||
		EVP_MAC_update(ctx, (const unsigned char *) value, strlen(value)) != 1 ||
		EVP_MAC_final(ctx, out, &outlen, sizeof(out)) != 1 || outlen != 32)
	{
		EVP_MAC_CTX_free(ctx);
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("HMAC-SHA256 computation failed in OpenSSL")));
	}
	EVP_MAC_CTX_free(ctx);

	result = palloc(sizeof(DIGEST_PREFIX) + 2 * outlen);
	strcpy(result, DIGEST_PREFIX);
	hex_encode((const char *) out, outlen, result + sizeof(DIGEST_PREFIX) - 1);
	result[sizeof(DIGEST_PREFIX) - 1 + 2 * outlen] = '\0';
	return result;
}

void
VaultStore(int64 entry_id, const char *tenant_id, Jsonb *clear)
{
	const LedgerOids *oids = LedgerGetOids(false);
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = Int64GetDatum(entry_id);
	if (tenant_id)
		values[1] = CStringGetTextDatum(tenant_id);
	else
		nulls[1] = true;
	values[2] = JsonbPGetDatum(clear);
	WriterInsert(oids->vault, values, nulls);
}
