/*-------------------------------------------------------------------------
 * restore_state.h
 *	  A restore under way, and the ledger's xid space.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_RESTORE_STATE_H
#define AUTORA_RESTORE_STATE_H

#include "executor/tuptable.h"

extern void RestoreInit(void);

/*
 * What the ledger adds to a FullTransactionId: 0, unless the ledger was
 * restored into a cluster whose transaction counter was behind the one the
 * entries came from (autora.restore_finish() sets it).
 */
extern uint64 RestoreXidBase(void);

/* Is a restore loading this database (until autora.restore_finish())? */
extern bool RestoreUnderWay(void);

/*
 * Calls fn (if given) on every row of relid, read with the latest snapshot;
 * returns how many rows there were.
 */
extern int64 ScanRows(Oid relid, void (*fn) (TupleTableSlot *slot, void *arg), void *arg);

#endif							/* AUTORA_RESTORE_STATE_H */
