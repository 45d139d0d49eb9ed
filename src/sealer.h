/*-------------------------------------------------------------------------
 * sealer.h
 *	  Background sealing: a launcher, and a worker per database that has
 *	  entries to seal; autora.seal() asks that worker for a round.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_SEALER_H
#define AUTORA_SEALER_H

/* autora.sealer_idle_timeout (ms): an idle worker exits after this long. */
extern int	autora_sealer_idle_timeout_ms;

/* Registers shared memory and the launcher; only from _PG_init when preloaded. */
extern void SealerInit(void);

/* This transaction appended entries: wake the sealer when it commits. */
extern void SealerWakeAtCommit(void);

/* After a commit that appended entries: make sure this database gets sealed. */
extern void SealerWake(void);

/*
 * DROP DATABASE, CREATE DATABASE ... TEMPLATE and friends need the database
 * to have no connections: stop its worker around them.
 */
extern void SealerPauseDatabase(Oid dboid);
extern void SealerResumeDatabase(Oid dboid);

#endif							/* AUTORA_SEALER_H */
