/*-------------------------------------------------------------------------
 * sealer.c
 *	  Background sealing.  A launcher, connected to no database, starts a
 *	  worker for a database when it has entries to seal: after a commit that
 *	  appended entries, at server start, or when autora.seal() asks for a
 *	  round.  A worker exits after autora.sealer_idle_timeout without work,
 *	  or after its round when another database waits for a worker slot, so
 *	  that max_worker_processes is shared: databases take turns, and
 *	  parallel query gets its workers once the sealers are idle.
 *
 * A worker seals, sleeps until half an interval after the round started,
 * then waits for the next commit: an entry committed just after a round
 * began is sealed by the next one, within autora.seal_interval of commit.
 * Commits mark work as pending in shared memory and set the worker's latch
 * only while it waits for work, so a busy server does not signal it on
 * every commit.  A worker that exits leaves the time of its next round in
 * its slot, and the launcher starts no worker for pending work before it.
 *
 * autora.seal() does not seal in the caller's transaction (the round's
 * lock, held until the caller commits, would stall every other round): it
 * asks the database's worker for a round that begins after the request and
 * waits for it.  The worker runs as superuser in a database whose owner may
 * set per-database settings: it pins those that could redirect or stall it,
 * and chain.c reads the ledger with direct scans, resolving nothing by name.
 *
 * Commands that need a database free of connections (DROP DATABASE, CREATE
 * DATABASE ... TEMPLATE, ALTER DATABASE RENAME / SET TABLESPACE) pause its
 * worker.
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
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "chain.h"
#include "objects.h"
#include "sealer.h"
#include "summarize.h"

#define SEALER_SLOTS			64
#define SEALER_NAP_MS			60000	/* the launcher's longest sleep */
#define SEALER_SLOT_RETRY_MS	500 /* retry while a database waits for a slot */
#define SEALER_ERROR_RETRY_MS	10000	/* after a failed round or start */
#define SEALER_PAUSE_WAIT_MS	10000
#define SEAL_WAIT_MS			30000	/* seal(): longest wait for a round to begin */
#define SEAL_NO_SLOT_MS			2000	/* seal(): no sealer can run for this long */
#define SEALER_TEXT_LEN			256

/* SealerSlot.pending */
#define PENDING_NONE	0
#define PENDING_ENTRIES	1		/* a commit appended entries, or a round did not end */
#define PENDING_CHECK	2		/* the server started: the database may have some */

typedef struct SealerSlot
{
	/* first: ClearSlot keeps it, a seal() may still be leaving its wait list */
	ConditionVariable served_cv;	/* a round served requests */
	Oid			dboid;			/* InvalidOid: free */
	pid_t		pid;			/* attached worker, or 0 */
	Latch	   *latch;			/* its latch */
	bool		starting;		/* registered by the launcher, not attached yet */
	bool		in_round;		/* the worker is in a round */
	bool		paused;			/* a database-level command needs it gone */
	bool		absent;			/* the last worker found no extension there */
	bool		yield;			/* exit after this round: others wait for a slot */
	bool		warned;			/* the current wait for a slot was logged */
	TimestampTz waiting_since;	/* wants a worker, no slot was free; 0: not */
	TimestampTz not_before;		/* start no worker for pending work before */
	TimestampTz retry_at;		/* a worker could not start: none before */
	TimestampTz last_round_at;	/* end of the last round that completed */
	int64		last_round_sealed;
	/* autora.seal() requests, numbered; served by a round begun after them */
	uint64		requested;
	uint64		round_covers;	/* requests the current round serves */
	uint64		served;
	bool		served_failed;	/* the round that served them failed (below) */
	int64		served_sealed;
	TimestampTz error_at;
	int			error_code;
	char		error_message[SEALER_TEXT_LEN];
	char		error_detail[SEALER_TEXT_LEN];
	char		error_hint[SEALER_TEXT_LEN];
	/* handshake between committers and the worker (see SealerWake) */
	pg_atomic_uint32 pending;	/* PENDING_*: work since the last round began */
	pg_atomic_uint32 idle;		/* the worker waits for work, past its interval */
} SealerSlot;

typedef struct SealerShared
{
	LWLock	   *lock;
	Latch	   *launcher_latch;
	bool		rescan;			/* a database found no slot: look at every one */
	SealerSlot	slots[SEALER_SLOTS];
} SealerShared;

static SealerShared *sealer = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

int			autora_sealer_idle_timeout_ms = 10000;

/* did this transaction append entries?  (SealerXactCallback wakes the sealer) */
static bool wake_at_commit = false;

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

/* Empties a slot for dboid (or InvalidOid), all but its condition variable. */
static void
ClearSlot(SealerSlot *slot, Oid dboid)
{
	memset((char *) slot + offsetof(SealerSlot, dboid), 0,
		   sizeof(SealerSlot) - offsetof(SealerSlot, dboid));
	pg_atomic_init_u32(&slot->pending, 0);
	pg_atomic_init_u32(&slot->idle, 0);
	slot->dboid = dboid;
}

/* The shared slots: one per database with a worker, or waiting for one. */
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
		for (int i = 0; i < SEALER_SLOTS; i++)
		{
			ConditionVariableInit(&sealer->slots[i].served_cv);
			ClearSlot(&sealer->slots[i], InvalidOid);
		}
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

static void SealerXactCallback(XactEvent event, void *arg);

void
SealerInit(void)
{
	BackgroundWorker launcher;

	RegisterXactCallback(SealerXactCallback, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = SealerShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = SealerShmemStartup;

	FillWorker(&launcher, "autora_sealer_launcher_main", "autora sealer launcher");
	launcher.bgw_restart_time = 10;
	RegisterBackgroundWorker(&launcher);
}

/*
 * The sealer processes run as the bootstrap superuser, and a database owner
 * may set any user-settable parameter for its database (ALTER DATABASE ...
 * SET).  Pin, above every per-database and per-role setting, what could
 * redirect or stall them, as autovacuum does for its workers.
 */
static void
PinSettings(void)
{
	static const char *const pinned[][2] = {
		{"search_path", "pg_catalog, pg_temp"},
		{"statement_timeout", "0"},
		{"lock_timeout", "0"},
		{"idle_in_transaction_session_timeout", "0"},
		{"idle_session_timeout", "0"},
		{"default_transaction_read_only", "off"},
		{"default_transaction_isolation", "read committed"},
		{"default_transaction_deferrable", "off"},
		{"session_replication_role", "origin"},
		{"exit_on_error", "off"},
		{"zero_damaged_pages", "off"},
	};

	for (int i = 0; i < lengthof(pinned); i++)
		SetConfigOption(pinned[i][0], pinned[i][1], PGC_SUSET, PGC_S_OVERRIDE);
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

/* Nothing in the slot that must be kept: no process, work, request or pause. */
static bool
SlotIsClean(SealerSlot *slot)
{
	return slot->pid == 0 && !slot->starting && !slot->paused &&
		slot->waiting_since == 0 && slot->requested == slot->served &&
		pg_atomic_read_u32(&slot->pending) == 0;
}

/*
 * The database's slot, made if needed from a free one or, failing that,
 * from a clean one (the table is a cache: a clean database needs nothing).
 * NULL when every slot is busy.  Never throws: it runs in commit callbacks.
 */
static SealerSlot *
FindOrAddSlot(Oid dboid)
{
	SealerSlot *slot = FindSlot(dboid);

	if (slot != NULL)
		return slot;
	if ((slot = FindSlot(InvalidOid)) == NULL)
	{
		for (int i = 0; i < SEALER_SLOTS && slot == NULL; i++)
			if (SlotIsClean(&sealer->slots[i]))
				slot = &sealer->slots[i];
	}
	if (slot != NULL)
		ClearSlot(slot, dboid);
	return slot;
}

/* --- what backends call ----------------------------------------------------- */

void
SealerWakeAtCommit(void)
{
	wake_at_commit = true;
}

/* Only a commit wakes the sealer: an aborted transaction's entries are gone. */
static void
SealerXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (wake_at_commit)
				SealerWake();
			wake_at_commit = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			wake_at_commit = false;
			break;
		default:
			break;
	}
}

/*
 * After a commit that appended entries.  Common case, without the lock: the
 * database's worker runs, so mark work pending and set its latch if it
 * waits for work.  Otherwise tell the launcher, once per batch of pending
 * work (the transition of pending from 0 to 1).  Never throws.
 */
void
SealerWake(void)
{
	volatile SealerSlot *slot = NULL;
	Latch	   *launcher;

	if (sealer == NULL)
		return;
	for (int i = 0; i < SEALER_SLOTS && slot == NULL; i++)
		if (sealer->slots[i].dboid == MyDatabaseId)
			slot = &sealer->slots[i];
	if (slot != NULL)
	{
		/* a full barrier; pairs with the worker's exit and idle checks */
		uint32		was = pg_atomic_exchange_u32(&((SealerSlot *) slot)->pending, PENDING_ENTRIES);

		if (slot->dboid == MyDatabaseId && slot->pid != 0)
		{
			Latch	   *latch = slot->latch;

			if (latch != NULL && pg_atomic_read_u32(&((SealerSlot *) slot)->idle))
				SetLatch(latch);
			return;
		}
		if (was == PENDING_ENTRIES && slot->dboid == MyDatabaseId)
			return;				/* the launcher knows already */
	}

	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	slot = FindOrAddSlot(MyDatabaseId);
	if (slot == NULL)
		sealer->rescan = true;	/* every slot busy: the launcher looks later */
	else
	{
		slot->absent = false;
		pg_atomic_write_u32(&((SealerSlot *) slot)->pending, PENDING_ENTRIES);
	}
	launcher = sealer->launcher_latch;
	LWLockRelease(sealer->lock);
	if (launcher != NULL)
		SetLatch(launcher);
}

/* the database this backend paused, resumed if it exits first (a FATAL) */
static Oid	paused_by_me = InvalidOid;

static void
ResumeAtExit(int code, Datum arg)
{
	if (OidIsValid(paused_by_me))
		SealerResumeDatabase(paused_by_me);
}

void
SealerPauseDatabase(Oid dboid)
{
	static bool exit_callback = false;
	SealerSlot *slot;
	pid_t		pid = 0;

	if (sealer == NULL || !OidIsValid(dboid))
		return;
	if (!exit_callback)
	{
		before_shmem_exit(ResumeAtExit, (Datum) 0);
		exit_callback = true;
	}
	paused_by_me = dboid;
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

/* The database command is over: its worker may start again. */
void
SealerResumeDatabase(Oid dboid)
{
	SealerSlot *slot;
	Latch	   *launcher = NULL;

	if (sealer == NULL || !OidIsValid(dboid))
		return;
	paused_by_me = InvalidOid;
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	slot = FindSlot(dboid);
	if (slot != NULL)
	{
		/* pending work, if any, is still marked; a dropped database's slot is freed */
		slot->paused = false;
		launcher = sealer->launcher_latch;
	}
	LWLockRelease(sealer->lock);
	if (launcher != NULL)
		SetLatch(launcher);
}

/* --- launcher --------------------------------------------------------------- */

typedef struct DatabaseInfo
{
	Oid			oid;
	bool		is_template;
	char		name[NAMEDATALEN];
} DatabaseInfo;

/* launcher-local: handles of the workers it registered, by slot */
static BackgroundWorkerHandle *handles[SEALER_SLOTS];

/*
 * Every database of the cluster, read from pg_database at each pass: the
 * launcher sees databases created and dropped, and has their names for
 * its messages.
 */
static DatabaseInfo *
ReadDatabases(int *n)
{
	Relation	rel;
	TableScanDesc scan;
	HeapTuple	tup;
	int			max = 16;
	DatabaseInfo *dbs = palloc(sizeof(DatabaseInfo) * max);

	*n = 0;
	rel = table_open(DatabaseRelationId, AccessShareLock);
	scan = table_beginscan_catalog(rel, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);

		if (*n == max)
		{
			max *= 2;
			dbs = repalloc(dbs, sizeof(DatabaseInfo) * max);
		}
		dbs[*n].oid = db->oid;
		dbs[*n].is_template = db->datistemplate;
		strlcpy(dbs[*n].name, NameStr(db->datname), NAMEDATALEN);
		(*n)++;
	}
	table_endscan(scan);
	table_close(rel, AccessShareLock);
	return dbs;
}

static DatabaseInfo *
FindDatabase(DatabaseInfo *dbs, int n, Oid oid)
{
	for (int i = 0; i < n; i++)
		if (dbs[i].oid == oid)
			return &dbs[i];
	return NULL;
}

static long
MillisUntil(TimestampTz t, TimestampTz now)
{
	return t <= now ? 0 : (long) ((t - now + 999) / 1000);
}

/* Does the slot's database want a worker now? */
static bool
WantsWorker(SealerSlot *slot, TimestampTz now)
{
	if (!OidIsValid(slot->dboid) || slot->pid != 0 || slot->starting || slot->paused ||
		now < slot->retry_at)
		return false;
	return slot->requested > slot->served ||
		(pg_atomic_read_u32(&slot->pending) && now >= slot->not_before);
}

/* Oldest waiter first (never waited: last), then slot order. */
static int
CompareWaiters(const void *a, const void *b)
{
	int			i = *(const int *) a;
	int			j = *(const int *) b;
	TimestampTz x = sealer->slots[i].waiting_since;
	TimestampTz y = sealer->slots[j].waiting_since;

	if (x == 0)
		x = PG_INT64_MAX;
	if (y == 0)
		y = PG_INT64_MAX;
	if (x != y)
		return x < y ? -1 : 1;
	return i - j;
}

/*
 * Asks up to n running workers to exit, idle ones first, then busy ones
 * (which exit after their round): databases wait for a slot.
 */
static void
AskToYield(int n)
{
	for (int busy = 0; busy < 2 && n > 0; busy++)
		for (int i = 0; i < SEALER_SLOTS && n > 0; i++)
		{
			SealerSlot *slot = &sealer->slots[i];
			bool		idle = !slot->in_round && slot->requested == slot->served &&
				pg_atomic_read_u32(&slot->pending) == 0;

			if (slot->pid == 0 || slot->latch == NULL)
				continue;
			if (slot->yield)
			{
				if (!busy)
					n--;		/* asked already */
				continue;
			}
			if (!busy && !idle)
				continue;
			slot->yield = true;
			SetLatch(slot->latch);
			n--;
		}
}

/*
 * One pass of the launcher: starts a worker for every database that wants
 * one, oldest waiter first; when the slots run out, marks the others as
 * waiting, logs once each wait that outlasts the seal interval, and asks as
 * many running workers to yield.  Returns how long it may sleep (ms).
 */
static long
LauncherPass(bool full_scan)
{
	TimestampTz now = GetCurrentTimestamp();
	long		nap = SEALER_NAP_MS;
	int			warn_after = Max(autora_seal_interval_ms, 1000);
	DatabaseInfo *dbs;
	int			ndbs;
	int			cand[SEALER_SLOTS];
	int			ncand = 0;
	int			nwaiting = 0;
	bool		out_of_slots = false;
	List	   *warn = NIL;
	List	   *got = NIL;
	ListCell   *lc;

	StartTransactionCommand();
	dbs = ReadDatabases(&ndbs);

	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	if (full_scan || sealer->rescan)
	{
		/*
		 * After a start, or when slots ran out: any database may have work
		 * (a template gets a worker when a commit there appends entries).
		 */
		sealer->rescan = false;
		for (int i = 0; i < ndbs; i++)
		{
			SealerSlot *slot;
			uint32		none = PENDING_NONE;

			if (dbs[i].is_template)
				continue;
			if ((slot = FindOrAddSlot(dbs[i].oid)) == NULL)
				sealer->rescan = true;
			else if (!slot->absent)
				(void) pg_atomic_compare_exchange_u32(&slot->pending, &none, PENDING_CHECK);
		}
		if (sealer->rescan)
			nap = Min(nap, SEALER_ERROR_RETRY_MS);
	}

	for (int i = 0; i < SEALER_SLOTS; i++)
	{
		SealerSlot *slot = &sealer->slots[i];
		DatabaseInfo *db;
		pid_t		pid;

		/*
		 * A worker that stopped before attaching (it could not connect), or
		 * one registered by an earlier launcher, whose handle is lost.
		 */
		if (slot->starting && slot->pid == 0 &&
			(handles[i] == NULL || GetBackgroundWorkerPid(handles[i], &pid) == BGWH_STOPPED))
		{
			slot->starting = false;
			if (handles[i] != NULL)
				slot->retry_at = TimestampTzPlusMilliseconds(now, SEALER_ERROR_RETRY_MS);
		}
		if (!slot->starting && handles[i] != NULL)
		{
			pfree(handles[i]);
			handles[i] = NULL;
		}
		if (!OidIsValid(slot->dboid))
			continue;
		db = FindDatabase(dbs, ndbs, slot->dboid);
		if (db == NULL && slot->pid == 0 && !slot->starting && !slot->paused)
		{
			ClearSlot(slot, InvalidOid);	/* its database was dropped */
			continue;
		}
		if (db != NULL && WantsWorker(slot, now))
			cand[ncand++] = i;
		else if (slot->waiting_since != 0 && slot->pid == 0 && !slot->starting)
		{
			slot->waiting_since = 0;
			slot->warned = false;
		}
	}

	qsort(cand, ncand, sizeof(int), CompareWaiters);
	for (int k = 0; k < ncand; k++)
	{
		int			i = cand[k];
		SealerSlot *slot = &sealer->slots[i];
		const char *name = FindDatabase(dbs, ndbs, slot->dboid)->name;
		BackgroundWorker w;

		bool		registered = false;

		FillWorker(&w, "autora_sealer_main", "autora sealer");
		w.bgw_restart_time = BGW_NEVER_RESTART;
		w.bgw_main_arg = ObjectIdGetDatum(slot->dboid);
		w.bgw_notify_pid = MyProcPid;
		if (!out_of_slots)
		{
			/* the handle outlives this pass's transaction */
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			registered = RegisterDynamicBackgroundWorker(&w, &handles[i]);
			MemoryContextSwitchTo(old);
		}
		if (registered)
		{
			slot->starting = true;
			slot->yield = false;
			if (slot->warned)
				got = lappend(got, psprintf("%ld|%s",
											(long) ((now - slot->waiting_since) / 1000), name));
			slot->waiting_since = 0;
			slot->warned = false;
			continue;
		}
		out_of_slots = true;
		nwaiting++;
		if (slot->waiting_since == 0)
			slot->waiting_since = now;
		/* a database merely to be looked at after a start is not worth a warning */
		if (!slot->warned && TimestampDifferenceExceeds(slot->waiting_since, now, warn_after) &&
			(slot->requested > slot->served ||
			 pg_atomic_read_u32(&slot->pending) == PENDING_ENTRIES))
		{
			slot->warned = true;
			warn = lappend(warn, pstrdup(name));
		}
	}

	/* work held back by the seal interval, a failed round or a failed start */
	for (int i = 0; i < SEALER_SLOTS; i++)
	{
		SealerSlot *slot = &sealer->slots[i];
		bool		work = pg_atomic_read_u32(&slot->pending) ||
			slot->requested > slot->served;

		if (!OidIsValid(slot->dboid) || slot->pid != 0 || slot->starting || slot->paused ||
			!work)
			continue;
		if (slot->retry_at > now)
			nap = Min(nap, MillisUntil(slot->retry_at, now));
		else if (slot->not_before > now && slot->requested == slot->served)
			nap = Min(nap, MillisUntil(slot->not_before, now));
	}
	if (nwaiting > 0)
	{
		nap = Min(nap, SEALER_SLOT_RETRY_MS);
		AskToYield(nwaiting);
	}
	LWLockRelease(sealer->lock);

	foreach(lc, warn)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("autora sealer: no background worker slot for database \"%s\"",
						(char *) lfirst(lc)),
				 errdetail("All max_worker_processes (%d) slots are in use; the database's committed ledger entries wait to be sealed.",
						   max_worker_processes),
				 errhint("Raise max_worker_processes (see \"Sizing\" in the autora_audit README); autora.sealer_status shows the databases that wait.")));
	foreach(lc, got)
	{
		char	   *waited = lfirst(lc);
		char	   *name = strchr(waited, '|');

		*name++ = '\0';
		ereport(LOG,
				(errmsg("autora sealer: database \"%s\" got a background worker slot after waiting %s ms",
						name, waited)));
	}
	CommitTransactionCommand();
	return nap;
}

/* At exit: committers and seal() must not set a latch that is gone. */
static void
LauncherDetach(int code, Datum arg)
{
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	sealer->launcher_latch = NULL;
	LWLockRelease(sealer->lock);
}

/*
 * The launcher: connected to no database, it makes a pass (LauncherPass)
 * whenever a committer, seal(), a worker starting or stopping (the
 * postmaster's notice) or its own timer wakes it.  The first pass after a
 * start looks at every database, since shared memory forgot their work.
 */
void
autora_sealer_launcher_main(Datum arg)
{
	bool		full_scan = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	PinSettings();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	sealer->launcher_latch = MyLatch;
	LWLockRelease(sealer->lock);
	before_shmem_exit(LauncherDetach, (Datum) 0);

	for (;;)
	{
		long		nap;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		nap = LauncherPass(full_scan);
		full_scan = false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(nap, 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
/* --- per-database worker ---------------------------------------------------- */

static SealerSlot *my_slot = NULL;
static bool connected = false;
static TimestampTz round_started = 0;
static TimestampTz round_ended = 0;

/* Time of the next round: half an interval after the last one started. */
static TimestampTz
NextRound(void)
{
	return TimestampTzPlusMilliseconds(round_started, autora_seal_interval_ms / 2);
}

/*
 * Leaves the slot (caller holds the lock).  A round cut short or work left
 * over stays marked, and the launcher is told, so another worker takes it.
 */
static Latch *
DetachLocked(void)
{
	my_slot->pid = 0;
	my_slot->latch = NULL;
	my_slot->starting = false;
	my_slot->yield = false;
	if (my_slot->in_round)
	{
		my_slot->in_round = false;
		pg_atomic_write_u32(&my_slot->pending, PENDING_ENTRIES);
	}
	my_slot->not_before = Max(my_slot->not_before, NextRound());
	/* it could not connect: do not retry at once, even for seal() */
	if (!connected)
		my_slot->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														SEALER_ERROR_RETRY_MS);
	pg_atomic_write_u32(&my_slot->idle, 0);
	return sealer->launcher_latch;
}

/* At the worker's exit, however it ends: free the slot, hand over the work. */
static void
SealerDetach(int code, Datum arg)
{
	Latch	   *launcher;

	if (my_slot == NULL)
		return;
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	launcher = DetachLocked();
	LWLockRelease(sealer->lock);
	my_slot = NULL;
	/* whatever is left (pending work, requests), the launcher starts a worker */
	if (launcher != NULL)
		SetLatch(launcher);
}

/*
 * Exits if there is nothing to do: no pending work and no request.  Checked
 * under the lock against seal() requests; a commit that marks work pending
 * just after it is seen by the check after detaching (or sees the slot
 * without a worker, and tells the launcher itself).
 */
static void
ExitIfNoWork(bool absent)
{
	Latch	   *launcher = NULL;
	bool		exit = false;

	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	if (pg_atomic_read_u32(&my_slot->pending) == 0 &&
		my_slot->requested == my_slot->served)
	{
		launcher = DetachLocked();
		my_slot->absent = absent;
		/* no chain here, so no interval to keep: CREATE EXTENSION's entries go at once */
		if (absent)
			my_slot->not_before = 0;
		exit = true;
	}
	LWLockRelease(sealer->lock);
	if (!exit)
		return;
	pg_memory_barrier();
	if (pg_atomic_read_u32(&my_slot->pending) && launcher != NULL)
		SetLatch(launcher);
	my_slot = NULL;
	proc_exit(0);
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
		my_slot->yield = false;
		pg_atomic_write_u32(&my_slot->idle, 0);
		ok = true;
	}
	else
	{
		if (my_slot != NULL && my_slot->pid == 0)
			my_slot->starting = false;
		my_slot = NULL;
	}
	LWLockRelease(sealer->lock);
	return ok;
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

/*
 * Records a failed round for the requests it served, and for autora.seal()
 * and autora.sealer_status; the work stays pending, retried after a pause.
 * Runs in the error handler, before the error ends the worker.
 */
static void
RecordRoundError(uint64 covers, MemoryContext cxt)
{
	MemoryContext ecxt = MemoryContextSwitchTo(cxt);
	ErrorData  *edata = CopyErrorData();

	MemoryContextSwitchTo(ecxt);
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	my_slot->in_round = false;
	my_slot->error_at = GetCurrentTimestamp();
	my_slot->error_code = edata->sqlerrcode;
	strlcpy(my_slot->error_message, edata->message ? edata->message : "", SEALER_TEXT_LEN);
	strlcpy(my_slot->error_detail, edata->detail ? edata->detail : "", SEALER_TEXT_LEN);
	strlcpy(my_slot->error_hint, edata->hint ? edata->hint : "", SEALER_TEXT_LEN);
	if (covers > my_slot->served)
	{
		my_slot->served = covers;
		my_slot->served_failed = true;
	}
	pg_atomic_write_u32(&my_slot->pending, PENDING_ENTRIES);
	my_slot->not_before = TimestampTzPlusMilliseconds(my_slot->error_at, SEALER_ERROR_RETRY_MS);
	LWLockRelease(sealer->lock);
	ConditionVariableBroadcast(&my_slot->served_cv);
	FreeErrorData(edata);
}

/*
 * One round: seals in one transaction, then reports to waiting seal()
 * callers, then summarizes the BRIN ranges it filled.  Serves the requests
 * made before it began: its snapshot is taken after, so it sees every entry
 * committed before them.  Returns false when the extension is not installed.
 */
static bool
SealRound(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	uint64		covers;
	volatile bool installed = false;
	volatile int64 sealed = 0;

	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	covers = my_slot->requested;
	my_slot->round_covers = covers;
	my_slot->in_round = true;
	round_started = GetCurrentTimestamp();
	LWLockRelease(sealer->lock);
	/* a commit from now on is sealed by this round or marks the next */
	pg_atomic_write_u32(&my_slot->pending, PENDING_NONE);
	pg_memory_barrier();

	PG_TRY();
	{
		BeginWork("autora: sealing ledger entries");
		installed = AutoraGetOids(true) != NULL;
		if (installed)
			sealed = SealPending();
		EndWork();
	}
	PG_CATCH();
	{
		RecordRoundError(covers, cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();

	round_ended = GetCurrentTimestamp();
	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	my_slot->in_round = false;
	my_slot->last_round_at = round_ended;
	my_slot->last_round_sealed = sealed;
	if (covers > my_slot->served)
	{
		my_slot->served = covers;
		my_slot->served_failed = false;
		my_slot->served_sealed = sealed;
	}
	LWLockRelease(sealer->lock);
	ConditionVariableBroadcast(&my_slot->served_cv);

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

/*
 * Waits until a round is due: a seal() request at once; pending work at
 * the next round's time.  Exits the worker when idle for
 * autora.sealer_idle_timeout, or at once when asked to yield with nothing
 * pending.  Past the next round's time it waits with the idle flag set, so
 * that a commit sets its latch.
 */
static void
WaitForWork(void)
{
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		TimestampTz next = NextRound();
		TimestampTz idle_until = TimestampTzPlusMilliseconds(round_ended,
															 autora_sealer_idle_timeout_ms);
		bool		requested;
		bool		yield;
		bool		pending;
		TimestampTz wake;

		LWLockAcquire(sealer->lock, LW_SHARED);
		requested = my_slot->requested > my_slot->served;
		yield = my_slot->yield;
		LWLockRelease(sealer->lock);
		pending = pg_atomic_read_u32(&my_slot->pending) != 0;

		if (requested || (pending && now >= next))
			break;
		if (!pending && (yield || now >= idle_until))
			ExitIfNoWork(false);	/* returns if work came meanwhile */
		else if (now >= next)
		{
			/* pairs with SealerWake: a commit after this sets the latch */
			pg_atomic_write_u32(&my_slot->idle, 1);
			pg_memory_barrier();
			if (pg_atomic_read_u32(&my_slot->pending))
				continue;
		}

		wake = pending ? next : (now < next ? Min(next, idle_until) : idle_until);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 Max(MillisUntil(wake, GetCurrentTimestamp()), 1), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	pg_atomic_write_u32(&my_slot->idle, 0);
}

/*
 * A database's worker: claims the database's slot, connects with pinned
 * settings, then runs rounds until it is idle, asked to yield, or finds no
 * extension.
 */
void
autora_sealer_main(Datum arg)
{
	Oid			dboid = DatumGetObjectId(arg);

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	if (!SealerAttach(dboid))
		proc_exit(0);
	before_shmem_exit(SealerDetach, (Datum) 0);
	/* before connecting: the connection applies the database's settings */
	PinSettings();
	/* its owner may refuse connections (ALLOW_CONNECTIONS false): still sealed */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, BGWORKER_BYPASS_ALLOWCONN);
	connected = true;

	for (;;)
	{
		bool		yield;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* a promoted standby's launcher starts workers; a standby has none */
		if (RecoveryInProgress())
			proc_exit(0);
		if (!SealRound())
			ExitIfNoWork(true);

		LWLockAcquire(sealer->lock, LW_SHARED);
		yield = my_slot->yield;
		LWLockRelease(sealer->lock);
		if (yield)
			proc_exit(0);		/* SealerDetach hands any work to the launcher */
		WaitForWork();
	}
}

/* --- autora.seal() and autora.sealer_status ------------------------------- */

/*
 * Asks this database's background sealer for a round and waits for it;
 * returns the number of entries that round sealed.  The round begins after
 * the call, so it seals every entry committed before it; the caller's
 * transaction takes no lock, so an open transaction that called seal()
 * stalls nobody.
 */
PG_FUNCTION_INFO_V1(autora_seal);
Datum
autora_seal(PG_FUNCTION_ARGS)
{
	SealerSlot *slot;
	uint64		req = 0;
	Latch	   *latch = NULL;
	TimestampTz start = GetCurrentTimestamp();
	TimestampTz stuck_since = 0;
	bool		failed;
	int64		sealed;
	int			code;
	char		message[SEALER_TEXT_LEN];
	char		detail[SEALER_TEXT_LEN];
	char		hint[SEALER_TEXT_LEN];

	if (sealer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("autora.seal() needs the background sealer, which runs only when autora_audit is preloaded"),
				 errhint("Add autora_audit to shared_preload_libraries in postgresql.conf and restart the server.")));
	if (RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot seal the ledger on a hot standby"),
				 errdetail("Sealing is the primary's job; its blocks reach the standby by replication."),
				 errhint("Call autora.seal() on the primary; autora.verify() works here.")));
	(void) AutoraGetOids(false);

	LWLockAcquire(sealer->lock, LW_EXCLUSIVE);
	slot = FindOrAddSlot(MyDatabaseId);
	if (slot != NULL)
	{
		req = ++slot->requested;
		slot->absent = false;
		latch = slot->pid != 0 ? slot->latch : sealer->launcher_latch;
	}
	LWLockRelease(sealer->lock);
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("the background sealer tracks %d databases with work at a time, and all are busy",
						SEALER_SLOTS),
				 errhint("Retry in a moment; autora.sealer_status shows the databases being sealed.")));
	if (latch != NULL)
		SetLatch(latch);

	ConditionVariablePrepareToSleep(&slot->served_cv);
	for (;;)
	{
		TimestampTz now;
		bool		done;
		bool		in_our_round;
		bool		waiting;
		bool		any_sealer = false;

		LWLockAcquire(sealer->lock, LW_SHARED);
		done = slot->served >= req;
		failed = slot->served_failed;
		sealed = slot->served_sealed;
		code = slot->error_code;
		strlcpy(message, slot->error_message, SEALER_TEXT_LEN);
		strlcpy(detail, slot->error_detail, SEALER_TEXT_LEN);
		strlcpy(hint, slot->error_hint, SEALER_TEXT_LEN);
		in_our_round = slot->pid != 0 && slot->in_round && slot->round_covers >= req;
		waiting = slot->waiting_since != 0;
		for (int i = 0; i < SEALER_SLOTS; i++)
			any_sealer |= sealer->slots[i].pid != 0 || sealer->slots[i].starting;
		LWLockRelease(sealer->lock);
		if (done)
			break;

		now = GetCurrentTimestamp();
		/* no slot, and no sealer that could hand one over */
		if (!waiting || any_sealer)
			stuck_since = 0;
		else if (stuck_since == 0)
			stuck_since = now;
		else if (TimestampDifferenceExceeds(stuck_since, now, SEAL_NO_SLOT_MS))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("no background worker slot is free for the sealer of this database"),
					 errdetail("All max_worker_processes (%d) slots are in use by other background workers, such as parallel query.",
							   max_worker_processes),
					 errhint("Retry when fewer background workers run, or raise max_worker_processes (see \"Sizing\" in the autora_audit README).")));
		/* a round serving us may take long; none starting is a fault */
		if (in_our_round)
			start = now;
		else if (TimestampDifferenceExceeds(start, now, SEAL_WAIT_MS))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("the background sealer did not begin a round within %d seconds",
							SEAL_WAIT_MS / 1000),
					 errhint("See autora.sealer_status and the server log for the sealer's state.")));
		(void) ConditionVariableTimedSleep(&slot->served_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();

	if (failed)
		ereport(ERROR,
				(errcode(code),
				 errmsg_internal("%s", message),
				 detail[0] ? errdetail_internal("%s", detail) :
				 errdetail("The background sealer's round failed with this error."),
				 hint[0] ? errhint("%s", hint) : 0));
	PG_RETURN_INT64(sealed);
}

/* The state autora.sealer_status shows, most telling first. */
static const char *
SlotState(const SealerSlot *slot)
{
	if (slot->paused)
		return "paused";
	if (slot->pid != 0)
		return slot->in_round ? "sealing" : "idle";
	if (slot->starting)
		return "starting";
	if (slot->waiting_since != 0)
		return "waiting for a worker slot";
	if (slot->requested > slot->served || pg_atomic_read_u32((pg_atomic_uint32 *) &slot->pending))
		return "scheduled";
	if (slot->absent)
		return "not installed";
	return "stopped";
}

/*
 * One row per database the sealer knows: its worker, its state, since
 * when it waits for a worker slot, its last round and its last error.
 */
PG_FUNCTION_INFO_V1(autora_sealer_status);
Datum
autora_sealer_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	SealerSlot *slots;

	InitMaterializedSRF(fcinfo, 0);
	if (sealer == NULL)
		return (Datum) 0;

	slots = palloc(sizeof(SealerSlot) * SEALER_SLOTS);
	LWLockAcquire(sealer->lock, LW_SHARED);
	memcpy(slots, sealer->slots, sizeof(SealerSlot) * SEALER_SLOTS);
	LWLockRelease(sealer->lock);

	for (int i = 0; i < SEALER_SLOTS; i++)
	{
		SealerSlot *slot = &slots[i];
		Datum		values[9];
		bool		nulls[9] = {0};
		char	   *name;

		if (!OidIsValid(slot->dboid) || (name = get_database_name(slot->dboid)) == NULL)
			continue;
		values[0] = ObjectIdGetDatum(slot->dboid);
		values[1] = DirectFunctionCall1(namein, CStringGetDatum(name));
		values[2] = Int32GetDatum((int32) slot->pid);
		nulls[2] = slot->pid == 0;
		values[3] = CStringGetTextDatum(SlotState(slot));
		values[4] = TimestampTzGetDatum(slot->waiting_since);
		nulls[4] = slot->waiting_since == 0;
		values[5] = TimestampTzGetDatum(slot->last_round_at);
		nulls[5] = slot->last_round_at == 0;
		values[6] = Int64GetDatum(slot->last_round_sealed);
		nulls[6] = slot->last_round_at == 0;
		values[7] = CStringGetTextDatum(slot->error_message);
		nulls[7] = slot->error_at == 0;
		values[8] = TimestampTzGetDatum(slot->error_at);
		nulls[8] = slot->error_at == 0;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
