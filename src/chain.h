/*-------------------------------------------------------------------------
 * chain.h
 *	  Sealing committed entries into per-tenant, hash-chained blocks.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_CHAIN_H
#define AUTORA_CHAIN_H

/*
 * A seal round's view of which transactions had finished, in 64-bit xids:
 * like pg_snapshot, xid is in progress if >= xmax or listed in xip.
 */
typedef struct SealHorizon
{
	bool		valid;			/* false: no round yet, everything is new */
	uint64		xmin;
	uint64		xmax;
	int			nxip;
	uint64	   *xip;
} SealHorizon;

extern bool HorizonInProgress(const SealHorizon *h, uint64 xid);

/* The horizon stored in a block row (values in BlockColumn order). */
extern SealHorizon HorizonFromBlockRow(const Datum *values);

/*
 * Can a stored block row be read at all: only tenant_id may be NULL, and its
 * arrays hold bigints, no NULLs.  The table says so, but whoever can edit the
 * ledger can change the table too.
 */
extern bool BlockRowReadable(const Datum *values, const bool *nulls);

/*
 * Does a stored block row hash to its stored block_hash?  False also for a
 * row too damaged to read.
 */
extern bool BlockRowVerifies(const Datum *values, const bool *nulls);

/*
 * Seals every committed, unsealed entry in the current transaction; returns
 * how many.  Only the background sealer calls it (autora.seal() asks the
 * sealer for a round), so that no session holds the round's lock.
 */
extern int64 SealPending(void);

#endif							/* AUTORA_CHAIN_H */
