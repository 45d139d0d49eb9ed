/*-------------------------------------------------------------------------
 * verify.c
 *	  autora.verify(): recomputes every entry hash, every block's Merkle
 *	  root and hash, and every chain link, per tenant, and names the first
 *	  entry that fails.
 *
 * One pass over the blocks collects the chains and what they record of
 * each entry; one sequential pass over the ledger then hashes each entry
 * from its stored fields and compares it with that record at once, so that
 * memory holds the blocks' records plus a few bytes per entry, not every
 * recomputed hash.  Entries that no block holds are pending when their
 * transaction was still running at the last seal round, and a failure
 * otherwise (the sealer would have sealed them: such an entry was added
 * behind the sealer's back).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
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
#include "objects.h"
#include "restore_state.h"
#include "tenants.h"
#include "writer.h"

typedef struct BlockInfo
{
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
	int32		tenant;			/* index into the reports */
	int64		first_slot;		/* its entry list's slots; -1: none (unusable) */
	bool		unreadable;		/* see BlockRowReadable: only block_no and
								 * first_entry were read */
} BlockInfo;

/* What the ledger scan found for one position of a block's entry list. */
#define SLOT_FOUND			0x01	/* an entry of the block's tenant has this id */
#define SLOT_STORED_OK		0x02	/* its fields hash to its stored hash */
#define SLOT_MATCHES		0x04	/* they hash to the hash the block recorded */
#define SLOT_LISTED_TWICE	0x08	/* an earlier slot of the tenant lists the id */
#define SLOT_IN_PROGRESS	0x10	/* its transaction was running at the seal */

typedef struct SlotState
{
	int32		block;			/* index into the blocks */
	uint8		flags;
} SlotState;

/* An entry the scan met, by id, transaction and tenant (report index). */
typedef struct EntryRef
{
	int64		id;
	uint64		xid;
	int32		tenant;
} EntryRef;

typedef struct EntryRefs
{
	EntryRef   *items;
	int64		n;
	int64		max;
} EntryRefs;

typedef struct SlotKey
{
	int64		id;
	int64		slot;
} SlotKey;

/*
 * A slot listing an id whose first slot belongs to another tenant's block:
 * only in a tampered ledger, or one whose id sequence was set back.
 */
typedef struct OtherListing
{
	int64		id;
	int32		tenant;
	int64		slot;
} OtherListing;

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

/*
 * Reports by tenant id.  The key points to the id itself, of any length: a
 * tampered ledger may hold ids longer than autora.tenants allows, and a
 * fixed-size key would truncate them and merge their chains.  The platform
 * chain's key is NULL, so that a forged empty id is a chain of its own.
 */
typedef struct TenantKey
{
	const char *key;			/* tenant id; NULL for the platform chain */
	int32		index;
} TenantKey;

typedef struct VerifyState
{
	const char *only;			/* tenant filter, or NULL for all */
	HTAB	   *tenant_index;
	TenantReport *reports;
	int			nreports;
	int			maxreports;
	/* the usable blocks, by tenant and block_no, and their entry lists' slots */
	BlockInfo **blocks;
	int64		nblocks;
	SlotState  *slots;
	int64		nslots;
	/* first slot of an id: by_id[id - min_id] (-1: none), or a search of keys */
	int64		min_id;
	int64		max_id;
	int32	   *by_id;
	SlotKey    *keys;
	int64		nkeys;
	/* later listings of an id by other tenants' blocks, by id and tenant */
	OtherListing *others;
	int64		nothers;
	int64		maxothers;
	/* entries in no slot, and second entries of an id */
	EntryRefs	unsealed;
	EntryRefs	duplicates;
	/* verify(tenant): other chains' entries with an id its blocks list */
	EntryRefs	foreign;
	SealHorizon last;			/* horizon of the last seal round */
	int64		last_block_id;
	bool		last_block_id_null;
	bool		last_intact;	/* that block hashes to its block_hash */
} VerifyState;

/* TenantKey's hash function: the whole id, however long. */
static uint32
TenantKeyHash(const void *key, Size keysize)
{
	const char *id = *(const char *const *) key;

	return id ? hash_bytes((const unsigned char *) id, strlen(id)) : 0;
}

/* TenantKey's match function: 0 for the same id, or both NULL. */
static int
TenantKeyCompare(const void *a, const void *b, Size keysize)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;

	if (x == NULL || y == NULL)
		return x != y;
	return strcmp(x, y);
}

/* The report of a chain, created on first sight. */
static int32
TenantIndex(VerifyState *vs, const char *tenant)
{
	TenantKey  *tk;
	bool		found;

	tk = hash_search(vs->tenant_index, &tenant, HASH_ENTER, &found);
	if (found)
		return tk->index;
	/* the caller's string may be short-lived: the table keeps its own */
	tk->key = tenant ? pstrdup(tenant) : NULL;
	if (vs->nreports == vs->maxreports)
	{
		vs->maxreports *= 2;
		vs->reports = repalloc(vs->reports, sizeof(TenantReport) * vs->maxreports);
	}
	memset(&vs->reports[vs->nreports], 0, sizeof(TenantReport));
	vs->reports[vs->nreports].tenant = (char *) tk->key;
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

static bytea *
CopyBytea(Datum d)
{
	return DatumGetByteaPCopy(d);
}

static void
AppendEntryRef(EntryRefs *refs, int64 id, uint64 xid, int32 tenant)
{
	if (refs->n == refs->max)
	{
		refs->max = Max(refs->max * 2, 1024);
		refs->items = refs->items
			? repalloc_huge(refs->items, sizeof(EntryRef) * refs->max)
			: palloc_extended(sizeof(EntryRef) * refs->max, MCXT_ALLOC_HUGE);
	}
	refs->items[refs->n].id = id;
	refs->items[refs->n].xid = xid;
	refs->items[refs->n].tenant = tenant;
	refs->n++;
}

/*
 * Comparator for qsort and bsearch of EntryRef, SlotKey and OtherListing:
 * all begin with the id.
 */
static int
CompareLeadingIds(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	StaticAssertStmt(offsetof(EntryRef, id) == 0 && offsetof(SlotKey, id) == 0 &&
					 offsetof(OtherListing, id) == 0,
					 "EntryRef, SlotKey and OtherListing begin with the id");
	return (x > y) - (x < y);
}

/* Pass 1: collect the blocks of the wanted chains and the last horizon. */
static void
ScanBlocks(VerifyState *vs, Relation blocks, Snapshot snap)
{
	TupleTableSlot *slot = table_slot_create(blocks, NULL);
	TableScanDesc scan = table_beginscan(blocks, snap, 0, NULL);
	MemoryContext per_row = AllocSetContextCreate(CurrentMemoryContext, "autora verify block",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext outer = CurrentMemoryContext;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		Datum	   *values;
		bool	   *nulls;
		BlockInfo  *b;
		char	   *tenant;
		ArrayType  *ids;
		int64		block_id;
		bool		readable;

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		values = slot->tts_values;
		nulls = slot->tts_isnull;

		/* detoasted arrays are read in a per-row context: only copies are kept */
		MemoryContextReset(per_row);
		MemoryContextSwitchTo(per_row);
		readable = BlockRowReadable(values, nulls);
		block_id = nulls[BC_BLOCK_ID] ? PG_INT64_MAX : DatumGetInt64(values[BC_BLOCK_ID]);
		if (block_id > vs->last_block_id)
		{
			vs->last_block_id = block_id;
			vs->last_block_id_null = nulls[BC_BLOCK_ID];
			vs->last_intact = BlockRowVerifies(values, nulls);
			MemoryContextSwitchTo(outer);
			if (vs->last_intact)
				vs->last = HorizonFromBlockRow(values);
		}
		MemoryContextSwitchTo(outer);

		tenant = nulls[BC_TENANT_ID] ? NULL : TextDatumGetCString(values[BC_TENANT_ID]);
		if (!TenantWanted(vs, tenant))
			continue;

		b = palloc0(sizeof(BlockInfo));
		b->tenant = TenantIndex(vs, tenant);
		b->first_slot = -1;
		vs->reports[b->tenant].blocks = lappend(vs->reports[b->tenant].blocks, b);
		if (!readable)
		{
			b->unreadable = true;
			b->block_no = nulls[BC_BLOCK_NO] ? 0 : DatumGetInt64(values[BC_BLOCK_NO]);
			b->first_entry = nulls[BC_FIRST_ENTRY] ? PG_INT64_MAX : DatumGetInt64(values[BC_FIRST_ENTRY]);
			continue;
		}
		b->block_no = DatumGetInt64(values[BC_BLOCK_NO]);
		b->format = DatumGetInt16(values[BC_FORMAT]);
		b->sealed_at = DatumGetTimestampTz(values[BC_SEALED_AT]);
		b->entry_count = DatumGetInt32(values[BC_ENTRY_COUNT]);
		b->first_entry = DatumGetInt64(values[BC_FIRST_ENTRY]);
		b->last_entry = DatumGetInt64(values[BC_LAST_ENTRY]);
		MemoryContextSwitchTo(per_row);
		ids = DatumGetArrayTypeP(values[BC_ENTRY_IDS]);
		MemoryContextSwitchTo(outer);
		b->nids = ArrayGetNItems(ARR_NDIM(ids), ARR_DIMS(ids));
		b->ids = palloc_extended(sizeof(int64) * Max(b->nids, 1), MCXT_ALLOC_HUGE);
		memcpy(b->ids, ARR_DATA_PTR(ids), sizeof(int64) * b->nids);
		b->entry_hashes = CopyBytea(values[BC_ENTRY_HASHES]);
		b->merkle_root = CopyBytea(values[BC_MERKLE_ROOT]);
		b->prev_hash = CopyBytea(values[BC_PREV_HASH]);
		b->block_hash = CopyBytea(values[BC_BLOCK_HASH]);
		b->horizon = HorizonFromBlockRow(values);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(per_row);
}

/*
 * A block whose entries can be checked: it could be read, its format is this
 * version's and its entry list, counts and hashes agree.  The entries of any
 * other block count as in no block (CheckBlock reports why).
 */
static bool
BlockUsable(const BlockInfo *b)
{
	return !b->unreadable && b->format == LEDGER_FORMAT_VERSION &&
		b->nids >= 1 && b->nids == b->entry_count &&
		VARSIZE_ANY_EXHDR(b->entry_hashes) == (Size) b->nids * LEDGER_HASH_LEN &&
		VARSIZE_ANY_EXHDR(b->merkle_root) == LEDGER_HASH_LEN &&
		VARSIZE_ANY_EXHDR(b->prev_hash) == LEDGER_HASH_LEN &&
		b->ids[0] == b->first_entry && b->ids[b->nids - 1] == b->last_entry;
}

static int
CompareSlotKeys(const void *a, const void *b)
{
	const SlotKey *x = a;
	const SlotKey *y = b;
	int			by_id = CompareLeadingIds(a, b);

	return by_id != 0 ? by_id : (x->slot > y->slot) - (x->slot < y->slot);
}

static int
CompareBlockNos(const ListCell *a, const ListCell *b)
{
	int64		x = ((BlockInfo *) lfirst(a))->block_no;
	int64		y = ((BlockInfo *) lfirst(b))->block_no;

	return (x > y) - (x < y);
}

static inline int32
SlotTenant(VerifyState *vs, int64 slot)
{
	return vs->blocks[vs->slots[slot].block]->tenant;
}

/* First slot listing an id, or -1. */
static int64
FirstSlotOf(VerifyState *vs, int64 id)
{
	SlotKey		key;
	SlotKey    *found;

	if (vs->nslots == 0 || id < vs->min_id || id > vs->max_id)
		return -1;
	if (vs->by_id != NULL)
		return vs->by_id[(uint64) id - (uint64) vs->min_id];
	key.id = id;
	found = bsearch(&key, vs->keys, vs->nkeys, sizeof(SlotKey), CompareLeadingIds);
	return found ? found->slot : -1;
}

/* Order of the other listings: by id, then tenant, then slot. */
static int
CompareOtherListings(const void *a, const void *b)
{
	const OtherListing *x = a;
	const OtherListing *y = b;
	int			by_id = CompareLeadingIds(a, b);

	if (by_id != 0)
		return by_id;
	if (x->tenant != y->tenant)
		return (x->tenant > y->tenant) - (x->tenant < y->tenant);
	return (x->slot > y->slot) - (x->slot < y->slot);
}

/* Index of the first other listing of an id or a higher one. */
static int64
OtherListingsFrom(VerifyState *vs, int64 id)
{
	int64		lo = 0;
	int64		hi = vs->nothers;

	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (vs->others[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The slot of a tenant's block that lists an id, or -1. */
static int64
SlotOf(VerifyState *vs, int64 id, int32 tenant)
{
	int64		s = FirstSlotOf(vs, id);

	if (s < 0 || SlotTenant(vs, s) == tenant)
		return s;
	for (int64 i = OtherListingsFrom(vs, id); i < vs->nothers && vs->others[i].id == id; i++)
		if (vs->others[i].tenant == tenant)
			return vs->others[i].slot;
	return -1;
}

/*
 * Slot s lists the id that slot `first` listed before it.  In one tenant's
 * chain that means the entry is sealed twice; a block of another tenant that
 * lists the id is that tenant's failure (the entry is missing from its
 * chain), and must not make the entry's own chain fail: it is kept apart,
 * as that tenant's listing of the id (see SortOtherListings).
 */
static void
AddLaterListing(VerifyState *vs, int64 first, int64 s, int64 id)
{
	OtherListing *other;

	if (SlotTenant(vs, first) == SlotTenant(vs, s))
	{
		vs->slots[s].flags |= SLOT_LISTED_TWICE;
		return;
	}
	if (vs->nothers == vs->maxothers)
	{
		vs->maxothers = Max(vs->maxothers * 2, 64);
		vs->others = vs->others
			? repalloc_huge(vs->others, sizeof(OtherListing) * vs->maxothers)
			: palloc_extended(sizeof(OtherListing) * vs->maxothers, MCXT_ALLOC_HUGE);
	}
	other = &vs->others[vs->nothers++];
	other->id = id;
	other->tenant = SlotTenant(vs, s);
	other->slot = s;
}

/*
 * Sorts the other listings for search, keeping each tenant's first slot of
 * an id; its later ones list the id twice in that tenant's chain.
 */
static void
SortOtherListings(VerifyState *vs)
{
	int64		kept = 0;

	if (vs->nothers == 0)
		return;
	qsort(vs->others, vs->nothers, sizeof(OtherListing), CompareOtherListings);
	for (int64 i = 0; i < vs->nothers; i++)
	{
		OtherListing *o = &vs->others[i];

		if (kept > 0 && vs->others[kept - 1].id == o->id &&
			vs->others[kept - 1].tenant == o->tenant)
			vs->slots[o->slot].flags |= SLOT_LISTED_TWICE;
		else
			vs->others[kept++] = *o;
	}
	vs->nothers = kept;
}

/*
 * Gives every position of a usable block's entry list a slot, tenant by
 * tenant in chain order, and makes the slots findable by id.  Ids come from
 * one sequence and are nearly dense, so a table indexed by id - min_id finds
 * a slot in one step; when the range is sparse (one tenant's entries among
 * many, or a forged far-away id) a sorted array is searched instead, so that
 * memory stays within 16 bytes a slot.
 */
static void
IndexSlots(VerifyState *vs)
{
	uint64		range;
	int64		nusable = 0;

	vs->min_id = PG_INT64_MAX;
	vs->max_id = PG_INT64_MIN;
	for (int t = 0; t < vs->nreports; t++)
	{
		ListCell   *lc;

		/* CheckChain walks each chain in this order too */
		list_sort(vs->reports[t].blocks, CompareBlockNos);
		foreach(lc, vs->reports[t].blocks)
		{
			BlockInfo  *b = lfirst(lc);

			if (!BlockUsable(b))
				continue;
			b->first_slot = vs->nslots;
			vs->nslots += b->nids;
			nusable++;
			for (int j = 0; j < b->nids; j++)
			{
				vs->min_id = Min(vs->min_id, b->ids[j]);
				vs->max_id = Max(vs->max_id, b->ids[j]);
			}
		}
	}
	if (vs->nslots == 0)
		return;
	if (nusable > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many ledger blocks to verify at once: %lld", (long long) nusable),
				 errhint("Verify one tenant at a time with autora.verify(tenant).")));

	vs->blocks = palloc_extended(sizeof(BlockInfo *) * nusable, MCXT_ALLOC_HUGE);
	vs->slots = palloc_extended(sizeof(SlotState) * vs->nslots, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	range = (uint64) vs->max_id - (uint64) vs->min_id + 1;
	if (range != 0 && range <= (uint64) vs->nslots * 4 + 65536 && vs->nslots <= PG_INT32_MAX)
	{
		vs->by_id = palloc_extended(sizeof(int32) * range, MCXT_ALLOC_HUGE);
		memset(vs->by_id, 0xff, sizeof(int32) * range);
	}
	else
		vs->keys = palloc_extended(sizeof(SlotKey) * vs->nslots, MCXT_ALLOC_HUGE);

	for (int t = 0; t < vs->nreports; t++)
	{
		ListCell   *lc;

		foreach(lc, vs->reports[t].blocks)
		{
			BlockInfo  *b = lfirst(lc);

			if (b->first_slot < 0)
				continue;
			vs->blocks[vs->nblocks] = b;
			for (int j = 0; j < b->nids; j++)
			{
				int64		s = b->first_slot + j;

				vs->slots[s].block = (int32) vs->nblocks;
				if (vs->by_id != NULL)
				{
					int32	   *at = &vs->by_id[(uint64) b->ids[j] - (uint64) vs->min_id];

					if (*at >= 0)
						AddLaterListing(vs, *at, s, b->ids[j]);
					else
						*at = (int32) s;
				}
				else
				{
					vs->keys[s].id = b->ids[j];
					vs->keys[s].slot = s;
				}
			}
			vs->nblocks++;
		}
	}

	if (vs->keys != NULL)
	{
		qsort(vs->keys, vs->nslots, sizeof(SlotKey), CompareSlotKeys);
		/* keep each id's first slot */
		for (int64 i = 0; i < vs->nslots; i++)
		{
			if (vs->nkeys > 0 && vs->keys[vs->nkeys - 1].id == vs->keys[i].id)
				AddLaterListing(vs, vs->keys[vs->nkeys - 1].slot, vs->keys[i].slot, vs->keys[i].id);
			else
				vs->keys[vs->nkeys++] = vs->keys[i];
		}
	}
	SortOtherListings(vs);
}

/*
 * Pass 2: hash every entry from its stored fields and record, in the slot
 * of its tenant's block that lists it, whether that hash is its stored one
 * and the one the block recorded.
 */
static void
ScanEntries(VerifyState *vs, Relation ledger, Snapshot snap)
{
	TupleTableSlot *slot = table_slot_create(ledger, NULL);
	TableScanDesc scan = table_beginscan(ledger, snap, 0, NULL);
	MemoryContext per_tuple = AllocSetContextCreate(CurrentMemoryContext, "autora verify tuple",
													ALLOCSET_DEFAULT_SIZES);
	MemoryContext outer = CurrentMemoryContext;
	int32		last_index = -1;	/* tenant of the entry before */

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		Datum	   *values;
		bool	   *nulls;
		int64		id;
		uint64		xid;
		int64		s;
		uint8		hash[LEDGER_HASH_LEN];
		bool		stored_ok;

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
			{
				/* another chain's entry with an id this chain seals: shared */
				if (!nulls[LC_ID] && FirstSlotOf(vs, DatumGetInt64(values[LC_ID])) >= 0)
					AppendEntryRef(&vs->foreign, DatumGetInt64(values[LC_ID]), 0, -1);
				continue;
			}
		}

		vs->reports[last_index].entries++;
		if (nulls[LC_ID])
		{
			Fail(&vs->reports[last_index], 0, "an entry has no id (NULL)");
			continue;
		}
		id = DatumGetInt64(values[LC_ID]);
		/* a NULL xid reads as 0: a transaction that ended before any seal */
		xid = nulls[LC_XID] ? 0 : (uint64) DatumGetInt64(values[LC_XID]);
		MemoryContextSwitchTo(per_tuple);
		EntryHash(values, nulls, NULL, hash);
		stored_ok = !nulls[LC_HASH] && HashEquals(DatumGetByteaPP(values[LC_HASH]), hash);
		MemoryContextSwitchTo(outer);
		MemoryContextReset(per_tuple);

		s = SlotOf(vs, id, last_index);
		if (s < 0)
			AppendEntryRef(&vs->unsealed, id, xid, last_index);
		else if (vs->slots[s].flags & SLOT_FOUND)
			AppendEntryRef(&vs->duplicates, id, xid, last_index);
		else
		{
			SlotState  *st = &vs->slots[s];
			BlockInfo  *b = vs->blocks[st->block];
			const uint8 *recorded = (const uint8 *) VARDATA_ANY(b->entry_hashes) +
				(Size) (s - b->first_slot) * LEDGER_HASH_LEN;

			st->flags |= SLOT_FOUND;
			if (stored_ok)
				st->flags |= SLOT_STORED_OK;
			if (memcmp(hash, recorded, LEDGER_HASH_LEN) == 0)
				st->flags |= SLOT_MATCHES;
			if (HorizonInProgress(&b->horizon, xid))
				st->flags |= SLOT_IN_PROGRESS;
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(per_tuple);
}

/*
 * The chains (report indexes; -1: another chain's entry met by
 * verify(tenant)) of the entries that share one id.  A chain holding two of
 * them has a copied entry; a chain holding one shares the id with another.
 */
static void
ReportSharedId(VerifyState *vs, int64 id, List *holders)
{
	ListCell   *lc;
	int32		prev = -1;

	list_sort(holders, list_int_cmp);
	foreach(lc, holders)
	{
		int32		t = lfirst_int(lc);
		ListCell   *next = lnext(holders, lc);

		if (t < 0 || t == prev)
			continue;
		prev = t;
		if (next != NULL && lfirst_int(next) == t)
			Fail(&vs->reports[t], id, "entry id %lld appears more than once", (long long) id);
		else
			Fail(&vs->reports[t], id, "entry id %lld is also the id of another chain's entry",
				 (long long) id);
	}
}

/*
 * Ids come from one sequence, so no two entries share one, whatever their
 * chains: a shared id means a row was copied in, or the sequence was set
 * back (setval) so that new entries took old ids.  Every chain holding an
 * entry with a shared id fails at it, in id order.  The entries with an id
 * are: those that took a slot listing it (the id's first slot, and other
 * tenants' listings), the second entries of a slot's id, entries in no slot,
 * and, for verify(tenant), other chains' entries with an id its blocks list.
 * Those lists are sorted and walked together, one id at a time.
 */
static void
CheckUniqueIds(VerifyState *vs)
{
	EntryRefs  *lists[3] = {&vs->duplicates, &vs->unsealed, &vs->foreign};
	int64		pos[3] = {0, 0, 0};
	int64		opos = 0;

	for (int l = 0; l < 3; l++)
		if (lists[l]->n > 1)
			qsort(lists[l]->items, lists[l]->n, sizeof(EntryRef), CompareLeadingIds);
	for (;;)
	{
		int64		id = PG_INT64_MAX;
		bool		more = false;
		List	   *holders = NIL;
		int64		s;

		for (int l = 0; l < 3; l++)
			if (pos[l] < lists[l]->n)
			{
				id = Min(id, lists[l]->items[pos[l]].id);
				more = true;
			}
		if (opos < vs->nothers)
		{
			id = Min(id, vs->others[opos].id);
			more = true;
		}
		if (!more)
			break;

		for (int l = 0; l < 3; l++)
			for (; pos[l] < lists[l]->n && lists[l]->items[pos[l]].id == id; pos[l]++)
				holders = lappend_int(holders, lists[l]->items[pos[l]].tenant);
		s = FirstSlotOf(vs, id);
		if (s >= 0 && (vs->slots[s].flags & SLOT_FOUND))
			holders = lappend_int(holders, SlotTenant(vs, s));
		for (; opos < vs->nothers && vs->others[opos].id == id; opos++)
			if (vs->slots[vs->others[opos].slot].flags & SLOT_FOUND)
				holders = lappend_int(holders, vs->others[opos].tenant);
		if (list_length(holders) >= 2)
			ReportSharedId(vs, id, holders);
		list_free(holders);
	}
}

/* Checks one block's header, Merkle root and entries. */
static void
CheckBlock(VerifyState *vs, TenantReport *r, BlockInfo *b,
		   int64 expected_no, const uint8 *expected_prev)
{
	BlockHeader hdr;
	uint8		hash[LEDGER_HASH_LEN];
	const uint8 *recorded;
	/* its entry list, not its header, says where the block starts */
	int64		first = b->nids > 0 ? b->ids[0] : b->first_entry;

	if (b->unreadable)
	{
		Fail(r, first, "block %lld is unreadable: NULL fields, or arrays that are not bigint[] without NULLs",
			 (long long) b->block_no);
		return;
	}
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
	if (!BlockUsable(b))
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

	recorded = (const uint8 *) VARDATA_ANY(b->entry_hashes);
	MerkleRoot(recorded, b->nids, hash);
	if (!HashEquals(b->merkle_root, hash))
		Fail(r, first, "block %lld was altered: its entry hashes do not match its Merkle root",
			 (long long) b->block_no);

	for (int i = 0; i < b->nids; i++)
	{
		int64		id = b->ids[i];
		SlotState  *st = &vs->slots[b->first_slot + i];

		if (i > 0 && id <= b->ids[i - 1])
			Fail(r, id, "block %lld lists entry %lld out of order",
				 (long long) b->block_no, (long long) id);
		if (st->flags & SLOT_LISTED_TWICE)
		{
			Fail(r, id, "entry %lld is sealed in more than one block", (long long) id);
			continue;
		}
		if (!(st->flags & SLOT_FOUND))
		{
			Fail(r, id, "entry %lld sealed in block %lld is missing",
				 (long long) id, (long long) b->block_no);
			continue;
		}
		if (st->flags & SLOT_IN_PROGRESS)
			Fail(r, id, "entry %lld is sealed in block %lld although its transaction was still running",
				 (long long) id, (long long) b->block_no);
		r->sealed++;
		if (!(st->flags & SLOT_STORED_OK))
			Fail(r, id, "entry %lld was altered: its fields no longer match its hash",
				 (long long) id);
		else if (!(st->flags & SLOT_MATCHES))
			Fail(r, id, "entry %lld was altered: it does not match the hash sealed in block %lld",
				 (long long) id, (long long) b->block_no);
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
	/* IndexSlots put the blocks in block_no order */
	foreach(lc, r->blocks)
	{
		BlockInfo  *b = lfirst(lc);

		CheckBlock(vs, r, b, expected_no, prev);
		if (b->block_hash != NULL && VARSIZE_ANY_EXHDR(b->block_hash) == LEDGER_HASH_LEN)
			memcpy(prev, VARDATA_ANY(b->block_hash), LEDGER_HASH_LEN);
		expected_no = b->block_no + 1;
	}
}

/* Entries no block holds: pending, or added after the sealer passed. */
static void
CheckUnsealed(VerifyState *vs)
{
	const char *last_block = vs->last_block_id_null ? "NULL"
		: psprintf(INT64_FORMAT, vs->last_block_id);

	for (int64 i = 0; i < vs->unsealed.n; i++)
	{
		EntryRef   *e = &vs->unsealed.items[i];
		TenantReport *r = &vs->reports[e->tenant];

		if (!vs->last_intact)
			Fail(r, e->id, "entry %lld is in no block, and the last seal round's block (block_id %s) was altered",
				 (long long) e->id, last_block);
		else if (HorizonInProgress(&vs->last, e->xid))
			r->pending++;
		else
			Fail(r, e->id, "entry %lld is in no block although its transaction ended before the last seal",
				 (long long) e->id);
	}
}

/*
 * Registered tenants without entries still get a row.  autora.tenants is
 * scanned directly, with the passes' snapshot: verify runs no SQL, so a
 * superuser calling it resolves nothing through the search_path.
 */
static void
AddRegisteredTenants(VerifyState *vs)
{
	ListCell   *lc;

	foreach(lc, AllTenants())
	{
		if (TenantWanted(vs, lfirst(lc)))
			(void) TenantIndex(vs, lfirst(lc));
	}
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
	const AutoraOids *oids = AutoraGetOids(false);
	VerifyState vs = {0};
	bool		restoring;
	HASHCTL		ctl;
	Relation	ledger;
	Relation	blocks;
	Snapshot	snap = GetActiveSnapshot();

	InitMaterializedSRF(fcinfo, 0);
	WriterFlushAll();

	vs.only = PG_ARGISNULL(0) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(0));
	ctl.keysize = sizeof(((TenantKey *) 0)->key);
	ctl.entrysize = sizeof(TenantKey);
	ctl.hash = TenantKeyHash;
	ctl.match = TenantKeyCompare;
	ctl.hcxt = CurrentMemoryContext;
	vs.tenant_index = hash_create("autora verify tenants", 64, &ctl,
								  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	vs.maxreports = 16;
	vs.reports = palloc(sizeof(TenantReport) * vs.maxreports);
	vs.last_intact = true;		/* no block yet: nothing to distrust */

	/* one snapshot for both passes, so entries and blocks agree */
	blocks = table_open(oids->blocks, AccessShareLock);
	ledger = table_open(oids->ledger, AccessShareLock);
	ScanBlocks(&vs, blocks, snap);
	IndexSlots(&vs);
	ScanEntries(&vs, ledger, snap);
	table_close(ledger, AccessShareLock);
	table_close(blocks, AccessShareLock);

	AddRegisteredTenants(&vs);
	if (vs.only != NULL && vs.nreports == 0)
		UnknownTenantError(vs.only);

	CheckUniqueIds(&vs);
	for (int i = 0; i < vs.nreports; i++)
		CheckChain(&vs, i);
	CheckUnsealed(&vs);

	restoring = RestoreUnderWay();
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
			int64		numbered = (r->entries == 0 && r->blocks == NIL) ? ChainNumbered(r->tenant) : 0;
			char	   *detail;

			/*
			 * ok is unknown (NULL) while entries wait for the sealer, while
			 * a restore is under way, and for a chain whose sequence numbered
			 * entries that are not there (a restore that did not load them,
			 * or transactions that all rolled back: nothing proves which).
			 */
			values[4] = BoolGetDatum(true);
			nulls[4] = (r->pending > 0 || restoring || numbered > 0);
			nulls[5] = true;
			if (numbered > 0)
				detail = psprintf("no entries, although the chain's sequence has numbered %lld: "
								  "they were not restored, or never committed",
								  (long long) numbered);
			else if (r->pending > 0)
				detail = psprintf("%lld %s pending seal; the sealed chain verifies",
								  (long long) r->pending,
								  r->pending == 1 ? "entry" : "entries");
			else
				detail = psprintf("chain verified: %lld %s in %d %s",
								  (long long) r->sealed,
								  r->sealed == 1 ? "entry" : "entries",
								  list_length(r->blocks),
								  list_length(r->blocks) == 1 ? "block" : "blocks");
			if (restoring)
				detail = psprintf("a restore is under way (run autora.restore_finish() when it is complete); %s",
								  detail);
			values[6] = CStringGetTextDatum(detail);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
