/*-------------------------------------------------------------------------
 * writer.h
 *	  Buffered direct writes to the ledger relations.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_WRITER_H
#define AUTORA_WRITER_H

#include "access/tupdesc.h"

extern void WriterInit(void);

/* Buffers one row for relid (a ledger relation); written by a flush. */
extern void WriterInsert(Oid relid, Datum *values, bool *nulls);

/*
 * Writes the buffered rows the current subtransaction owns: before autora
 * reads what it wrote.  Rows of its ancestors stay buffered until their
 * owner is current again (at the latest, pre-commit writes them).
 */
extern void WriterFlushAll(void);

/* Does this transaction hold rows for relid not written yet (an ancestor's)? */
extern bool WriterHasBuffered(Oid relid);

/* The row type of a ledger relation, as the writer sees it. */
extern TupleDesc WriterTupleDesc(Oid relid);

#endif							/* AUTORA_WRITER_H */
