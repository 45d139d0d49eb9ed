/*-------------------------------------------------------------------------
 * chain.c
 *	  Sealing: committed entries become per-tenant blocks (Merkle root of
 *	  their hashes, chained to the tenant's previous block).
 *
 * Writers never wait for a chain head: an entry's hash covers only its own
 * fields, and chaining happens here, after commit.  A round takes a
 * self-conflicting lock on the block table (so rounds are serial, writers
 * unaffected), a fresh snapshot S, and the horizon stored by the previous
 * round P.  New entries are exactly those visible in S whose transaction was
 * still in progress in P; they all have xid >= P.xmin, which the xid index
 * finds.  S is stored with the blocks, so verify can also tell an entry that
 * should have been sealed (its transaction finished before the last round)
 * from one that is merely pending.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "chain.h"
#include "encoding.h"
#include "ledger.h"
#include "writer.h"

/* entries of one tenant found by a round */
typedef struct TenantBatch
{
	char		key[AUTORA_TENANT_ID_MAXLEN + 1];	/* tenant id; "" for the platform chain */
	int64		n;
	int64		cap;
	int64	   *ids;
	uint8	   *hashes;
} TenantBatch;

bool
HorizonInProgress(const SealHorizon *h, uint64 xid)
{
	if (!h->valid)
		return true;
	if (xid >= h->xmax)
		return true;
	if (xid < h->xmin)
		return false;
	for (int i = 0; i < h->nxip; i++)
		if (h->xip[i] == xid)
			return true;
	return false;
}

SealHorizon
HorizonFromBlockRow(const Datum *values)
{
	SealHorizon h;
	Datum	   *elems;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(values[BC_SEAL_XIP]), INT8OID, 8, FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, NULL, &n);
	h.valid = true;
	h.xmin = (uint64) DatumGetInt64(values[BC_SEAL_XMIN]);
	h.xmax = (uint64) DatumGetInt64(values[BC_SEAL_XMAX]);
	h.nxip = n;
	h.xip = palloc(sizeof(uint64) * Max(n, 1));
	for (int i = 0; i < n; i++)
		h.xip[i] = (uint64) DatumGetInt64(elems[i]);
	return h;
}

static bool
CopyHash(Datum d, uint8 out[LEDGER_HASH_LEN])
{
	bytea	   *b = DatumGetByteaPP(d);

	if (VARSIZE_ANY_EXHDR(b) != LEDGER_HASH_LEN)
		return false;
	memcpy(out, VARDATA_ANY(b), LEDGER_HASH_LEN);
	return true;
}

static bool
Int8ArrayReadable(Datum d)
{
	ArrayType  *a = DatumGetArrayTypeP(d);

	return ARR_ELEMTYPE(a) == INT8OID && !array_contains_nulls(a);
}

bool
BlockRowReadable(const Datum *values, const bool *nulls)
{
	for (int c = 0; c < BLOCK_NCOLUMNS; c++)
		if (nulls[c] && c != BC_TENANT_ID)
			return false;
	return Int8ArrayReadable(values[BC_ENTRY_IDS]) && Int8ArrayReadable(values[BC_SEAL_XIP]);
}

bool
BlockRowVerifies(const Datum *values, const bool *nulls)
{
	BlockHeader hdr;
	uint8		stored[LEDGER_HASH_LEN];
	uint8		computed[LEDGER_HASH_LEN];
	SealHorizon h;

	if (!BlockRowReadable(values, nulls))
		return false;
	hdr.tenant_id = nulls[BC_TENANT_ID] ? NULL : TextDatumGetCString(values[BC_TENANT_ID]);
	hdr.block_no = DatumGetInt64(values[BC_BLOCK_NO]);
	hdr.entry_count = DatumGetInt32(values[BC_ENTRY_COUNT]);
	hdr.first_entry = DatumGetInt64(values[BC_FIRST_ENTRY]);
	hdr.last_entry = DatumGetInt64(values[BC_LAST_ENTRY]);
	hdr.sealed_at = DatumGetTimestampTz(values[BC_SEALED_AT]);
	if (!CopyHash(values[BC_MERKLE_ROOT], hdr.merkle_root) ||
		!CopyHash(values[BC_PREV_HASH], hdr.prev_hash) ||
		!CopyHash(values[BC_BLOCK_HASH], stored))
		return false;
	h = HorizonFromBlockRow(values);
	hdr.seal_xmin = h.xmin;
	hdr.seal_xmax = h.xmax;
	hdr.seal_nxip = h.nxip;
	hdr.seal_xip = h.xip;
	BlockHash(&hdr, computed);
	return memcmp(stored, computed, LEDGER_HASH_LEN) == 0;
}

static uint64
WidenXid(TransactionId xid, FullTransactionId next)
{
	uint64		epoch = EpochFromFullTransactionId(next);

	if (xid > XidFromFullTransactionId(next))
		epoch--;
	return (epoch << 32) | xid;
}

/* The horizon of snapshot S, counting our own transaction as in progress. */
static SealHorizon
HorizonFromSnapshot(Snapshot snap)
{
	FullTransactionId next = ReadNextFullTransactionId();
	FullTransactionId own = GetTopFullTransactionIdIfAny();
	SealHorizon h;

	h.valid = true;
	h.xmin = WidenXid(snap->xmin, next);
	h.xmax = WidenXid(snap->xmax, next);
	h.xip = palloc(sizeof(uint64) * (snap->xcnt + 1));
	h.nxip = 0;
	for (uint32 i = 0; i < snap->xcnt; i++)
		h.xip[h.nxip++] = WidenXid(snap->xip[i], next);
	if (FullTransactionIdIsValid(own) && U64FromFullTransactionId(own) < h.xmax)
	{
		h.xip[h.nxip++] = U64FromFullTransactionId(own);
		h.xmin = Min(h.xmin, U64FromFullTransactionId(own));
	}
	return h;
}

static uint64
Int64Column(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? 0 : (uint64) DatumGetInt64(d);
}

/*
 * The horizon stored by the last round, and the last block id, read with
 * the round's snapshot.  Block ids are numbered here, under the round's
 * lock, not by a sequence: sequences copied by CREATE DATABASE can step
 * back after a crash in PostgreSQL 15.
 */
static SealHorizon
LastHorizon(int64 *last_block_id)
{
	SealHorizon none = {0};
	Datum		values[BLOCK_NCOLUMNS];
	bool		nulls[BLOCK_NCOLUMNS];
	int			ret;

	*last_block_id = 0;
	ret = SPI_execute("SELECT * FROM autora.ledger_blocks ORDER BY block_id DESC LIMIT 1", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "autora: reading the last seal horizon failed: %s", SPI_result_code_string(ret));
	if (SPI_processed == 0)
		return none;

	if (SPI_tuptable->tupdesc->natts != BLOCK_NCOLUMNS)
		elog(ERROR, "autora: autora.ledger_blocks does not have the columns this library writes");
	heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
	/* the horizon decides what is sealed next: only trust an intact block */
	if (!BlockRowVerifies(values, nulls))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the last ledger block (block_id %lld) was altered; sealing stops",
						(long long) DatumGetInt64(values[BC_BLOCK_ID])),
				 errdetail("Its hash no longer matches its contents, so its seal horizon cannot be trusted."),
				 errhint("Run autora.verify() and compare the chain heads with your external digests.")));
	*last_block_id = DatumGetInt64(values[BC_BLOCK_ID]);
	return HorizonFromBlockRow(values);
}

static void
BatchAdd(HTAB *batches, const char *tenant, int64 id, const uint8 *hash)
{
	bool		found;
	TenantBatch *b = hash_search(batches, tenant ? tenant : "", HASH_ENTER, &found);

	if (!found)
	{
		b->n = 0;
		b->cap = 64;
		b->ids = palloc(sizeof(int64) * b->cap);
		b->hashes = palloc(LEDGER_HASH_LEN * b->cap);
	}
	if (b->n == b->cap)
	{
		b->cap *= 2;
		b->ids = repalloc_huge(b->ids, sizeof(int64) * b->cap);
		b->hashes = repalloc_huge(b->hashes, LEDGER_HASH_LEN * b->cap);
	}
	b->ids[b->n] = id;
	memcpy(b->hashes + LEDGER_HASH_LEN * b->n, hash, LEDGER_HASH_LEN);
	b->n++;
}

/* Collects the entries this round seals, grouped by tenant, in id order. */
static void
CollectNewEntries(Snapshot snap, const SealHorizon *prev, const SealHorizon *cur,
				  HTAB *batches)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	SPIPlanPtr	plan;
	Portal		portal;
	int			nestlevel;

	/* read the tail through the BRIN index on xid, never the whole ledger */
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	plan = SPI_prepare("SELECT id, tenant_id, hash, xid FROM autora.ledger"
					   " WHERE xid >= $1 ORDER BY id", 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "autora: preparing the seal scan failed: %s", SPI_result_code_string(SPI_result));
	args[0] = Int64GetDatum(prev->valid ? (int64) prev->xmin : 0);

	PushActiveSnapshot(snap);
	portal = SPI_cursor_open(NULL, plan, args, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			uint64		xid = Int64Column(tup, desc, 4);
			bool		isnull;
			bytea	   *hash;

			if (HorizonInProgress(cur, xid) || !HorizonInProgress(prev, xid))
				continue;		/* still running, or sealed by an earlier round */
			hash = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));
			if (isnull || VARSIZE_ANY_EXHDR(hash) != LEDGER_HASH_LEN)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("ledger entry %lld has no valid hash",
								(long long) Int64Column(tup, desc, 1)),
						 errhint("Run autora.verify() to find what was changed.")));
			BatchAdd(batches, SPI_getvalue(tup, desc, 2), (int64) Int64Column(tup, desc, 1),
					 (uint8 *) VARDATA_ANY(hash));
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	PopActiveSnapshot();
	AtEOXact_GUC(true, nestlevel);
}

/* The tenant's head block: its number and hash (0 and zeros when none). */
static int64
ChainHead(const char *tenant, uint8 head_hash[LEDGER_HASH_LEN])
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		args[1];
	int			ret;
	int64		block_no = 0;

	memset(head_hash, 0, LEDGER_HASH_LEN);
	if (tenant)
	{
		args[0] = CStringGetTextDatum(tenant);
		ret = SPI_execute_with_args("SELECT block_no, block_hash FROM autora.ledger_blocks"
									" WHERE tenant_id = $1 ORDER BY block_no DESC LIMIT 1",
									1, argtypes, args, NULL, true, 1);
	}
	else
		ret = SPI_execute("SELECT block_no, block_hash FROM autora.ledger_blocks"
						  " WHERE tenant_id IS NULL ORDER BY block_no DESC LIMIT 1", true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "autora: reading the chain head failed: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
	{
		bool		isnull;
		bytea	   *h;

		block_no = (int64) Int64Column(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		h = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (!isnull && VARSIZE_ANY_EXHDR(h) == LEDGER_HASH_LEN)
			memcpy(head_hash, VARDATA_ANY(h), LEDGER_HASH_LEN);
	}
	return block_no;
}

static bytea *
MakeBytea(const uint8 *data, Size len)
{
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	memcpy(VARDATA(b), data, len);
	return b;
}

static ArrayType *
MakeInt8Array(const uint64 *vals, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));

	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum((int64) vals[i]);
	return construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
}

/* Writes one block of n entries of a tenant, chained to prev_hash. */
static void
WriteBlock(const LedgerOids *oids, const char *tenant, int64 *last_block_id,
		   int64 block_no, const int64 *ids, const uint8 *hashes, int64 n,
		   uint8 prev_hash[LEDGER_HASH_LEN], const SealHorizon *cur)
{
	BlockHeader hdr;
	uint8		block_hash[LEDGER_HASH_LEN];
	Datum		values[BLOCK_NCOLUMNS];
	bool		nulls[BLOCK_NCOLUMNS];

	hdr.tenant_id = tenant;
	hdr.block_no = block_no;
	hdr.entry_count = n;
	hdr.first_entry = ids[0];
	hdr.last_entry = ids[n - 1];
	hdr.sealed_at = GetCurrentTimestamp();
	MerkleRoot(hashes, n, hdr.merkle_root);
	memcpy(hdr.prev_hash, prev_hash, LEDGER_HASH_LEN);
	hdr.seal_xmin = cur->xmin;
	hdr.seal_xmax = cur->xmax;
	hdr.seal_nxip = cur->nxip;
	hdr.seal_xip = cur->xip;
	BlockHash(&hdr, block_hash);

	memset(nulls, false, sizeof(nulls));
	values[BC_BLOCK_ID] = Int64GetDatum(++(*last_block_id));
	if (tenant)
		values[BC_TENANT_ID] = CStringGetTextDatum(tenant);
	else
		nulls[BC_TENANT_ID] = true;
	values[BC_BLOCK_NO] = Int64GetDatum(block_no);
	values[BC_SEALED_AT] = TimestampTzGetDatum(hdr.sealed_at);
	values[BC_ENTRY_COUNT] = Int32GetDatum((int32) n);
	values[BC_FIRST_ENTRY] = Int64GetDatum(hdr.first_entry);
	values[BC_LAST_ENTRY] = Int64GetDatum(hdr.last_entry);
	values[BC_ENTRY_IDS] = PointerGetDatum(MakeInt8Array((const uint64 *) ids, (int) n));
	values[BC_ENTRY_HASHES] = PointerGetDatum(MakeBytea(hashes, LEDGER_HASH_LEN * n));
	values[BC_MERKLE_ROOT] = PointerGetDatum(MakeBytea(hdr.merkle_root, LEDGER_HASH_LEN));
	values[BC_PREV_HASH] = PointerGetDatum(MakeBytea(prev_hash, LEDGER_HASH_LEN));
	values[BC_BLOCK_HASH] = PointerGetDatum(MakeBytea(block_hash, LEDGER_HASH_LEN));
	values[BC_SEAL_XMIN] = Int64GetDatum((int64) cur->xmin);
	values[BC_SEAL_XMAX] = Int64GetDatum((int64) cur->xmax);
	values[BC_SEAL_XIP] = PointerGetDatum(MakeInt8Array(cur->xip, cur->nxip));
	values[BC_FORMAT] = Int16GetDatum(LEDGER_FORMAT_VERSION);

	WriterInsert(oids->blocks, values, nulls);
	memcpy(prev_hash, block_hash, LEDGER_HASH_LEN);
}

static int
CompareBatchKeys(const void *a, const void *b)
{
	return strcmp((*(TenantBatch *const *) a)->key, (*(TenantBatch *const *) b)->key);
}

int64
SealPending(void)
{
	const LedgerOids *oids = LedgerGetOids(false);
	MemoryContext round_cxt;
	MemoryContext old;
	Snapshot	snap;
	SealHorizon prev;
	SealHorizon cur;
	HTAB	   *batches;
	HASHCTL		ctl;
	HASH_SEQ_STATUS status;
	TenantBatch *b;
	TenantBatch **sorted;
	long		nbatches = 0;
	int64		sealed = 0;
	int64		last_block_id;

	round_cxt = AllocSetContextCreate(CurrentMemoryContext, "autora seal round",
									  ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(round_cxt);

	/* rounds are serial; writers of entries do not take this lock */
	WriterFlushAll();
	LockRelationOid(oids->blocks, ShareRowExclusiveLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	cur = HorizonFromSnapshot(snap);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "autora: SPI_connect failed");
	PushActiveSnapshot(snap);
	prev = LastHorizon(&last_block_id);
	PopActiveSnapshot();

	ctl.keysize = sizeof(b->key);
	ctl.entrysize = sizeof(TenantBatch);
	ctl.hcxt = round_cxt;
	batches = hash_create("autora seal batches", 16, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	CollectNewEntries(snap, &prev, &cur, batches);

	sorted = palloc(sizeof(TenantBatch *) * Max(hash_get_num_entries(batches), 1));
	hash_seq_init(&status, batches);
	while ((b = hash_seq_search(&status)) != NULL)
		sorted[nbatches++] = b;
	qsort(sorted, nbatches, sizeof(TenantBatch *), CompareBatchKeys);

	PushActiveSnapshot(snap);
	for (long t = 0; t < nbatches; t++)
	{
		const char *tenant = sorted[t]->key[0] ? sorted[t]->key : NULL;
		uint8		prev_hash[LEDGER_HASH_LEN];
		int64		block_no = ChainHead(tenant, prev_hash);

		b = sorted[t];
		for (int64 off = 0; off < b->n; off += autora_block_size)
		{
			int64		n = Min((int64) autora_block_size, b->n - off);

			WriteBlock(oids, tenant, &last_block_id, ++block_no, b->ids + off,
					   b->hashes + LEDGER_HASH_LEN * off, n, prev_hash, &cur);
		}
		sealed += b->n;
	}
	PopActiveSnapshot();

	SPI_finish();
	UnregisterSnapshot(snap);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(round_cxt);
	return sealed;
}

PG_FUNCTION_INFO_V1(autora_seal);
Datum
autora_seal(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT64(SealPending());
}
