/*-------------------------------------------------------------------------
 * objects.h
 *	  Where autora_audit's own relations are in this database.  The bottom
 *	  of the module stack: it knows names and OIDs, nothing of what the
 *	  relations mean.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_OBJECTS_H
#define AUTORA_OBJECTS_H

/* The relations of the installed extension in this database. */
typedef struct AutoraOids
{
	Oid			namespace;
	Oid			ledger;
	Oid			blocks;
	Oid			id_seq;
	Oid			platform_seq;
	Oid			vault;
	Oid			tenants;
	Oid			actor_roles;
	Oid			keys;
	Oid			registry;		/* autora.protected */
	Oid			registry_schemas;	/* autora.protected_schemas */
	Oid			xid_base;		/* autora.xid_base (src/restore_state.c) */
	Oid			restore_state;	/* autora.restore_state (src/restore_state.c) */
} AutoraOids;

extern void ObjectsInit(void);

/* NULL when the extension is not installed in this database (missing_ok). */
extern const AutoraOids *AutoraGetOids(bool missing_ok);

/*
 * Is autora_audit's own install (or update) script running?  Not merely
 * any CREATE EXTENSION: another extension's script, or an event trigger
 * it fires, gets no exemption from the guards.
 */
extern bool CreatingAutora(void);

/* Is relid a ledger relation (entries, blocks, PII vault) or an index of one? */
extern bool IsLedgerRelation(Oid relid);

#endif							/* AUTORA_OBJECTS_H */
