/*-------------------------------------------------------------------------
 * restore.h
 *	  Loading a dump: the restore under way, and the ledger's xid space.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_RESTORE_H
#define AUTORA_RESTORE_H

extern void RestoreInit(void);

/*
 * What the ledger adds to a FullTransactionId: 0, unless the ledger was
 * restored into a cluster whose transaction counter was behind the one the
 * entries came from (autora.restore_finish() sets it).
 */
extern uint64 RestoreXidBase(void);

/* Is a restore loading this database (until autora.restore_finish())? */
extern bool RestoreUnderWay(void);

/* A restore loads a ledger relation: sealing waits for restore_finish(). */
extern void RestoreNoteLoad(void);

#endif							/* AUTORA_RESTORE_H */
