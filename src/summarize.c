/*-------------------------------------------------------------------------
 * summarize.c
 *	  Keeps the BRIN indexes of the ledger relations summarized, from the
 *	  sealer, so that each seal round reads only the entries it seals.
 *
 * A BRIN range without a summary matches every scan.  PostgreSQL's
 * autosummarize does not keep up with a ledger: it queues a request per
 * filled range for autovacuum, whose queue holds 256 of them, and under
 * sustained writes it overflows, logs every lost request and leaves those
 * ranges unsummarized until the next VACUUM, each one read again by every
 * seal round.  So the indexes have autosummarize off and the sealer, after
 * each round that sealed entries, summarizes every range that has filled up
 * since.  The newest, partly filled range is left alone: writers then add to
 * it without updating a summary.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/brin.h"
#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_am_d.h"
#include "storage/bufmgr.h"
#include "storage/lmgr.h"
#include "utils/fmgrprotos.h"
#include "utils/rel.h"

#include "objects.h"
#include "summarize.h"

#define MAX_INDEXES 8

/* per BRIN index: ranges below this block are known to be summarized */
typedef struct SummarizedPrefix
{
	Oid			index;
	BlockNumber upto;
} SummarizedPrefix;

static SummarizedPrefix prefixes[MAX_INDEXES];

/* Where this backend last stopped summarizing an index. */
static BlockNumber *
SummarizedUpTo(Oid index)
{
	for (int i = 0; i < MAX_INDEXES; i++)
		if (prefixes[i].index == index)
			return &prefixes[i].upto;
	/* a new index, or one recreated: start over (summarized ranges are skipped) */
	for (int i = 0; i < MAX_INDEXES; i++)
		if (!OidIsValid(prefixes[i].index) || i == MAX_INDEXES - 1)
		{
			prefixes[i].index = index;
			prefixes[i].upto = 0;
			return &prefixes[i].upto;
		}
	pg_unreachable();
}

/*
 * Summarizes the BRIN ranges of one ledger relation's indexes filled since
 * the last round, so that range scans skip them without VACUUM.
 */
static void
SummarizeFilledRanges(Oid heapoid)
{
	Relation	heap;
	BlockNumber nblocks;
	List	   *indexes;
	ListCell   *lc;

	/* VACUUM, which summarizes too, or an index build holds it: next round */
	if (!ConditionalLockRelationOid(heapoid, ShareUpdateExclusiveLock))
		return;
	/* dropped since the round looked the relations up (DROP EXTENSION) */
	if ((heap = try_table_open(heapoid, NoLock)) == NULL)
		return;
	nblocks = RelationGetNumberOfBlocks(heap);
	indexes = RelationGetIndexList(heap);
	foreach(lc, indexes)
	{
		Oid			indexoid = lfirst_oid(lc);
		Relation	index = index_open(indexoid, ShareUpdateExclusiveLock);

		/* an index that a failed CREATE INDEX CONCURRENTLY left is skipped */
		if (index->rd_rel->relam == BRIN_AM_OID && index->rd_index->indisvalid)
		{
			BlockNumber per_range = BrinGetPagesPerRange(index);
			BlockNumber *upto = SummarizedUpTo(indexoid);

			/* brin_summarize_range skips a range that has a summary already */
			while (*upto + per_range <= nblocks)
			{
				DirectFunctionCall2(brin_summarize_range, ObjectIdGetDatum(indexoid),
									Int64GetDatum((int64) *upto));
				*upto += per_range;
			}
		}
		index_close(index, NoLock);
	}
	table_close(heap, NoLock);
}

void
SummarizeLedgerIndexes(void)
{
	const AutoraOids *oids = AutoraGetOids(true);

	if (oids == NULL)
		return;
	SummarizeFilledRanges(oids->ledger);
	SummarizeFilledRanges(oids->vault);
}
