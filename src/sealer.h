/*-------------------------------------------------------------------------
 * sealer.h
 *	  Background sealing: a launcher and one worker per database.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_SEALER_H
#define AUTORA_SEALER_H

/* Registers shared memory and the launcher; only from _PG_init when preloaded. */
extern void SealerInit(void);

/* After a commit that appended entries: make sure this database's worker runs. */
extern void SealerWake(void);

/*
 * DROP DATABASE, CREATE DATABASE ... TEMPLATE and friends need the database
 * to have no connections: stop its worker around them.
 */
extern void SealerPauseDatabase(Oid dboid);
extern void SealerResumeDatabase(Oid dboid);

#endif							/* AUTORA_SEALER_H */
