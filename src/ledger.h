/*-------------------------------------------------------------------------
 * ledger.h
 *	  Appending entries to autora.ledger, and where the ledger relations are.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_LEDGER_H
#define AUTORA_LEDGER_H

#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

/* The relations of the installed extension in this database. */
typedef struct LedgerOids
{
	Oid			namespace;
	Oid			ledger;
	Oid			blocks;
	Oid			id_seq;
	Oid			platform_seq;
	Oid			vault;
	Oid			vault_key;
	Oid			tenants;
	Oid			actor_roles;
	Oid			keys;
	Oid			registry;		/* autora.protected */
	Oid			registry_schemas;	/* autora.protected_schemas */
	Oid			xid_base;		/* autora.xid_base (src/restore.c) */
	Oid			restore_state;	/* autora.restore_state (src/restore.c) */
} LedgerOids;

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
} LedgerRecord;

extern void LedgerInit(void);

/* NULL when the extension is not installed in this database (missing_ok). */
extern const LedgerOids *LedgerGetOids(bool missing_ok);

/*
 * Is autora_audit's own install (or update) script running?  Not merely
 * any CREATE EXTENSION: another extension's script, or an event trigger
 * it fires, gets no exemption from the guards.
 */
extern bool CreatingAutora(void);

/* Is relid a ledger relation (entries, blocks, PII vault, its key) or an index of one? */
extern bool IsLedgerRelation(Oid relid);

/* How far a chain's sequence has numbered entries; 0 if never (NULL: platform chain). */
extern int64 ChainNumbered(const char *tenant);

/* Appends one entry; returns its id. */
extern int64 LedgerAppend(const LedgerRecord *record);


#endif							/* AUTORA_LEDGER_H */
