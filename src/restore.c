/*-------------------------------------------------------------------------
 * restore.c
 *	  The steps of a restore that write (README, "Restore"): the marker
 *	  set by the first load of a ledger relation, and
 *	  autora.restore_finish(), which ends the restore (restore_state.c
 *	  explains both).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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

#include "encoding.h"
#include "ledger.h"
#include "objects.h"
#include "registry.h"
#include "restore.h"
#include "restore_state.h"
#include "writer.h"

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
	const AutoraOids *oids = AutoraGetOids(false);
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
