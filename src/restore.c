/*-------------------------------------------------------------------------
 * restore.c
 *	  Loading a dump (README, "Restore").  A superuser restores with
 *	  autora.restore_mode on, which lets the empty ledger relations be
 *	  loaded; the first such load marks a restore under way
 *	  (autora.restore_state, never dumped), and sealing waits until
 *	  autora.restore_finish(): a round between loading the entries and
 *	  loading their blocks would seal them all again, into other blocks.
 *
 * The ledger's xid space.  Seal horizons compare the transaction ids
 * entries record; a dump restored into a cluster whose transaction counter
 * is behind the source's would have new entries numbered below the loaded
 * horizons.  restore_finish() then sets a base (autora.xid_base, dumped
 * with the ledger) that the ledger adds to every FullTransactionId it
 * records, so that its xids keep rising across restores.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/snapmgr.h"

#include "chain.h"
#include "encoding.h"
#include "ledger.h"
#include "registry.h"
#include "restore.h"
#include "writer.h"

static bool xid_base_known = false;
static uint64 xid_base = 0;
static Oid	xid_base_relid = InvalidOid;	/* where it was read from */

static void
RestoreRelcacheCallback(Datum arg, Oid relid)
{
	if (!OidIsValid(relid) || relid == xid_base_relid)
		xid_base_known = false;
}

void
RestoreInit(void)
{
	CacheRegisterRelcacheCallback(RestoreRelcacheCallback, (Datum) 0);
}

/* Calls fn on every row of a small autora table; returns how many there were. */
static int64
ScanRows(Oid relid, void (*fn) (TupleTableSlot *slot, void *arg), void *arg)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Snapshot	snapshot = RegisterSnapshot(GetLatestSnapshot());
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	int64		n = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		if (fn)
			fn(slot, arg);
		n++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return n;
}

static void
ReadBase(TupleTableSlot *slot, void *arg)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, 1, &isnull);

	if (!isnull)
		*(uint64 *) arg = Max(*(uint64 *) arg, (uint64) DatumGetInt64(d));
}

uint64
RestoreXidBase(void)
{
	const LedgerOids *oids;
	uint64		base = 0;

	if (xid_base_known)
		return xid_base;
	oids = LedgerGetOids(false);
	(void) ScanRows(oids->xid_base, ReadBase, &base);
	/* horizons are compared as signed bigints too: far below their limit */
	if (base >= UINT64CONST(1) << 62)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the ledger's xid base " UINT64_FORMAT " is out of range", base),
				 errhint("autora.xid_base is set only by autora.restore_finish(); compare it with the source of the last restore.")));
	xid_base = base;
	xid_base_relid = oids->xid_base;
	xid_base_known = true;
	return xid_base;
}

bool
RestoreUnderWay(void)
{
	return ScanRows(LedgerGetOids(false)->restore_state, NULL, NULL) > 0;
}

void
RestoreNoteLoad(void)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1];

	if (RestoreUnderWay())
		return;
	values[0] = CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false));
	RegistryExecute("INSERT INTO autora.restore_state (started_by) VALUES ($1)",
					1, argtypes, values);
}

/* What the loaded ledger holds: counts and its highest transaction id. */
typedef struct LoadedLedger
{
	int64		entries;
	int64		blocks;
	uint64		max_xid;
	int			xid_column;		/* 1-based */
} LoadedLedger;

static void
NoteXid(TupleTableSlot *slot, void *arg)
{
	LoadedLedger *loaded = arg;
	bool		isnull;
	Datum		d = slot_getattr(slot, loaded->xid_column, &isnull);

	if (!isnull)
		loaded->max_xid = Max(loaded->max_xid, (uint64) DatumGetInt64(d));
}

/*
 * autora.restore_finish(): the restore is complete.  Sets the xid base so
 * that new entries are numbered above everything loaded (seal horizons
 * included), lets sealing resume, and records a restore event.
 */
PG_FUNCTION_INFO_V1(autora_restore_finish);
Datum
autora_restore_finish(PG_FUNCTION_ARGS)
{
	const LedgerOids *oids = LedgerGetOids(false);
	LoadedLedger loaded = {0};
	uint64		next;
	uint64		base = RestoreXidBase();
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];
	LedgerRecord rec = {0};
	StringInfoData meta;

	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only a superuser may finish a restore"),
				 errhint("The superuser who ran the restore calls autora.restore_finish().")));
	if (!RestoreUnderWay())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("no restore is under way in this database"),
				 errdetail("A restore begins when a superuser with autora.restore_mode on loads the ledger."),
				 errhint("See the README, \"Restore\".")));

	WriterFlushAll();
	loaded.xid_column = LC_XID + 1;
	loaded.entries = ScanRows(oids->ledger, NoteXid, &loaded);
	loaded.xid_column = BC_SEAL_XMAX + 1;
	loaded.blocks = ScanRows(oids->blocks, NoteXid, &loaded);

	/* a cluster behind the source: number above everything loaded */
	next = U64FromFullTransactionId(ReadNextFullTransactionId());
	if (next + base <= loaded.max_xid)
	{
		base = loaded.max_xid + 1 - next;
		values[0] = Int64GetDatum((int64) base);
		RegistryExecute("DELETE FROM autora.xid_base", 0, NULL, NULL);
		RegistryExecute("INSERT INTO autora.xid_base (base) VALUES ($1)", 1, argtypes, values);
		CacheInvalidateRelcacheByRelid(oids->xid_base);
	}
	RegistryExecute("DELETE FROM autora.restore_state", 0, NULL, NULL);
	CommandCounterIncrement();

	initStringInfo(&meta);
	appendStringInfo(&meta, "{\"entries\": " INT64_FORMAT ", \"blocks\": " INT64_FORMAT
					 ", \"xid_base\": " UINT64_FORMAT ", \"by\": ",
					 loaded.entries, loaded.blocks, base);
	escape_json(&meta, GetUserNameFromId(GetSessionUserId(), false));
	appendStringInfoChar(&meta, '}');
	rec.op = "EVENT";
	rec.event = "restore_finished";
	rec.metadata = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(meta.data)));
	(void) LedgerAppend(&rec);
	WriterFlushAll();
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(meta.data)));
}
