/*-------------------------------------------------------------------------
 * summarize.h
 *	  BRIN summaries of the ledger relations, kept by the sealer.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_SUMMARIZE_H
#define AUTORA_SUMMARIZE_H

/* Summarizes the BRIN ranges of the ledger and vault filled since last time. */
extern void SummarizeLedgerIndexes(void);

#endif							/* AUTORA_SUMMARIZE_H */
