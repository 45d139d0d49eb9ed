/*-------------------------------------------------------------------------
 * writer.c
 *	  Writes ledger relations (entries, PII vault, blocks) straight to heap
 *	  and indexes, bypassing the executor and so the guards, in batches.
 *
 * Entries are buffered and written with table_multi_insert, one WAL record
 * per page as COPY does.  The buffer is flushed when full, by the autora_flush
 * AFTER STATEMENT trigger of protected tables, before autora reads the
 * ledger itself, before a subtransaction starts and at pre-commit.  Flushing
 * before a subtransaction starts means every entry is inserted by the
 * (sub)transaction that made it: a later ROLLBACK TO cannot take an
 * earlier entry with it, and an aborted subtransaction's buffered entries
 * are simply discarded, as its changes are.
 *
 * Relations, indexes and executor state stay open for the transaction,
 * owned by the top transaction's resource owner and memory.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/resowner.h"

#include "writer.h"

#define BUFFER_TUPLES	1000
#define BUFFER_BYTES	(1024 * 1024)
#define MAX_WRITERS		4
/* a flush this large gets a bulk insert state: smaller ones do not repay it */
#define BULK_FLUSH_TUPLES 64

typedef struct LedgerWriter
{
	Oid			relid;			/* InvalidOid: unused */
	/* open state; reopened after a relcache invalidation (e.g. new index) */
	bool		open;
	bool		stale;
	Relation	rel;
	ResultRelInfo *rri;
	EState	   *estate;
	BulkInsertState bistate;	/* NULL until a flush is large */
	/* buffered tuples, in the order they were made */
	MemoryContext tuples;
	TupleTableSlot *slots[BUFFER_TUPLES];
	SubTransactionId subxids[BUFFER_TUPLES];
	int			nbuffered;
	Size		nbytes;
} LedgerWriter;

static LedgerWriter writers[MAX_WRITERS];

static void
WriterOpen(LedgerWriter *w)
{
	ResourceOwner save_owner = CurrentResourceOwner;
	MemoryContext save_cxt = MemoryContextSwitchTo(TopTransactionContext);

	CurrentResourceOwner = TopTransactionResourceOwner;
	w->rel = table_open(w->relid, RowExclusiveLock);
	w->estate = CreateExecutorState();
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	ExecOpenIndices(w->rri, false);
	w->bistate = NULL;
	CurrentResourceOwner = save_owner;
	MemoryContextSwitchTo(save_cxt);
	w->open = true;
	w->stale = false;
}

static void
WriterCloseRelation(LedgerWriter *w)
{
	ResourceOwner save_owner = CurrentResourceOwner;

	CurrentResourceOwner = TopTransactionResourceOwner;
	if (w->bistate != NULL)
		FreeBulkInsertState(w->bistate);

	/*
	 * Index locks are kept to the end of the transaction, as the table's
	 * (ExecCloseIndices would release each one now, a lock-table round trip
	 * that commit makes for all of them at once).
	 */
	for (int i = 0; i < w->rri->ri_NumIndices; i++)
		index_close(w->rri->ri_IndexRelationDescs[i], NoLock);
	table_close(w->rel, NoLock);
	FreeExecutorState(w->estate);
	CurrentResourceOwner = save_owner;
	w->open = false;
}

static void
WriterFlush(LedgerWriter *w)
{
	ResourceOwner save_owner = CurrentResourceOwner;

	if (w->nbuffered == 0)
		return;
	if (w->open && w->stale)
		WriterCloseRelation(w);
	if (!w->open)
		WriterOpen(w);

	CurrentResourceOwner = TopTransactionResourceOwner;
	if (w->bistate == NULL && w->nbuffered >= BULK_FLUSH_TUPLES)
	{
		MemoryContext save_cxt = MemoryContextSwitchTo(TopTransactionContext);

		w->bistate = GetBulkInsertState();
		MemoryContextSwitchTo(save_cxt);
	}
	PG_TRY();
	{
		table_multi_insert(w->rel, w->slots, w->nbuffered,
						   GetCurrentCommandId(true), 0, w->bistate);
		for (int i = 0; i < w->nbuffered; i++)
		{
			(void) ExecInsertIndexTuples(w->rri, w->slots[i], w->estate,
										 false, false, NULL, NIL);
			ResetPerTupleExprContext(w->estate);
			ExecClearTuple(w->slots[i]);
		}
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save_owner;
	}
	PG_END_TRY();
	w->nbuffered = 0;
	w->nbytes = 0;
	MemoryContextReset(w->tuples);
}

/*
 * Makes a writer unused.  Its slots are made on demand from the first, so
 * only those up to the first NULL need clearing: not the whole (12 kB)
 * struct, at every commit.
 */
static void
WriterReset(LedgerWriter *w, bool drop_slots)
{
	for (int i = 0; i < BUFFER_TUPLES && w->slots[i] != NULL; i++)
	{
		if (drop_slots)
			ExecDropSingleTupleTableSlot(w->slots[i]);
		w->slots[i] = NULL;
	}
	w->relid = InvalidOid;
	w->open = false;
	w->stale = false;
	w->rel = NULL;
	w->rri = NULL;
	w->estate = NULL;
	w->bistate = NULL;
	w->tuples = NULL;
	w->nbuffered = 0;
	w->nbytes = 0;
}

/* Releases what a writer holds, once its rows are written. */
static void
WriterEnd(LedgerWriter *w)
{
	ResourceOwner save_owner = CurrentResourceOwner;

	if (!OidIsValid(w->relid))
		return;
	if (w->open)
		WriterCloseRelation(w);
	CurrentResourceOwner = TopTransactionResourceOwner;
	WriterReset(w, true);
	CurrentResourceOwner = save_owner;
}

void
WriterFlushAll(void)
{
	for (int i = 0; i < MAX_WRITERS; i++)
		if (OidIsValid(writers[i].relid))
			WriterFlush(&writers[i]);
}

/* Forgets every writer: at transaction end, after commit or abort cleanup. */
static void
WritersForget(void)
{
	for (int i = 0; i < MAX_WRITERS; i++)
		if (OidIsValid(writers[i].relid))
			WriterReset(&writers[i], false);
}

static LedgerWriter *
WriterFor(Oid relid)
{
	LedgerWriter *w = NULL;

	for (int i = 0; i < MAX_WRITERS; i++)
		if (writers[i].relid == relid)
			return &writers[i];
	for (int i = 0; i < MAX_WRITERS && w == NULL; i++)
		if (!OidIsValid(writers[i].relid))
			w = &writers[i];
	if (w == NULL)
		elog(ERROR, "autora: too many ledger relations written in one transaction");

	w->relid = relid;
	WriterOpen(w);
	w->tuples = AllocSetContextCreate(TopTransactionContext, "autora buffered entries",
									  ALLOCSET_DEFAULT_SIZES);
	return w;
}

TupleDesc
WriterTupleDesc(Oid relid)
{
	LedgerWriter *w = WriterFor(relid);

	if (w->open && w->stale)
		WriterCloseRelation(w);
	if (!w->open)
		WriterOpen(w);
	return RelationGetDescr(w->rel);
}

void
WriterInsert(Oid relid, Datum *values, bool *nulls)
{
	LedgerWriter *w = WriterFor(relid);
	MemoryContext old;
	HeapTuple	tuple;
	int			n;

	if (w->nbuffered == BUFFER_TUPLES || w->nbytes >= BUFFER_BYTES)
		WriterFlush(w);
	if (w->open && w->stale)
		WriterCloseRelation(w);
	if (!w->open)
		WriterOpen(w);

	n = w->nbuffered;
	old = MemoryContextSwitchTo(TopTransactionContext);
	if (w->slots[n] == NULL)
	{
		/* the slot pins the row type: it belongs to the transaction */
		ResourceOwner save_owner = CurrentResourceOwner;

		CurrentResourceOwner = TopTransactionResourceOwner;
		w->slots[n] = MakeSingleTupleTableSlot(RelationGetDescr(w->rel), &TTSOpsHeapTuple);
		CurrentResourceOwner = save_owner;
	}
	MemoryContextSwitchTo(w->tuples);
	tuple = heap_form_tuple(RelationGetDescr(w->rel), values, nulls);
	MemoryContextSwitchTo(old);

	ExecStoreHeapTuple(tuple, w->slots[n], true);
	w->subxids[n] = GetCurrentSubTransactionId();
	w->nbytes += tuple->t_len;
	w->nbuffered++;
}

/* --- transaction events ----------------------------------------------------- */

static void
WriterXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			WriterFlushAll();
			for (int i = 0; i < MAX_WRITERS; i++)
				WriterEnd(&writers[i]);
			break;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* resource owner and memory cleanup released everything else */
			WritersForget();
			break;
	}
}

static void
WriterSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_START_SUB:
			WriterFlushAll();
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			/* entries of the aborted subtransaction (and its children) are a suffix */
			for (int i = 0; i < MAX_WRITERS; i++)
			{
				LedgerWriter *w = &writers[i];

				while (w->nbuffered > 0 && w->subxids[w->nbuffered - 1] >= mySubid)
					ExecClearTuple(w->slots[--w->nbuffered]);
			}
			break;
		default:
			break;
	}
}

static void
WriterRelcacheCallback(Datum arg, Oid relid)
{
	for (int i = 0; i < MAX_WRITERS; i++)
		if (writers[i].open && (!OidIsValid(relid) || writers[i].relid == relid))
			writers[i].stale = true;
}

void
WriterInit(void)
{
	RegisterXactCallback(WriterXactCallback, NULL);
	RegisterSubXactCallback(WriterSubXactCallback, NULL);
	CacheRegisterRelcacheCallback(WriterRelcacheCallback, (Datum) 0);
}

/* AFTER ... FOR EACH STATEMENT trigger of protected tables. */
PG_FUNCTION_INFO_V1(autora_flush_entries);
Datum
autora_flush_entries(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("flush_entries: not called by trigger manager"),
				 errhint("Attach it with autora.protect() rather than calling it directly.")));
	WriterFlushAll();
	return PointerGetDatum(NULL);
}
