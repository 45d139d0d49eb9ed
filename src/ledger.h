/*-------------------------------------------------------------------------
 * ledger.h
 *	  Appending entries to autora.ledger.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_LEDGER_H
#define AUTORA_LEDGER_H

#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

/* What a capture or event supplies; ledger.c adds identity, time and hash. */
typedef struct LedgerRecord
{
	const char *tenant_id;		/* NULL: platform chain */
	const char *table_schema;
	const char *table_name;
	const char *op;				/* INSERT, UPDATE, DELETE, TRUNCATE, EVENT */
	Jsonb	   *pk;
	Jsonb	   *before;
	Jsonb	   *after;
	/* their canonical text, when the caller built them (else computed) */
	char	   *pk_text;
	char	   *before_text;
	char	   *after_text;
	ArrayType  *changed;
	const char *event;
	const char *entity_type;
	const char *entity_id;
	Jsonb	   *metadata;
	Jsonb	   *vault;			/* clear values of PII columns, or NULL */
	struct PiiSalt *vault_salt; /* their commitments' salt (vault.h) */
} LedgerRecord;

extern void LedgerInit(void);

/* How far a chain's sequence has numbered entries; 0 if never (NULL: platform chain). */
extern int64 ChainNumbered(const char *tenant);

/* Appends one entry; returns its id. */
extern int64 LedgerAppend(const LedgerRecord *record);


#endif							/* AUTORA_LEDGER_H */
