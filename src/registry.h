/*-------------------------------------------------------------------------
 * registry.h
 *	  The registry of protected tables (autora.protected): which relations
 *	  are protected, and the tenant, PII and excluded columns of each.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_REGISTRY_H
#define AUTORA_REGISTRY_H

#include "access/attnum.h"
#include "nodes/pg_list.h"

/* A registered table's configuration, as protect() stored it. */
typedef struct ProtectedConfig
{
	Oid			root;			/* the registered table */
	char	   *tenant_column;	/* NULL: a platform table */
	List	   *pii_columns;	/* of char * */
	List	   *exclude_columns;	/* of char * */
} ProtectedConfig;

extern void RegistryInit(void);

/*
 * The registered table whose protection covers relid: relid itself, or
 * the topmost registered ancestor of a partition or inheritance child.
 * InvalidOid when relid is not protected.  Cached per relation.
 */
extern Oid	RegistryRootOf(Oid relid);

/* Is relid protected (registered, or in the tree of a registered table)? */
extern bool RelIsProtected(Oid relid);

/* Is relid a platform table (protected without a tenant column), or a member of one? */
extern bool RelIsPlatformTable(Oid relid);

/* The configuration of a registered table; false when it is not registered. */
extern bool RegistryGetConfig(Oid root, ProtectedConfig *config);

/* Is autora's own code writing the registry (the guards refuse other writes)? */
extern bool RegistryWriteAllowed(void);

/*
 * Runs one SQL statement on the registry tables as the extension owner,
 * with search_path pg_catalog, pg_temp and the registry guard lifted.
 */
extern void RegistryExecute(const char *sql, int nargs, Oid *argtypes, Datum *values);

/* The same, with SPI's nulls ('n' for a NULL argument, ' ' otherwise). */
extern void RegistryExecuteWithNulls(const char *sql, int nargs, Oid *argtypes, Datum *values,
									 const char *nulls);

/* Do two registered tables have the same tenant, PII and excluded columns? */
extern bool RegistrySameConfiguration(Oid a, Oid b);

/* Every registered table. */
extern List *RegistryRoots(void);

/*
 * relid, registered in its own right, now sits under another registered
 * table: its own registration goes (it is protected as the other's member).
 */
extern void RegistryMergeMember(Oid relid);

/* Drops every backend's cached answers for the relations of root's tree. */
extern void RegistryInvalidateTree(Oid root);

/*
 * Column roles survive renames and drops: before DDL on a protected tree,
 * RegistryRemember notes the attribute numbers of the registered columns;
 * RegistryFollowColumns then stores their names as they are after it
 * (dropped PII and excluded columns leave the lists).
 */
typedef struct RegistryColumns RegistryColumns;
extern RegistryColumns *RegistryRemember(Oid root);
extern void RegistryFollowColumns(RegistryColumns *before);

#endif							/* AUTORA_REGISTRY_H */
