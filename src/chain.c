/*-------------------------------------------------------------------------
 * chain.c
 *	  Sealing: committed entries become per-tenant blocks (Merkle root of
 *	  their hashes, chained to the tenant's previous block).
 *
 * Writers never wait for a chain head: an entry's hash covers only its own
 * fields, and chaining happens here, after commit.  A round takes a
 * self-conflicting lock on the extension (so rounds are serial, writers
 * unaffected), a fresh snapshot S, and the horizon stored by the previous
 * round P.  New entries are exactly those visible in S whose transaction was
 * still in progress in P; they all have xid >= P.xmin, which the xid index
 * finds.  S is stored with the blocks, so verify can also tell an entry that
 * should have been sealed (its transaction finished before the last round)
 * from one that is merely pending.
 *
 * Rounds run in the background sealer as superuser, in a database whose
 * owner may define operators, functions and settings: so they read the
 * ledger relations with direct heap and index scans through indexes found
 * by OID, never SQL, and nothing they call is looked up by name.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "nodes/tidbitmap.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "chain.h"
#include "encoding.h"
#include "objects.h"
#include "restore_state.h"
#include "writer.h"

/* bitmap of the pages that may hold new entries (BRIN pages are lossy) */
#define SEAL_BITMAP_BYTES	(4 * 1024 * 1024L)

/* one entry found by a round */
typedef struct SealItem
{
	int64		id;
	uint8		hash[LEDGER_HASH_LEN];
} SealItem;

/* entries of one tenant found by a round */
typedef struct TenantBatch
{
	char		key[AUTORA_TENANT_ID_MAXLEN + 1];	/* tenant id; "" for the platform chain */
	int64		n;
	int64		cap;
	SealItem   *items;
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

/*
 * The horizon of snapshot S, counting our own transaction as in progress,
 * in the ledger's xid space (entries record FullTransactionIds plus the
 * base a restore may have set: src/restore.c).
 */
static SealHorizon
HorizonFromSnapshot(Snapshot snap)
{
	FullTransactionId next = ReadNextFullTransactionId();
	FullTransactionId own = GetTopFullTransactionIdIfAny();
	uint64		base = RestoreXidBase();
	SealHorizon h;

	h.valid = true;
	h.xmin = WidenXid(snap->xmin, next) + base;
	h.xmax = WidenXid(snap->xmax, next) + base;
	h.xip = palloc(sizeof(uint64) * (snap->xcnt + 1));
	h.nxip = 0;
	for (uint32 i = 0; i < snap->xcnt; i++)
		h.xip[h.nxip++] = WidenXid(snap->xip[i], next) + base;
	if (FullTransactionIdIsValid(own) && U64FromFullTransactionId(own) + base < h.xmax)
	{
		h.xip[h.nxip++] = U64FromFullTransactionId(own) + base;
		h.xmin = Min(h.xmin, U64FromFullTransactionId(own) + base);
	}
	return h;
}

/*
 * Opens one of the ledger's indexes by name in the extension's schema and
 * checks that it is the index this file reads (its table, access method and
 * key columns), so that a scan through it finds what the SQL it replaces
 * would have found.
 */
static Relation
OpenLedgerIndex(const AutoraOids *oids, const char *name, Oid heapoid, Oid amoid,
				int nkeys, const AttrNumber *keys)
{
	Oid			indexoid = get_relname_relid(name, oids->namespace);
	Relation	index;
	bool		ok;

	if (!OidIsValid(indexoid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("autora_audit index \"autora.%s\" is missing", name),
				 errhint("Reinstall the extension with DROP EXTENSION / CREATE EXTENSION autora_audit.")));
	index = index_open(indexoid, AccessShareLock);
	ok = index->rd_index->indrelid == heapoid && index->rd_rel->relam == amoid &&
		index->rd_index->indisvalid && index->rd_index->indnkeyatts == nkeys &&
		heap_attisnull(index->rd_indextuple, Anum_pg_index_indpred, NULL);
	for (int i = 0; ok && i < nkeys; i++)
		ok = index->rd_index->indkey.values[i] == keys[i];
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("autora_audit index \"autora.%s\" is not the index this library reads", name),
				 errdetail("Its table, access method or key columns differ from those the install script creates."),
				 errhint("Install the autora_audit version that matches the library.")));
	return index;
}

/*
 * The horizon stored by the last round, and the last block id, read with
 * the round's snapshot: the first row of a backward scan of the primary key
 * (ORDER BY block_id DESC, NULLs first, as SQL would).  Block ids are
 * numbered here, under the round's lock, not by a sequence: sequences copied
 * by CREATE DATABASE can step back after a crash in PostgreSQL 15.
 */
static SealHorizon
LastHorizon(const AutoraOids *oids, Relation blocks, Snapshot snap, int64 *last_block_id)
{
	static const AttrNumber pkey[] = {BC_BLOCK_ID + 1};
	Relation	index = OpenLedgerIndex(oids, "ledger_blocks_pkey", oids->blocks,
										BTREE_AM_OID, 1, pkey);
	IndexScanDesc scan = index_beginscan(blocks, index, snap, 0, 0);
	TupleTableSlot *slot = table_slot_create(blocks, NULL);
	SealHorizon h = {0};

	*last_block_id = 0;
	index_rescan(scan, NULL, 0, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		slot_getallattrs(slot);
		/* the horizon decides what is sealed next: only trust an intact block */
		if (!BlockRowVerifies(slot->tts_values, slot->tts_isnull))
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("the last ledger block (block_id %lld) was altered; sealing stops",
							(long long) DatumGetInt64(slot->tts_values[BC_BLOCK_ID])),
					 errdetail("Its hash no longer matches its contents, so its seal horizon cannot be trusted."),
					 errhint("Run autora.verify() and compare the chain heads with your external digests.")));
		*last_block_id = DatumGetInt64(slot->tts_values[BC_BLOCK_ID]);
		h = HorizonFromBlockRow(slot->tts_values);
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	return h;
}

/* Adds a committed entry to its chain's batch for this round. */
static void
BatchAdd(HTAB *batches, const char *tenant, int64 id, const uint8 *hash)
{
	bool		found;
	TenantBatch *b;

	if (tenant != NULL && strlen(tenant) >= sizeof(b->key))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("ledger entry %lld has a tenant id longer than %d bytes",
						(long long) id, (int) sizeof(b->key) - 1),
				 errhint("Run autora.verify() to find what was changed.")));
	b = hash_search(batches, tenant ? tenant : "", HASH_ENTER, &found);
	if (!found)
	{
		b->n = 0;
		b->cap = 64;
		b->items = palloc(sizeof(SealItem) * b->cap);
	}
	if (b->n == b->cap)
	{
		b->cap *= 2;
		b->items = repalloc_huge(b->items, sizeof(SealItem) * b->cap);
	}
	b->items[b->n].id = id;
	memcpy(b->items[b->n].hash, hash, LEDGER_HASH_LEN);
	b->n++;
}

static int
CompareSealItems(const void *a, const void *b)
{
	int64		x = ((const SealItem *) a)->id;
	int64		y = ((const SealItem *) b)->id;

	return (x > y) - (x < y);
}

/*
 * Collects the entries this round seals, grouped by tenant, each group in
 * id order.  The tail is found through the BRIN index on (id, xid), by a
 * bitmap of the pages whose ranges may hold xid >= P.xmin (the sealer keeps
 * the filled ranges summarized, src/summarize.c): never the whole ledger.
 * BRIN pages are lossy, so every row read is checked against both horizons.
 */
static void
CollectNewEntries(const AutoraOids *oids, Snapshot snap, const SealHorizon *prev,
				  const SealHorizon *cur, HTAB *batches)
{
	static const AttrNumber idx_keys[] = {LC_ID + 1, LC_XID + 1};
	Relation	ledger = table_open(oids->ledger, AccessShareLock);
	Relation	index = OpenLedgerIndex(oids, "ledger_id_xid_idx", oids->ledger,
										BRIN_AM_OID, 2, idx_keys);
	ScanKeyData key;
	IndexScanDesc iscan;
	TIDBitmap  *tbm;
	TBMIterator *it;
	TBMIterateResult *tbmres;
	TableScanDesc hscan;
	TupleTableSlot *slot;
	HASH_SEQ_STATUS status;
	TenantBatch *b;

	if (RelationGetDescr(ledger)->natts != LEDGER_NCOLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("autora.ledger does not have the columns this library writes"),
				 errhint("Install the autora_audit version that matches the library.")));

	/* xid >= P.xmin on the index's second column, with int8's own >= */
	ScanKeyEntryInitialize(&key, 0, 2, BTGreaterEqualStrategyNumber, INT8OID,
						   InvalidOid, F_INT8GE,
						   Int64GetDatum(prev->valid ? (int64) prev->xmin : 0));
	tbm = tbm_create(SEAL_BITMAP_BYTES, NULL);
	iscan = index_beginscan_bitmap(index, snap, 1);
	index_rescan(iscan, &key, 1, NULL, 0);
	(void) index_getbitmap(iscan, tbm);
	index_endscan(iscan);

	hscan = table_beginscan_bm(ledger, snap, 0, NULL);
	slot = table_slot_create(ledger, NULL);
	it = tbm_begin_iterate(tbm);
	while ((tbmres = tbm_iterate(it)) != NULL)
	{
		CHECK_FOR_INTERRUPTS();
		if (!table_scan_bitmap_next_block(hscan, tbmres))
			continue;
		while (table_scan_bitmap_next_tuple(hscan, tbmres, slot))
		{
			uint64		xid;
			int64		id;
			bytea	   *hash;

			slot_getsomeattrs(slot, LEDGER_NCOLUMNS);
			if (slot->tts_isnull[LC_XID])
				continue;		/* verify reports it; no horizon can place it */
			xid = (uint64) DatumGetInt64(slot->tts_values[LC_XID]);
			if (HorizonInProgress(cur, xid) || !HorizonInProgress(prev, xid))
				continue;		/* still running, or sealed by an earlier round */
			id = slot->tts_isnull[LC_ID] ? 0 : DatumGetInt64(slot->tts_values[LC_ID]);
			hash = slot->tts_isnull[LC_HASH] ? NULL : DatumGetByteaPP(slot->tts_values[LC_HASH]);
			if (hash == NULL || VARSIZE_ANY_EXHDR(hash) != LEDGER_HASH_LEN)
				ereport(ERROR,
						(errcode(ERRCODE_DATA_CORRUPTED),
						 errmsg("ledger entry %lld has no valid hash", (long long) id),
						 errhint("Run autora.verify() to find what was changed.")));
			BatchAdd(batches,
					 slot->tts_isnull[LC_TENANT_ID] ? NULL :
					 TextDatumGetCString(slot->tts_values[LC_TENANT_ID]),
					 id, (uint8 *) VARDATA_ANY(hash));
		}
	}
	tbm_end_iterate(it);
	tbm_free(tbm);
	table_endscan(hscan);
	ExecDropSingleTupleTableSlot(slot);
	index_close(index, AccessShareLock);
	table_close(ledger, AccessShareLock);

	/* blocks list their entries in id order */
	hash_seq_init(&status, batches);
	while ((b = hash_seq_search(&status)) != NULL)
		qsort(b->items, b->n, sizeof(SealItem), CompareSealItems);
}

/*
 * The tenant's head block: its number and hash (0 and zeros when none),
 * the first row of a backward scan of the chain key (tenant_id, block_no)
 * for that tenant (IS NULL for the platform chain, which the key's NULLS
 * NOT DISTINCT keeps in the index).
 */
static int64
ChainHead(Relation blocks, Relation chain_key, Snapshot snap, const char *tenant,
		  uint8 head_hash[LEDGER_HASH_LEN])
{
	ScanKeyData key;
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(blocks, NULL);
	int64		block_no = 0;

	memset(head_hash, 0, LEDGER_HASH_LEN);
	if (tenant)
		ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   chain_key->rd_indcollation[0], F_TEXTEQ,
							   CStringGetTextDatum(tenant));
	else
		ScanKeyEntryInitialize(&key, SK_ISNULL | SK_SEARCHNULL, 1, InvalidStrategy,
							   InvalidOid, InvalidOid, InvalidOid, (Datum) 0);
	scan = index_beginscan(blocks, chain_key, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	if (index_getnext_slot(scan, BackwardScanDirection, slot))
	{
		slot_getsomeattrs(slot, BC_BLOCK_HASH + 1);
		if (!slot->tts_isnull[BC_BLOCK_NO])
			block_no = DatumGetInt64(slot->tts_values[BC_BLOCK_NO]);
		if (!slot->tts_isnull[BC_BLOCK_HASH])
		{
			bytea	   *h = DatumGetByteaPP(slot->tts_values[BC_BLOCK_HASH]);

			if (VARSIZE_ANY_EXHDR(h) == LEDGER_HASH_LEN)
				memcpy(head_hash, VARDATA_ANY(h), LEDGER_HASH_LEN);
		}
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
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
WriteBlock(const AutoraOids *oids, const char *tenant, int64 *last_block_id,
		   int64 block_no, const SealItem *items, int64 n,
		   uint8 prev_hash[LEDGER_HASH_LEN], const SealHorizon *cur)
{
	BlockHeader hdr;
	uint8		block_hash[LEDGER_HASH_LEN];
	Datum		values[BLOCK_NCOLUMNS];
	bool		nulls[BLOCK_NCOLUMNS];
	int64	   *ids = palloc(sizeof(int64) * n);
	uint8	   *hashes = palloc(LEDGER_HASH_LEN * n);

	for (int64 i = 0; i < n; i++)
	{
		ids[i] = items[i].id;
		memcpy(hashes + LEDGER_HASH_LEN * i, items[i].hash, LEDGER_HASH_LEN);
	}

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
	static const AttrNumber chain_keys[] = {BC_TENANT_ID + 1, BC_BLOCK_NO + 1};
	const AutoraOids *oids = AutoraGetOids(false);
	MemoryContext round_cxt;
	MemoryContext old;
	Snapshot	snap;
	SealHorizon prev;
	SealHorizon cur;
	Relation	blocks;
	Relation	chain_key;
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

	/*
	 * Rounds are serial: each holds this lock on the extension object until
	 * it commits; writers of entries do not take it, and besides rounds only
	 * a superuser's DDL on the extension does.  (A self-conflicting lock on
	 * the block table could be held by anyone allowed to ANALYZE it, a
	 * database owner, in a transaction left open.)
	 */
	WriterFlushAll();
	LockDatabaseObject(ExtensionRelationId, get_extension_oid("autora_audit", false), 0,
					   ExclusiveLock);
	/* entries loaded before their blocks would be sealed again: wait */
	if (RestoreUnderWay())
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(round_cxt);
		return 0;
	}
	LockRelationOid(oids->blocks, RowExclusiveLock);
	snap = RegisterSnapshot(GetLatestSnapshot());
	cur = HorizonFromSnapshot(snap);

	blocks = table_open(oids->blocks, NoLock);
	if (RelationGetDescr(blocks)->natts != BLOCK_NCOLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("autora.ledger_blocks does not have the columns this library writes"),
				 errhint("Install the autora_audit version that matches the library.")));
	prev = LastHorizon(oids, blocks, snap, &last_block_id);

	ctl.keysize = sizeof(b->key);
	ctl.entrysize = sizeof(TenantBatch);
	ctl.hcxt = round_cxt;
	batches = hash_create("autora seal batches", 16, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	CollectNewEntries(oids, snap, &prev, &cur, batches);

	sorted = palloc(sizeof(TenantBatch *) * Max(hash_get_num_entries(batches), 1));
	hash_seq_init(&status, batches);
	while ((b = hash_seq_search(&status)) != NULL)
		sorted[nbatches++] = b;
	qsort(sorted, nbatches, sizeof(TenantBatch *), CompareBatchKeys);

	chain_key = OpenLedgerIndex(oids, "ledger_blocks_chain_key", oids->blocks,
								BTREE_AM_OID, 2, chain_keys);
	for (long t = 0; t < nbatches; t++)
	{
		const char *tenant = sorted[t]->key[0] ? sorted[t]->key : NULL;
		uint8		prev_hash[LEDGER_HASH_LEN];
		int64		block_no = ChainHead(blocks, chain_key, snap, tenant, prev_hash);

		b = sorted[t];
		for (int64 off = 0; off < b->n; off += autora_block_size)
		{
			int64		n = Min((int64) autora_block_size, b->n - off);

			WriteBlock(oids, tenant, &last_block_id, ++block_no, b->items + off, n,
					   prev_hash, &cur);
		}
		sealed += b->n;
	}
	index_close(chain_key, AccessShareLock);
	table_close(blocks, NoLock);

	UnregisterSnapshot(snap);
	MemoryContextSwitchTo(old);
	MemoryContextDelete(round_cxt);
	return sealed;
}
