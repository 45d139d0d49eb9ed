/*-------------------------------------------------------------------------
 * sealer.c
 *	  Background sealing.  A background worker is bound to one database for
 *	  life, so a launcher (connected to no database) starts one worker per
 *	  database at server start, and a commit that appended entries starts
 *	  its database's worker if none runs.  Workers of databases without the
 *	  extension exit at once and are remembered as absent.
 *
 * A worker seals, sleeps until half an interval after the round started,
 * then waits for the next commit: an entry committed just after a round
 * began is sealed by the next one, within autora.seal_interval of commit.  Commits mark work as pending in shared memory and set the
 * worker's latch only while it waits for work, so a busy server does not
 * signal it on every commit; its sleeps still wake for SIGTERM.  Commands
 * that need a database free of connections (DROP DATABASE, CREATE DATABASE
 * ... TEMPLATE, ALTER DATABASE RENAME / SET TABLESPACE) pause its worker.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_database.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "chain.h"
#include "ledger.h"
#include "sealer.h"
#include "summarize.h"

#define SEALER_SLOTS			64
#define SEALER_IDLE_TIMEOUT_MS	10000	/* safety net for a missed wake-up */
#define SEALER_START_RETRY_MS	10000
#define SEALER_PAUSE_WAIT_MS	10000

typedef struct SealerSlot
{
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* running worker, or 0 */
	Latch	   *latch;
	bool		starting;		/* registered, not yet attached */
	TimestampTz start_requested;
	bool		paused;			/* a database-level command needs it gone */
	bool		absent;			/* extension not installed there */
	/* handshake between committers and the worker (see SealerWake) */
	pg_atomic_uint32 pending;	/* a commit appended entries since the last round */
	pg_atomic_uint32 idle;		/* the worker waits for work */
} SealerSlot;

typedef struct SealerShared
{
	LWLock	   *lock;
	SealerSlot	slots[SEALER_SLOTS];
} SealerShared;

static SealerShared *sealer = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PGDLLEXPORT void autora_sealer_launcher_main(Datum arg);
PGDLLEXPORT void autora_sealer_main(Datum arg);

static void
SealerShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(SealerShared)));
	RequestNamedLWLockTranche("autora_sealer", 1);
}

static void
SealerShmemStartup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	sealer = ShmemInitStruct("autora_sealer", sizeof(SealerShared), &found);
	if (!found)
	{
		memset(sealer, 0, sizeof(SealerShared));
		sealer->lock = &(GetNamedLWLockTranche("autora_sealer"))->lock;
	}
	LWLockRelease(AddinShmemInitLock);
}

static void
FillWorker(BackgroundWorker *w, const char *function, const char *name)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w->bgw_start_time = BgWorkerStart_RecoveryFinished;
	strlcpy(w->bgw_library_name, "autora_audit", BGW_MAXLEN);
	strlcpy(w->bgw_function_name, function, BGW_MAXLEN);
	strlcpy(w->bgw_name, name, BGW_MAXLEN);
	strlcpy(w->bgw_type, name, BGW_MAXLEN);
}

void
SealerInit(void)
{
	BackgroundWorker launcher;

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SealerShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SealerShmemStartup;

	FillWorker(&launcher, "autora_sealer_launcher_main", "autora sealer launcher");
	launcher.bgw_restart_time = 10;
	RegisterBackgroundWorker(&launcher);
}

/* --- slots (caller holds sealer->lock exclusively) ------------------------- */

static SealerSlot *
FindSlot(Oid dboid)
{
	for (int i = 0; i < SEALER_SLOTS; i++)
		if (sealer->slots[i].dboid == dboid)
			return &sealer->slots[i];
	return NULL;
}

static SealerSlot *
FindOrAddSlot(Oid dboid)
{
	SealerSlot *slot = FindSlot(dboid);

	if (slot == NULL && (slot = FindSlot(InvalidOid)) != NULL)
	{
		memset(slot, 0, sizeof(*slot));
		pg_atomic_init_u32(&slot->pending, 0);
		pg_atomic_init_u32(&slot->idle, 0);
		slot->dboid = dboid;
	}
	return slot;
}

/*
 * Registers the database's worker unless one runs, is starting, is paused
 * or the database is known not to have the extension (unless forced).
 * Never throws: it runs in commit callbacks.
 */
static void
StartWorkerLocked(Oid dboid, bool force)
{
	SealerSlot *slot = FindOrAddSlot(dboid);
	BackgroundWorker w;
	TimestampTz now = GetCurrentTimestamp();

	if (slot == NULL)
		return;					/* more databases than slots: launcher covers restarts */
	if (slot->pid != 0 || slot->paused || (slot->absent && !force))
		return;
	if (slot->starting &&
		!TimestampDifferenceExceeds(slot->start_requested, now, SEALER_START_RETRY_MS))
		return;

	FillWorker(&w, "autora_sealer_main", "autora sealer");
	w.bgw_restart_time = BGW_NEVER_RESTART;
	w.bgw_main_arg = ObjectIdGetDatum(dboid);
	slot->absent = false;
	slot->starting = RegisterDynamicBackgroundWorker(&w, NULL);
	slot->start_requested = now;
}

void
SealerWake(void)
{
	SealerSlot *slot = NULL;

	if (sealer == NULL)
		return;
	/* common case without the lock: a worker is running, set its latch */
	for (int i = 0; i < SEALER_SLOTS; i++)
		if (sealer->slots[i].dboid == MyDatabaseId)
			slot = &sealer->slots[i];
	if (slot != NULL && slot->pid != 0 && slot->latch != NULL)
	{
		/* pairs with the worker's idle-then-pending check */
		pg_atomic_write_u32(&slot->pending, 1);
		pg_memory_barrier();
		if (pg_atomic_read_u32(&slot->idle))
			SetLatch(slot->latch);
		return;
	}
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	StartWorkerLocked(MyDatabaseId, true);
	LWLockRelease(sealer->lock);
}

void
SealerPauseDatabase(Oid dboid)
{
	SealerSlot *slot;
	pid_t		pid = 0;

	if (sealer == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	slot = FindOrAddSlot(dboid);
	if (slot != NULL)
	{
		slot->paused = true;
		pid = slot->pid;
	}
	LWLockRelease(sealer->lock);
	if (slot == NULL || pid == 0)
		return;

	kill(pid, SIGTERM);
	for (int waited = 0; waited < SEALER_PAUSE_WAIT_MS; waited += 10)
	{
		bool		gone;

		LWLockAcquire(sealer->lock, LW_SHARED);
		gone = slot->dboid != dboid || slot->pid != pid;
		LWLockRelease(sealer->lock);
		if (gone)
			return;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(10 * 1000L);
	}
}

void
SealerResumeDatabase(Oid dboid)
{
	SealerSlot *slot;

	if (sealer == NULL || !OidIsValid(dboid))
		return;
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	slot = FindSlot(dboid);
	if (slot != NULL)
	{
		slot->paused = false;
		/* the next commit there, or the launcher, starts it again */
		if (slot->pid == 0 && !slot->absent)
			slot->dboid = InvalidOid;
	}
	LWLockRelease(sealer->lock);
}

/* --- launcher --------------------------------------------------------------- */

void
autora_sealer_launcher_main(Datum arg)
{
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	for (;;)
	{
		Relation	rel;
		TableScanDesc scan;
		HeapTuple	tup;
		List	   *dbs = NIL;
		ListCell   *lc;

		CHECK_FOR_INTERRUPTS();
		StartTransactionCommand();
		(void) GetTransactionSnapshot();
		rel = table_open(DatabaseRelationId, AccessShareLock);
		scan = table_beginscan_catalog(rel, 0, NULL);
		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

			if (db->datallowconn && !db->datistemplate)
				dbs = lappend_oid(dbs, db->oid);
		}
		table_endscan(scan);
		table_close(rel, AccessShareLock);

		LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
		foreach(lc, dbs)
			StartWorkerLocked(lfirst_oid(lc), false);
		LWLockRelease(sealer->lock);
		CommitTransactionCommand();

		/* rescan now and then: restarts workers that stopped on an error */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 60 * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* --- per-database worker ---------------------------------------------------- */

static SealerSlot *my_slot = NULL;

static void
SealerDetach(int code, Datum arg)
{
	if (my_slot == NULL)
		return;
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	my_slot->pid = 0;
	my_slot->latch = NULL;
	my_slot->starting = false;
	if (!my_slot->paused && !my_slot->absent)
		my_slot->dboid = InvalidOid;
	LWLockRelease(sealer->lock);
	my_slot = NULL;
}

/* Claims the database's slot; false when another worker has it or it is paused. */
static bool
SealerAttach(Oid dboid)
{
	bool		ok = false;

	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	my_slot = FindOrAddSlot(dboid);
	if (my_slot != NULL && my_slot->pid == 0 && !my_slot->paused)
	{
		my_slot->pid = MyProcPid;
		my_slot->latch = MyLatch;
		my_slot->starting = false;
		pg_atomic_write_u32(&my_slot->idle, 0);
		pg_atomic_write_u32(&my_slot->pending, 1);
		ok = true;
	}
	else
		my_slot = NULL;
	LWLockRelease(sealer->lock);
	return ok;
}

/*
 * Sleeps ms milliseconds between rounds.  Only signals set the latch now
 * (commits do not while the worker is not idle), so SIGTERM ends the sleep.
 */
static void
SealerSleep(long ms)
{
	TimestampTz until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);

	for (;;)
	{
		long		left = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), until);

		if (left <= 0)
			return;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

/* A transaction of the worker, with a snapshot, shown as activity. */
static void
BeginWork(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
EndWork(void)
{
	PopActiveSnapshot();
	CommitTransactionCommand();
}

static bool
SealRound(void)
{
	bool		installed;
	int64		sealed = 0;

	BeginWork("autora: sealing ledger entries");
	installed = LedgerGetOids(true) != NULL;
	if (installed)
		sealed = SealPending();
	EndWork();

	/* after the seal has committed: nothing here can undo it */
	if (sealed > 0)
	{
		BeginWork("autora: summarizing ledger indexes");
		SummarizeLedgerIndexes();
		EndWork();
	}
	pgstat_report_activity(STATE_IDLE, NULL);
	return installed;
}

void
autora_sealer_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);
	TimestampTz round_started;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!SealerAttach(dboid))
		proc_exit(0);
	before_shmem_exit(SealerDetach, (Datum) 0);
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		round_started = GetCurrentTimestamp();
		if (!RecoveryInProgress() && !SealRound())
		{
			LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
			my_slot->absent = true;
			LWLockRelease(sealer->lock);
			proc_exit(0);
		}

		SealerSleep(autora_seal_interval_ms / 2 -
					TimestampDifferenceMilliseconds(round_started, GetCurrentTimestamp()));

		/* then wait for a commit with entries, unless one came meanwhile */
		pg_atomic_write_u32(&my_slot->idle, 1);
		pg_memory_barrier();
		if (!pg_atomic_read_u32(&my_slot->pending))
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 SEALER_IDLE_TIMEOUT_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		pg_atomic_write_u32(&my_slot->idle, 0);
		pg_atomic_write_u32(&my_slot->pending, 0);
	}
}
