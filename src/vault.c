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

/*
 * HMAC is computed from SHA-256 states that have absorbed the key pads
 * (RFC 2104), copied per value: the EVP_MAC interface allocates and keys a
 * context per call, which cost more than the hashing itself on bulk
 * captures.  The SHA256_* functions are deprecated in OpenSSL 3 in favour
 * of EVP, which cannot copy a state without allocating; they remain the
 * same optimised code underneath.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/snapmgr.h"

#include "objects.h"
#include "vault.h"
#include "writer.h"

#define VAULT_KEY_LEN	32
#define DIGEST_PREFIX	"hmac-sha256:"

#define HMAC_BLOCK_LEN	64

/* SHA-256 states after the inner and outer key pads, and the key's table */
static SHA256_CTX inner_pad;
static SHA256_CTX outer_pad;
static Oid	keyed_relid = InvalidOid;

/*
 * Set while the key in the pad states is one this session made and its
 * transaction has not ended: if that transaction aborts the key is gone,
 * so once it ends the key is read again.  key_made_by is the subtransaction
 * that wrote the key row, or the ancestor it was committed into: if it
 * aborts, the row is gone and the key is forgotten at once.
 */
static LocalTransactionId key_made_in = InvalidLocalTransactionId;
static SubTransactionId key_made_by = InvalidSubTransactionId;
static bool vault_callback_registered = false;

/* Forgets the key in the pad states: the next digest reads or makes one. */
static void
ForgetKey(void)
{
	key_made_in = InvalidLocalTransactionId;
	key_made_by = InvalidSubTransactionId;
	keyed_relid = InvalidOid;
	explicit_bzero(&inner_pad, sizeof(inner_pad));
	explicit_bzero(&outer_pad, sizeof(outer_pad));
}

/*
 * Follows the subtransaction that owns a key this session made: a commit
 * hands it to the parent, an abort (of it or an ancestor, whose children
 * abort first) takes the key row away, so the key must not be used again.
 */
static void
VaultSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					 SubTransactionId parentSubid, void *arg)
{
	if (key_made_in == InvalidLocalTransactionId || key_made_in != MyProc->lxid)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB && key_made_by == mySubid)
		key_made_by = parentSubid;
	else if (event == SUBXACT_EVENT_ABORT_SUB && key_made_by >= mySubid)
		ForgetKey();
}

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
GetOrCreateKey(const AutoraOids *oids)
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
	key_made_by = GetCurrentSubTransactionId();
	/* registered on first need, as postgres_fdw does its callbacks */
	if (!vault_callback_registered)
	{
		RegisterSubXactCallback(VaultSubXactCallback, NULL);
		vault_callback_registered = true;
	}
	return key;
}

/* Absorbs the database's PII key into the two pad states. */
static void
LoadKey(const AutoraOids *oids)
{
	bytea	   *key = GetOrCreateKey(oids);
	unsigned char pad[HMAC_BLOCK_LEN];

	if (VARSIZE_ANY_EXHDR(key) != VAULT_KEY_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the autora PII key is damaged"),
				 errhint("autora.vault_key must hold one 32-byte key.")));

	/* a 32-byte key is shorter than the block: zero-padded, not hashed */
	memset(pad, 0, sizeof(pad));
	memcpy(pad, VARDATA_ANY(key), VAULT_KEY_LEN);
	for (int i = 0; i < HMAC_BLOCK_LEN; i++)
		pad[i] ^= 0x36;
	SHA256_Init(&inner_pad);
	SHA256_Update(&inner_pad, pad, HMAC_BLOCK_LEN);
	for (int i = 0; i < HMAC_BLOCK_LEN; i++)
		pad[i] ^= 0x36 ^ 0x5c;
	SHA256_Init(&outer_pad);
	SHA256_Update(&outer_pad, pad, HMAC_BLOCK_LEN);
	explicit_bzero(pad, sizeof(pad));
	keyed_relid = oids->vault_key;
}

char *
VaultDigest(const char *value)
{
	const AutoraOids *oids = AutoraGetOids(false);
	SHA256_CTX	ctx;
	unsigned char inner[SHA256_DIGEST_LENGTH];
	unsigned char out[SHA256_DIGEST_LENGTH];
	char	   *result;

	if (key_made_in != InvalidLocalTransactionId && key_made_in != MyProc->lxid)
		ForgetKey();
	if (keyed_relid != oids->vault_key)
		LoadKey(oids);

	ctx = inner_pad;
	SHA256_Update(&ctx, value, strlen(value));
	SHA256_Final(inner, &ctx);
	ctx = outer_pad;
	SHA256_Update(&ctx, inner, sizeof(inner));
	SHA256_Final(out, &ctx);

	result = palloc(sizeof(DIGEST_PREFIX) + 2 * sizeof(out));
	strcpy(result, DIGEST_PREFIX);
	hex_encode((const char *) out, sizeof(out), result + sizeof(DIGEST_PREFIX) - 1);
	result[sizeof(DIGEST_PREFIX) - 1 + 2 * sizeof(out)] = '\0';
	return result;
}

void
VaultStore(int64 entry_id, const char *tenant_id, Jsonb *clear)
{
	const AutoraOids *oids = AutoraGetOids(false);
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
