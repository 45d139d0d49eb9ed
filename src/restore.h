/*-------------------------------------------------------------------------
 * restore.h
 *	  Loading a dump: what a restore writes (restore_state.h: what it leaves).
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_RESTORE_H
#define AUTORA_RESTORE_H

/* A restore loads a ledger relation: sealing waits for restore_finish(). */
extern void RestoreNoteLoad(void);

#endif							/* AUTORA_RESTORE_H */
