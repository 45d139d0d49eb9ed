/*-------------------------------------------------------------------------
 * restore_state.c
 *	  What a restore leaves in the database (README, "Restore"): the
 *	  restore marker, and the ledger's xid base.
 *
 * A superuser restores with autora.restore_mode on, which lets the empty
 * ledger relations be loaded; the first such load marks a restore under way
 * (autora.restore_state, never dumped), and sealing waits until
 * autora.restore_finish() (restore.c): a round between loading the entries
 * and loading their blocks would seal them all again, into other blocks.
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

#include "access/table.h"
#include "access/tableam.h"
#include "executor/tuptable.h"
#include "utils/inval.h"
#include "utils/snapmgr.h"

#include "objects.h"
#include "restore_state.h"

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

int64
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
	const AutoraOids *oids;
	uint64		base = 0;

	if (xid_base_known)
		return xid_base;
	oids = AutoraGetOids(false);
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
	return ScanRows(AutoraGetOids(false)->restore_state, NULL, NULL) > 0;
}
