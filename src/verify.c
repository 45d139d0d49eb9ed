/*-------------------------------------------------------------------------
 * verify.c
 *	  autora.verify(): recomputes every entry hash, every block's Merkle
 *	  root and hash, and every chain link, per tenant, and names the first
 *	  entry that fails.
 *
 * One sequential pass over the ledger hashes each entry from its stored
 * fields; one pass over the blocks collects the chains.  Entries that no
 * block holds are pending when their transaction was still running at the
 * last seal round, and a failure otherwise (the sealer would have sealed
 * them: such an entry was added behind the sealer's back).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "chain.h"
#include "encoding.h"
#include "ledger.h"
#include "writer.h"

typedef struct EntryInfo
{
	int64		id;
	uint64		xid;
	int32		tenant;			/* index into the reports */
	bool		stored_ok;		/* recomputed hash equals the stored hash */
	bool		in_block;
	uint8		hash[LEDGER_HASH_LEN];	/* recomputed */
} EntryInfo;

typedef struct BlockInfo
{
	int64		block_id;
	int16		format;
	int64		block_no;
	int64		entry_count;
	int64		first_entry;
	int64		last_entry;
	TimestampTz sealed_at;
	int			nids;
	int64	   *ids;
	bytea	   *entry_hashes;
	bytea	   *merkle_root;
	bytea	   *prev_hash;
	bytea	   *block_hash;
	SealHorizon horizon;
} BlockInfo;

typedef struct TenantReport
{
	char	   *tenant;			/* NULL: the platform chain */
	int64		entries;
	int64		sealed;
	int64		pending;
	List	   *blocks;			/* of BlockInfo */
	bool		failed;
	int64		first_bad;
	char	   *detail;
} TenantReport;

typedef struct TenantKey
{
	char		key[NAMEDATALEN * 2];
	int32		index;
} TenantKey;

typedef struct VerifyState
{
	const char *only;			/* tenant filter, or NULL for all */
	HTAB	   *tenant_index;
	TenantReport *reports;
	int			nreports;
	int			maxreports;
	EntryInfo  *entries;
	bool		entries_sorted; /* the scan met them in id order */
	int64		nentries;
	int64		maxentries;
	int64		min_id;
	int64		max_id;
	int32	   *by_id;			/* entries[by_id[id - min_id]], -1 for none;
								 * NULL: entries are sorted by id instead */
	SealHorizon last;			/* horizon of the last seal round */
	int64		last_block_id;
	bool		last_intact;	/* that block hashes to its block_hash */
} VerifyState;

static int32
TenantIndex(VerifyState *vs, const char *tenant)
{
	TenantKey  *tk;
	bool		found;

	tk = hash_search(vs->tenant_index, tenant ? tenant : "", HASH_ENTER, &found);
	if (found)
		return tk->index;
	if (vs->nreports == vs->maxreports)
	{
		vs->maxreports *= 2;
		vs->reports = repalloc(vs->reports, sizeof(TenantReport) * vs->maxreports);
	}
	memset(&vs->reports[vs->nreports], 0, sizeof(TenantReport));
	vs->reports[vs->nreports].tenant = tenant ? pstrdup(tenant) : NULL;
	tk->index = vs->nreports;
	return vs->nreports++;
}

static bool
TenantWanted(VerifyState *vs, const char *tenant)
{
	if (vs->only == NULL)
		return true;
	return tenant != NULL && strcmp(tenant, vs->only) == 0;
}

static void Fail(TenantReport *r, int64 entry_id, const char *fmt,...) pg_attribute_printf(3, 4);

static void
Fail(TenantReport *r, int64 entry_id, const char *fmt,...)
{
	va_list		args;
	StringInfoData buf;

	/*
	 * first_bad_entry is the lowest id that fails, whichever check found it;
	 * the detail is the first failure found in chain order, which explains
	 * it best (a missing block, say, whose entries now belong to none).
	 */
	if (r->failed)
	{
		r->first_bad = Min(r->first_bad, entry_id);
		return;
	}
	r->failed = true;
	r->first_bad = entry_id;
	initStringInfo(&buf);
	for (;;)
	{
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	r->detail = buf.data;
}

static bool
HashEquals(bytea *stored, const uint8 *hash)
{
	return stored != NULL && VARSIZE_ANY_EXHDR(stored) == LEDGER_HASH_LEN &&
		memcmp(VARDATA_ANY(stored), hash, LEDGER_HASH_LEN) == 0;
}

/* Whether a ledger tenant_id value is the tenant named `known`. */
static bool
SameTenant(const char *known, bool isnull, Datum value)
{
	text	   *t;

	if (isnull || known == NULL)
		return isnull && known == NULL;
	t = DatumGetTextPP(value);
	return VARSIZE_ANY_EXHDR(t) == strlen(known) &&
		memcmp(VARDATA_ANY(t), known, VARSIZE_ANY_EXHDR(t)) == 0;
}

/* Pass 1: hash every entry from its stored fields. */
static void
ScanEntries(VerifyState *vs, Relation ledger, Snapshot snap)
{
	TupleTableSlot *slot = table_slot_create(ledger, NULL);
	TableScanDesc scan = table_beginscan(ledger, snap, 0, NULL);
	MemoryContext per_tuple = AllocSetContextCreate(CurrentMemoryContext, "autora verify tuple",
													ALLOCSET_DEFAULT_SIZES);
	MemoryContext outer = CurrentMemoryContext;
	int32		last_index = -1;	/* tenant of the entry before */
	int64		last_id = PG_INT64_MIN;

	vs->entries_sorted = true;
	vs->min_id = PG_INT64_MAX;
	vs->max_id = PG_INT64_MIN;
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		Datum	   *values;
		bool	   *nulls;
		EntryInfo  *e;

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		values = slot->tts_values;
		nulls = slot->tts_isnull;

		/* entries come in runs of one tenant: look it up when it changes */
		if (last_index < 0 || !SameTenant(vs->reports[last_index].tenant,
										  nulls[LC_TENANT_ID], values[LC_TENANT_ID]))
		{
			char	   *tenant;
			bool		wanted;

			MemoryContextSwitchTo(per_tuple);
			tenant = nulls[LC_TENANT_ID] ? NULL : TextDatumGetCString(values[LC_TENANT_ID]);
			wanted = TenantWanted(vs, tenant);
			MemoryContextSwitchTo(outer);
			if (wanted)
				last_index = TenantIndex(vs, tenant);
			MemoryContextReset(per_tuple);
			if (!wanted)
				continue;
		}

		if (vs->nentries == vs->maxentries)
		{
			vs->maxentries *= 2;
			vs->entries = repalloc_huge(vs->entries, sizeof(EntryInfo) * vs->maxentries);
		}
		e = &vs->entries[vs->nentries++];
		e->id = DatumGetInt64(values[LC_ID]);
		e->xid = (uint64) DatumGetInt64(values[LC_XID]);
		e->in_block = false;
		e->tenant = last_index;
		if (e->id <= last_id)
			vs->entries_sorted = false;
		last_id = e->id;
		vs->min_id = Min(vs->min_id, e->id);
		vs->max_id = Max(vs->max_id, e->id);

		MemoryContextSwitchTo(per_tuple);
		EntryHash(values, nulls, NULL, e->hash);
		e->stored_ok = !nulls[LC_HASH] && HashEquals(DatumGetByteaPP(values[LC_HASH]), e->hash);
		MemoryContextSwitchTo(outer);
		MemoryContextReset(per_tuple);

		vs->reports[last_index].entries++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(per_tuple);
}

static bytea *
CopyBytea(Datum d)
{
	return DatumGetByteaPCopy(d);
}

/* Pass 2: collect the blocks of the wanted chains and the last horizon. */
static void
ScanBlocks(VerifyState *vs, Relation blocks, Snapshot snap)
{
	TupleTableSlot *slot = table_slot_create(blocks, NULL);
	TableScanDesc scan = table_beginscan(blocks, snap, 0, NULL);

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		Datum	   *values;
		bool	   *nulls;
		BlockInfo  *b;
		char	   *tenant;
		ArrayType  *ids;
		Datum	   *elems;
		int64		block_id;

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		values = slot->tts_values;
		nulls = slot->tts_isnull;

		block_id = DatumGetInt64(values[BC_BLOCK_ID]);
		if (block_id > vs->last_block_id)
		{
			vs->last_block_id = block_id;
			vs->last = HorizonFromBlockRow(values);
			vs->last_intact = BlockRowVerifies(values, nulls);
		}

		tenant = nulls[BC_TENANT_ID] ? NULL : TextDatumGetCString(values[BC_TENANT_ID]);
		if (!TenantWanted(vs, tenant))
			continue;

		b = palloc0(sizeof(BlockInfo));
		b->block_id = block_id;
		b->block_no = DatumGetInt64(values[BC_BLOCK_NO]);
		b->format = DatumGetInt16(values[BC_FORMAT]);
		b->sealed_at = DatumGetTimestampTz(values[BC_SEALED_AT]);
		b->entry_count = DatumGetInt32(values[BC_ENTRY_COUNT]);
		b->first_entry = DatumGetInt64(values[BC_FIRST_ENTRY]);
		b->last_entry = DatumGetInt64(values[BC_LAST_ENTRY]);
		ids = DatumGetArrayTypeP(values[BC_ENTRY_IDS]);
		deconstruct_array(ids, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &elems, NULL, &b->nids);
		b->ids = palloc(sizeof(int64) * Max(b->nids, 1));
		for (int i = 0; i < b->nids; i++)
			b->ids[i] = DatumGetInt64(elems[i]);
		b->entry_hashes = CopyBytea(values[BC_ENTRY_HASHES]);
		b->merkle_root = CopyBytea(values[BC_MERKLE_ROOT]);
		b->prev_hash = CopyBytea(values[BC_PREV_HASH]);
		b->block_hash = CopyBytea(values[BC_BLOCK_HASH]);
		b->horizon = HorizonFromBlockRow(values);

		{
			TenantReport *r = &vs->reports[TenantIndex(vs, tenant)];

			r->blocks = lappend(r->blocks, b);
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
}

static int
CompareEntryIds(const void *a, const void *b)
{
	int64		x = ((const EntryInfo *) a)->id;
	int64		y = ((const EntryInfo *) b)->id;

	return (x > y) - (x < y);
}

static int
CompareBlockNos(const ListCell *a, const ListCell *b)
{
	int64		x = ((BlockInfo *) lfirst(a))->block_no;
	int64		y = ((BlockInfo *) lfirst(b))->block_no;

	return (x > y) - (x < y);
}

static EntryInfo *
FindEntry(VerifyState *vs, int64 id)
{
	EntryInfo	key;

	if (vs->by_id != NULL)
	{
		int32		i;

		if (id < vs->min_id || id > vs->max_id)
			return NULL;
		i = vs->by_id[(uint64) id - (uint64) vs->min_id];
		return i < 0 ? NULL : &vs->entries[i];
	}
	key.id = id;
	return bsearch(&key, vs->entries, vs->nentries, sizeof(EntryInfo), CompareEntryIds);
}

static void
FailDuplicate(VerifyState *vs, const EntryInfo *e)
{
	Fail(&vs->reports[e->tenant], e->id, "entry id %lld appears more than once", (long long) e->id);
}

/*
 * Makes entries findable by id, and fails ids seen twice (ids come from a
 * sequence: one seen twice means a row was copied in).  Ids are nearly
 * dense, so a table indexed by id - min_id finds an entry in one step
 * without sorting; when the range is sparse (one tenant's entries among
 * many, or a forged far-away id) the entries are sorted by id instead, so
 * that memory stays proportional to the entries.
 */
static void
IndexEntries(VerifyState *vs)
{
	uint64		range;

	if (vs->nentries == 0)
		return;
	range = (uint64) vs->max_id - (uint64) vs->min_id + 1;
	if (range == 0 || range > (uint64) vs->nentries * 16 + 65536 ||
		vs->nentries > PG_INT32_MAX)
	{
		if (!vs->entries_sorted)
			qsort(vs->entries, vs->nentries, sizeof(EntryInfo), CompareEntryIds);
		for (int64 i = 1; i < vs->nentries; i++)
			if (vs->entries[i].id == vs->entries[i - 1].id)
				FailDuplicate(vs, &vs->entries[i]);
		return;
	}
	vs->by_id = palloc_extended(sizeof(int32) * range, MCXT_ALLOC_HUGE);
	memset(vs->by_id, 0xff, sizeof(int32) * range);
	for (int64 i = 0; i < vs->nentries; i++)
	{
		int32	   *slot = &vs->by_id[(uint64) vs->entries[i].id - (uint64) vs->min_id];

		if (*slot >= 0)
			FailDuplicate(vs, &vs->entries[i]);
		else
			*slot = (int32) i;
	}
}

/* Checks one block's header, Merkle root and entries. */
static void
CheckBlock(VerifyState *vs, TenantReport *r, int32 tenant, BlockInfo *b,
		   int64 expected_no, const uint8 *expected_prev)
{
	BlockHeader hdr;
	uint8		hash[LEDGER_HASH_LEN];
	const uint8 *recorded = (const uint8 *) VARDATA_ANY(b->entry_hashes);
	/* its entry list, not its header, says where the block starts */
	int64		first = b->nids > 0 ? b->ids[0] : b->first_entry;

	if (b->format != LEDGER_FORMAT_VERSION)
	{
		Fail(r, first, "block %lld has format %d, which this version cannot verify",
			 (long long) b->block_no, b->format);
		return;
	}
	if (b->block_no != expected_no)
		Fail(r, first, "block %lld is missing: the chain jumps to block %lld",
			 (long long) expected_no, (long long) b->block_no);
	if (!HashEquals(b->prev_hash, expected_prev))
		Fail(r, first, "block %lld does not chain to the block before it",
			 (long long) b->block_no);
	if (b->nids < 1 || b->nids != b->entry_count ||
		VARSIZE_ANY_EXHDR(b->entry_hashes) != (Size) b->nids * LEDGER_HASH_LEN ||
		VARSIZE_ANY_EXHDR(b->merkle_root) != LEDGER_HASH_LEN ||
		VARSIZE_ANY_EXHDR(b->prev_hash) != LEDGER_HASH_LEN ||
		b->ids[0] != b->first_entry || b->ids[b->nids - 1] != b->last_entry)
	{
		Fail(r, first, "block %lld is malformed: its entry list, counts and hashes disagree",
			 (long long) b->block_no);
		return;
	}

	hdr.tenant_id = r->tenant;
	hdr.block_no = b->block_no;
	hdr.entry_count = b->entry_count;
	hdr.first_entry = b->first_entry;
	hdr.last_entry = b->last_entry;
	hdr.sealed_at = b->sealed_at;
	memcpy(hdr.merkle_root, VARDATA_ANY(b->merkle_root), LEDGER_HASH_LEN);
	memcpy(hdr.prev_hash, VARDATA_ANY(b->prev_hash), LEDGER_HASH_LEN);
	hdr.seal_xmin = b->horizon.xmin;
	hdr.seal_xmax = b->horizon.xmax;
	hdr.seal_nxip = b->horizon.nxip;
	hdr.seal_xip = b->horizon.xip;
	BlockHash(&hdr, hash);
	if (!HashEquals(b->block_hash, hash))
		Fail(r, first, "block %lld was altered: its hash does not match its contents",
			 (long long) b->block_no);

	MerkleRoot(recorded, b->nids, hash);
	if (!HashEquals(b->merkle_root, hash))
		Fail(r, first, "block %lld was altered: its entry hashes do not match its Merkle root",
			 (long long) b->block_no);

	for (int i = 0; i < b->nids; i++)
	{
		EntryInfo  *e;

		if (i > 0 && b->ids[i] <= b->ids[i - 1])
			Fail(r, b->ids[i], "block %lld lists entry %lld out of order",
				 (long long) b->block_no, (long long) b->ids[i]);
		e = FindEntry(vs, b->ids[i]);
		if (e == NULL || e->tenant != tenant)
		{
			Fail(r, b->ids[i], "entry %lld sealed in block %lld is missing",
				 (long long) b->ids[i], (long long) b->block_no);
			continue;
		}
		if (e->in_block)
			Fail(r, e->id, "entry %lld is sealed in more than one block", (long long) e->id);
		if (HorizonInProgress(&b->horizon, e->xid))
			Fail(r, e->id, "entry %lld is sealed in block %lld although its transaction was still running",
				 (long long) e->id, (long long) b->block_no);
		e->in_block = true;
		r->sealed++;
		if (!e->stored_ok)
			Fail(r, e->id, "entry %lld was altered: its fields no longer match its hash",
				 (long long) e->id);
		else if (memcmp(e->hash, recorded + (Size) i * LEDGER_HASH_LEN, LEDGER_HASH_LEN) != 0)
			Fail(r, e->id, "entry %lld was altered: it does not match the hash sealed in block %lld",
				 (long long) e->id, (long long) b->block_no);
	}
}

static void
CheckChain(VerifyState *vs, int32 tenant)
{
	TenantReport *r = &vs->reports[tenant];
	uint8		prev[LEDGER_HASH_LEN];
	int64		expected_no = 1;
	ListCell   *lc;

	memset(prev, 0, sizeof(prev));
	list_sort(r->blocks, CompareBlockNos);
	foreach(lc, r->blocks)
	{
		BlockInfo  *b = lfirst(lc);

		CheckBlock(vs, r, tenant, b, expected_no, prev);
		if (VARSIZE_ANY_EXHDR(b->block_hash) == LEDGER_HASH_LEN)
			memcpy(prev, VARDATA_ANY(b->block_hash), LEDGER_HASH_LEN);
		expected_no = b->block_no + 1;
	}
}

/* Entries no block holds: pending, or added after the sealer passed. */
static void
CheckUnsealed(VerifyState *vs)
{
	for (int64 i = 0; i < vs->nentries; i++)
	{
		EntryInfo  *e = &vs->entries[i];
		TenantReport *r = &vs->reports[e->tenant];

		if (e->in_block)
			continue;
		if (!vs->last_intact)
			Fail(r, e->id, "entry %lld is in no block, and the last seal round's block (block_id %lld) was altered",
				 (long long) e->id, (long long) vs->last_block_id);
		else if (HorizonInProgress(&vs->last, e->xid))
			r->pending++;
		else
			Fail(r, e->id, "entry %lld is in no block although its transaction ended before the last seal",
				 (long long) e->id);
	}
}

/* Registered tenants without entries still get a row. */
static void
AddRegisteredTenants(VerifyState *vs)
{
	MemoryContext caller = CurrentMemoryContext;
	List	   *tenants = NIL;
	ListCell   *lc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "autora: SPI_connect failed");
	if (SPI_execute("SELECT tenant_id FROM autora.tenants", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "autora: reading autora.tenants failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *t = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

		if (TenantWanted(vs, t))
		{
			MemoryContext old = MemoryContextSwitchTo(caller);

			tenants = lappend(tenants, pstrdup(t));
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	foreach(lc, tenants)
		(void) TenantIndex(vs, lfirst(lc));
}

static int
CompareReports(const void *a, const void *b)
{
	const char *x = ((const TenantReport *) a)->tenant;
	const char *y = ((const TenantReport *) b)->tenant;

	if (x == NULL || y == NULL)
		return (x == NULL) - (y == NULL);	/* platform chain last */
	return strcmp(x, y);
}

PG_FUNCTION_INFO_V1(autora_verify);
Datum
autora_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const LedgerOids *oids = LedgerGetOids(false);
	VerifyState vs = {0};
	HASHCTL		ctl;
	Relation	ledger;
	Relation	blocks;
	Snapshot	snap = GetActiveSnapshot();

	InitMaterializedSRF(fcinfo, 0);
	WriterFlushAll();

	vs.only = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	ctl.keysize = sizeof(((TenantKey *) 0)->key);
	ctl.entrysize = sizeof(TenantKey);
	ctl.hcxt = CurrentMemoryContext;
	vs.tenant_index = hash_create("autora verify tenants", 64, &ctl,
								  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	vs.maxreports = 16;
	vs.reports = palloc(sizeof(TenantReport) * vs.maxreports);
	vs.maxentries = 1024;
	vs.last_intact = true;		/* no block yet: nothing to distrust */
	vs.entries = palloc_extended(sizeof(EntryInfo) * vs.maxentries, MCXT_ALLOC_HUGE);

	/* one snapshot for both passes, so entries and blocks agree */
	blocks = table_open(oids->blocks, AccessShareLock);
	ledger = table_open(oids->ledger, AccessShareLock);
	ScanEntries(&vs, ledger, snap);
	ScanBlocks(&vs, blocks, snap);
	table_close(ledger, AccessShareLock);
	table_close(blocks, AccessShareLock);

	AddRegisteredTenants(&vs);
	if (vs.only != NULL && vs.nreports == 0)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_UNKNOWN),
				 errmsg("unknown tenant \"%s\"", vs.only),
				 errhint("See autora.tenants for the registered tenants.")));

	IndexEntries(&vs);
	for (int i = 0; i < vs.nreports; i++)
		CheckChain(&vs, i);
	CheckUnsealed(&vs);

	qsort(vs.reports, vs.nreports, sizeof(TenantReport), CompareReports);
	for (int i = 0; i < vs.nreports; i++)
	{
		TenantReport *r = &vs.reports[i];
		Datum		values[7];
		bool		nulls[7] = {false};

		values[0] = r->tenant ? CStringGetTextDatum(r->tenant) : (Datum) 0;
		nulls[0] = (r->tenant == NULL);
		values[1] = Int64GetDatum(r->entries);
		values[2] = Int64GetDatum(r->sealed);
		values[3] = Int64GetDatum(list_length(r->blocks));
		if (r->failed)
		{
			values[4] = BoolGetDatum(false);
			values[5] = Int64GetDatum(r->first_bad);
			values[6] = CStringGetTextDatum(r->detail);
		}
		else
		{
			/* ok is unknown (NULL) while entries wait for the sealer */
			values[4] = BoolGetDatum(true);
			nulls[4] = (r->pending > 0);
			nulls[5] = true;
			values[6] = CStringGetTextDatum(r->pending > 0
											? psprintf("%lld %s pending seal; the sealed chain verifies",
													   (long long) r->pending,
													   r->pending == 1 ? "entry" : "entries")
											: psprintf("chain verified: %lld %s in %d %s",
													   (long long) r->sealed,
													   r->sealed == 1 ? "entry" : "entries",
													   list_length(r->blocks),
													   list_length(r->blocks) == 1 ? "block" : "blocks"));
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
