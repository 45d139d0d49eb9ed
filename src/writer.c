/*-------------------------------------------------------------------------
 * writer.c
 *	  Writes ledger relations (entries, PII vault, blocks) straight to heap
 *	  and indexes, bypassing the executor and so the guards, in batches.
 *
 * Entries are buffered and written with table_multi_insert, one WAL record
 * per page as COPY does.  A row must be inserted by the subtransaction that
 * made it, or by an ancestor it was committed into, never by a child: a
 * child's insert vanishes when the child aborts (a caught exception, a
 * ROLLBACK TO) while the change it records stays.  So the buffer is a stack
 * of runs, one per owning subtransaction, innermost last: a flush writes only
 * the current subtransaction's run, and the rows of its ancestors wait until
 * their owner is current again.  A committing child hands its run to its
 * parent; an aborting one's run is discarded, as its changes are.  Flushes
 * happen when the current run is full, in the autora_flush AFTER STATEMENT
 * trigger of protected tables, before autora reads what it wrote, and at
 * pre-commit and pre-prepare, where every run belongs to the top transaction.
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

/* a run of the current subtransaction this large is written */
#define BUFFER_TUPLES	1000
#define BUFFER_BYTES	(1024 * 1024)
#define MAX_WRITERS		4
/* a flush this large gets a bulk insert state: smaller ones do not repay it */
#define BULK_FLUSH_TUPLES 64

/*
 * Consecutive buffered rows owned by one subtransaction.  Owners are active
 * subtransactions, so they rise along the buffer (SubTransactionIds are
 * handed out in increasing order, a child's above its parent's) and the
 * current subtransaction's rows, if any, are the last run.
 */
typedef struct BufferRun
{
	SubTransactionId owner;
	int			start;			/* index of its first row in slots */
	Size		nbytes;
} BufferRun;

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
	/* buffered tuples, in the order they were made (TopTransactionContext) */
	MemoryContext tuples;
	TupleTableSlot **slots;		/* nslots made, of maxslots allocated */
	int			nslots;
	int			maxslots;
	int			nbuffered;
	BufferRun  *runs;			/* nruns in use, of maxruns allocated */
	int			nruns;
	int			maxruns;
} LedgerWriter;

static LedgerWriter writers[MAX_WRITERS];

/*
 * Opens a ledger relation and its indexes for the rest of the transaction,
 * under the top transaction's resource owner: flushes of several
 * subtransactions share them.
 */
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

/* Releases what WriterOpen opened. */
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

/*
 * Inserts the buffered rows from start to the end with the current
 * (sub)transaction's xid, and drops them from the buffer.  Callers pass only
 * rows the current subtransaction may insert (see the file header).
 */
static void
WriterWriteRows(LedgerWriter *w, int start)
{
	ResourceOwner save_owner = CurrentResourceOwner;
	int			n = w->nbuffered - start;

	if (n <= 0)
		return;
	if (w->open && w->stale)
		WriterCloseRelation(w);
	if (!w->open)
		WriterOpen(w);

	CurrentResourceOwner = TopTransactionResourceOwner;
	if (w->bistate == NULL && n >= BULK_FLUSH_TUPLES)
	{
		MemoryContext save_cxt = MemoryContextSwitchTo(TopTransactionContext);

		w->bistate = GetBulkInsertState();
		MemoryContextSwitchTo(save_cxt);
	}
	PG_TRY();
	{
		table_multi_insert(w->rel, &w->slots[start], n,
						   GetCurrentCommandId(true), 0, w->bistate);
		for (int i = start; i < w->nbuffered; i++)
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
	w->nbuffered = start;
	/* clearing the slots freed the rows; an empty buffer gives back its blocks */
	if (start == 0)
		MemoryContextReset(w->tuples);
}

/*
 * Writes the current subtransaction's run, if the buffer ends with one.  The
 * runs before it belong to ancestors, which must insert them themselves.
 */
static void
WriterFlush(LedgerWriter *w)
{
	if (w->nruns == 0 ||
		w->runs[w->nruns - 1].owner != GetCurrentSubTransactionId())
		return;
	WriterWriteRows(w, w->runs[w->nruns - 1].start);
	w->nruns--;
}

/*
 * Writes everything, at pre-commit or pre-prepare: every subtransaction has
 * ended by then, committed ones having handed their runs up, so all rows
 * are the top transaction's.
 */
static void
WriterFlushTop(LedgerWriter *w)
{
	Assert(w->nruns == 0 ||
		   (w->nruns == 1 && w->runs[0].owner == TopSubTransactionId));
	WriterWriteRows(w, 0);
	w->nruns = 0;
}

/*
 * Makes a writer unused.  Its slots and arrays live in the transaction's
 * memory, which is gone or about to go: only the slots' row type pins need
 * dropping, and only when the resource owner is not released anyway.
 */
static void
WriterReset(LedgerWriter *w, bool drop_slots)
{
	if (drop_slots)
		for (int i = 0; i < w->nslots; i++)
			ExecDropSingleTupleTableSlot(w->slots[i]);
	w->relid = InvalidOid;
	w->open = false;
	w->stale = false;
	w->rel = NULL;
	w->rri = NULL;
	w->estate = NULL;
	w->bistate = NULL;
	w->tuples = NULL;
	w->slots = NULL;
	w->nslots = 0;
	w->maxslots = 0;
	w->nbuffered = 0;
	w->runs = NULL;
	w->nruns = 0;
	w->maxruns = 0;
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

bool
WriterHasBuffered(Oid relid)
{
	for (int i = 0; i < MAX_WRITERS; i++)
		if (writers[i].relid == relid && writers[i].nbuffered > 0)
			return true;
	return false;
}

/* Forgets every writer: at transaction end, after commit or abort cleanup. */
static void
WritersForget(void)
{
	for (int i = 0; i < MAX_WRITERS; i++)
		if (OidIsValid(writers[i].relid))
			WriterReset(&writers[i], false);
}

/*
 * The writer of a ledger relation in this transaction, made on first use.
 */
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

/*
 * The current subtransaction's run, begun if the buffer does not end with
 * one.  The arrays grow in the transaction's memory: rows of ancestors
 * waiting for their owner can take the buffer past BUFFER_TUPLES.
 */
static BufferRun *
WriterCurrentRun(LedgerWriter *w)
{
	SubTransactionId cur = GetCurrentSubTransactionId();
	BufferRun  *run;

	if (w->nruns > 0 && w->runs[w->nruns - 1].owner == cur)
		return &w->runs[w->nruns - 1];
	/* every owner in the buffer is an ancestor of the current one */
	Assert(w->nruns == 0 || w->runs[w->nruns - 1].owner < cur);
	if (w->nruns == w->maxruns)
	{
		int			newmax = w->maxruns == 0 ? 4 : w->maxruns * 2;

		if (w->runs == NULL)
			w->runs = MemoryContextAlloc(TopTransactionContext, newmax * sizeof(BufferRun));
		else
			w->runs = repalloc(w->runs, newmax * sizeof(BufferRun));
		w->maxruns = newmax;
	}
	run = &w->runs[w->nruns++];
	run->owner = cur;
	run->start = w->nbuffered;
	run->nbytes = 0;
	return run;
}

void
WriterInsert(Oid relid, Datum *values, bool *nulls)
{
	LedgerWriter *w = WriterFor(relid);
	BufferRun  *run;
	MemoryContext old;
	HeapTuple	tuple;
	int			n;

	run = WriterCurrentRun(w);
	if (w->nbuffered - run->start >= BUFFER_TUPLES || run->nbytes >= BUFFER_BYTES)
	{
		WriterFlush(w);
		run = WriterCurrentRun(w);
	}
	if (w->open && w->stale)
		WriterCloseRelation(w);
	if (!w->open)
		WriterOpen(w);

	n = w->nbuffered;
	if (n == w->maxslots)
	{
		int			newmax = w->maxslots == 0 ? 64 : w->maxslots * 2;

		if (w->slots == NULL)
			w->slots = MemoryContextAlloc(TopTransactionContext,
										  newmax * sizeof(TupleTableSlot *));
		else
			w->slots = repalloc(w->slots, newmax * sizeof(TupleTableSlot *));
		w->maxslots = newmax;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	if (n == w->nslots)
	{
		/* the slot pins the row type: it belongs to the transaction */
		ResourceOwner save_owner = CurrentResourceOwner;

		CurrentResourceOwner = TopTransactionResourceOwner;
		w->slots[n] = MakeSingleTupleTableSlot(RelationGetDescr(w->rel), &TTSOpsHeapTuple);
		w->nslots++;
		CurrentResourceOwner = save_owner;
	}
	MemoryContextSwitchTo(w->tuples);
	tuple = heap_form_tuple(RelationGetDescr(w->rel), values, nulls);
	MemoryContextSwitchTo(old);

	ExecStoreHeapTuple(tuple, w->slots[n], true);
	run->nbytes += tuple->t_len;
	w->nbuffered++;
}

/* --- transaction events ----------------------------------------------------- */

/*
 * Pre-commit writes every buffered row; commit and abort forget the writers.
 */
static void
WriterXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			for (int i = 0; i < MAX_WRITERS; i++)
				if (OidIsValid(writers[i].relid))
					WriterFlushTop(&writers[i]);
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

/*
 * Keeps every run owned by an active subtransaction.  Both events run while
 * the ending subtransaction is still the current one, so nothing is written
 * here: at COMMIT_SUB its state is already TRANS_COMMIT, and at ABORT_SUB its
 * rows are to be dropped.  (START_SUB runs inside the new child: writing the
 * parent's rows there would give them the child's xid.)
 */
static void
WriterSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					  SubTransactionId parentSubid, void *arg)
{
	switch (event)
	{
		case SUBXACT_EVENT_COMMIT_SUB:
			/* the child's rows become its parent's, to be written by it */
			for (int i = 0; i < MAX_WRITERS; i++)
			{
				LedgerWriter *w = &writers[i];
				BufferRun  *run;

				if (w->nruns == 0 || w->runs[w->nruns - 1].owner != mySubid)
					continue;
				run = &w->runs[w->nruns - 1];
				if (w->nruns > 1 && w->runs[w->nruns - 2].owner == parentSubid)
				{
					w->runs[w->nruns - 2].nbytes += run->nbytes;
					w->nruns--;
				}
				else
					run->owner = parentSubid;
			}
			break;
		case SUBXACT_EVENT_ABORT_SUB:
			/* rows of the aborted subtransaction (and its children) are a suffix */
			for (int i = 0; i < MAX_WRITERS; i++)
			{
				LedgerWriter *w = &writers[i];

				while (w->nruns > 0 && w->runs[w->nruns - 1].owner >= mySubid)
				{
					int			start = w->runs[--w->nruns].start;

					while (w->nbuffered > start)
						ExecClearTuple(w->slots[--w->nbuffered]);
				}
				if (w->nbuffered == 0 && w->tuples != NULL)
					MemoryContextReset(w->tuples);
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
