/*-------------------------------------------------------------------------
 * registry.c
 *	  The registry of protected tables, autora.protected: "protected" means
 *	  registered there by autora.protect(), or a partition or inheritance
 *	  child of a registered table.  The capture and stamp triggers take
 *	  their configuration from here, never from their own arguments or the
 *	  table's name, so that attaching them elsewhere achieves nothing.
 *
 * The registry is read with direct scans (no SQL: the guards call this for
 * every statement), and written only by autora's own code, as the extension
 * owner; the guards refuse any other write (RegistryWriteAllowed).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "objects.h"
#include "registry.h"

/* columns of autora.protected */
#define Anum_protected_relid			1
#define Anum_protected_tenant_column	2
#define Anum_protected_pii_columns		3
#define Anum_protected_exclude_columns	4

/* relid -> its registered root (InvalidOid: not protected) */
typedef struct RootEntry
{
	Oid			relid;
	Oid			root;
	bool		platform;		/* the root has no tenant column */
} RootEntry;

static HTAB *root_cache = NULL;

/* the registry's own relid, once known: its invalidation empties the cache */
static Oid	registry_relid = InvalidOid;

/* raised while autora's own code writes the registry */
static int	registry_writes_allowed = 0;

static void
RegistryInvalidate(Datum arg, Oid relid)
{
	if (root_cache == NULL)
		return;
	if (!OidIsValid(relid) || relid == registry_relid)
	{
		hash_destroy(root_cache);
		root_cache = NULL;
	}
	else
		hash_search(root_cache, &relid, HASH_REMOVE, NULL);
}

void
RegistryInit(void)
{
	CacheRegisterRelcacheCallback(RegistryInvalidate, (Datum) 0);
}

bool
RegistryWriteAllowed(void)
{
	return registry_writes_allowed > 0;
}

/*
 * The registry is read with the latest snapshot, as catalogs are: a change
 * committed by another session counts as soon as its invalidation arrives.
 * A parallel worker cannot take one, and uses its leader's.
 */
static Snapshot
RegistrySnapshot(void)
{
	return RegisterSnapshot(IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot());
}

/*
 * Is relid a row of autora.protected?  If so and platform is given, sets it:
 * does the row name no tenant column (a platform table)?
 */
static bool
IsRegistered(Relation registry, Oid relid, Snapshot snapshot, bool *platform)
{
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found;

	ScanKeyInit(&key, Anum_protected_relid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(registry, RelationGetPrimaryKeyIndex(registry), true,
							  snapshot, 1, &key);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found && platform != NULL)
		*platform = heap_attisnull(tup, Anum_protected_tenant_column, RelationGetDescr(registry));
	systable_endscan(scan);
	return found;
}

/* The direct parents of relid (partition parent or inheritance parents). */
static List *
ParentsOf(Oid relid)
{
	Relation	inherits = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *parents = NIL;

	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(inherits, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
		parents = lappend_oid(parents, ((Form_pg_inherits) GETSTRUCT(tup))->inhparent);
	systable_endscan(scan);
	table_close(inherits, AccessShareLock);
	return parents;
}

/*
 * The registered root covering relid: the registered relation farthest up
 * its ancestry (relid itself when nothing above it is registered).
 */
static Oid
FindRoot(Oid relid, bool *platform)
{
	const AutoraOids *oids = AutoraGetOids(true);
	Relation	registry;
	Snapshot	snapshot;
	List	   *level = list_make1_oid(relid);
	Oid			root = InvalidOid;

	if (oids == NULL)
		return InvalidOid;
	registry_relid = oids->registry;
	registry = table_open(oids->registry, AccessShareLock);
	snapshot = RegistrySnapshot();
	/* breadth first: each level's registered member replaces a lower one */
	while (level != NIL)
	{
		List	   *next = NIL;
		ListCell   *lc;

		foreach(lc, level)
		{
			Oid			member = lfirst_oid(lc);

			if (IsRegistered(registry, member, snapshot, platform))
				root = member;
			next = list_concat(next, ParentsOf(member));
		}
		list_free(level);
		level = next;
	}
	UnregisterSnapshot(snapshot);
	table_close(registry, AccessShareLock);
	return root;
}

/* The cached registry answer for relid; NULL outside a transaction. */
static RootEntry *
LookupRoot(Oid relid)
{
	RootEntry  *entry;
	Oid			root;
	bool		platform = false;
	bool		found;

	if (!OidIsValid(relid) || !IsTransactionState())
		return NULL;
	if (root_cache != NULL &&
		(entry = hash_search(root_cache, &relid, HASH_FIND, NULL)) != NULL)
		return entry;

	root = FindRoot(relid, &platform);

	/* the lookups above may have emptied the cache through invalidations */
	if (root_cache == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RootEntry);
		ctl.hcxt = CacheMemoryContext;
		root_cache = hash_create("autora protected relations", 128, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	entry = hash_search(root_cache, &relid, HASH_ENTER, &found);
	entry->root = root;
	entry->platform = OidIsValid(root) && platform;
	return entry;
}

Oid
RegistryRootOf(Oid relid)
{
	RootEntry  *entry = LookupRoot(relid);

	return entry ? entry->root : InvalidOid;
}

bool
RelIsProtected(Oid relid)
{
	return OidIsValid(RegistryRootOf(relid));
}

/* autora._protected_root(regclass): the registered root covering a table, or NULL. */
PG_FUNCTION_INFO_V1(autora_protected_root);
Datum
autora_protected_root(PG_FUNCTION_ARGS)
{
	Oid			root = RegistryRootOf(PG_GETARG_OID(0));

	if (!OidIsValid(root))
		PG_RETURN_NULL();
	PG_RETURN_OID(root);
}

bool
RelIsPlatformTable(Oid relid)
{
	RootEntry  *entry = LookupRoot(relid);

	return entry != NULL && entry->platform;
}

static List *
NameArrayToList(Datum d)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	List	   *names = NIL;

	deconstruct_array(DatumGetArrayTypeP(d), NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i])
			names = lappend(names, pstrdup(NameStr(*DatumGetName(elems[i]))));
	return names;
}

bool
RegistryGetConfig(Oid root, ProtectedConfig *config)
{
	const AutoraOids *oids = AutoraGetOids(false);
	Relation	registry = table_open(oids->registry, AccessShareLock);
	Snapshot	snapshot = RegistrySnapshot();
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_protected_relid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(root));
	scan = systable_beginscan(registry, RelationGetPrimaryKeyIndex(registry), true,
							  snapshot, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		TupleDesc	desc = RelationGetDescr(registry);
		bool		isnull;
		Datum		d;

		config->root = root;
		d = heap_getattr(tup, Anum_protected_tenant_column, desc, &isnull);
		config->tenant_column = isnull ? NULL : pstrdup(NameStr(*DatumGetName(d)));
		d = heap_getattr(tup, Anum_protected_pii_columns, desc, &isnull);
		config->pii_columns = isnull ? NIL : NameArrayToList(d);
		d = heap_getattr(tup, Anum_protected_exclude_columns, desc, &isnull);
		config->exclude_columns = isnull ? NIL : NameArrayToList(d);
		found = true;
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(registry, AccessShareLock);
	return found;
}

/* Does a list of names (char *) hold every name of another, and no more? */
static bool
SameNames(List *a, List *b)
{
	ListCell   *lc;
	ListCell   *lc2;

	if (list_length(a) != list_length(b))
		return false;
	foreach(lc, a)
	{
		bool		found = false;

		foreach(lc2, b)
			found |= strcmp(lfirst(lc), lfirst(lc2)) == 0;
		if (!found)
			return false;
	}
	return true;
}

bool
RegistrySameConfiguration(Oid a, Oid b)
{
	ProtectedConfig ca;
	ProtectedConfig cb;

	if (!RegistryGetConfig(a, &ca) || !RegistryGetConfig(b, &cb))
		return false;
	if ((ca.tenant_column == NULL) != (cb.tenant_column == NULL) ||
		(ca.tenant_column != NULL && strcmp(ca.tenant_column, cb.tenant_column) != 0))
		return false;
	return
		SameNames(ca.pii_columns, cb.pii_columns) &&
		SameNames(ca.exclude_columns, cb.exclude_columns);
}

List *
RegistryRoots(void)
{
	const AutoraOids *oids = AutoraGetOids(false);
	Relation	registry = table_open(oids->registry, AccessShareLock);
	Snapshot	snapshot = RegistrySnapshot();
	SysScanDesc scan = systable_beginscan(registry, InvalidOid, false, snapshot, 0, NULL);
	HeapTuple	tup;
	List	   *roots = NIL;

	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_protected_relid, RelationGetDescr(registry), &isnull);

		if (!isnull)
			roots = lappend_oid(roots, DatumGetObjectId(d));
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(registry, AccessShareLock);
	return roots;
}

void
RegistryMergeMember(Oid relid)
{
	const AutoraOids *oids = AutoraGetOids(false);
	Relation	registry;
	Snapshot	snapshot;
	bool		registered;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];

	if (!OidIsValid(relid))
		return;
	registry = table_open(oids->registry, AccessShareLock);
	snapshot = RegistrySnapshot();
	registered = IsRegistered(registry, relid, snapshot, NULL);
	UnregisterSnapshot(snapshot);
	table_close(registry, AccessShareLock);
	if (!registered || RegistryRootOf(relid) == relid)
		return;
	values[0] = ObjectIdGetDatum(relid);
	RegistryExecute("DELETE FROM autora.protected WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
					1, argtypes, values);
	RegistryInvalidateTree(relid);
}

void
RegistryInvalidateTree(Oid root)
{
	const AutoraOids *oids = AutoraGetOids(false);
	ListCell   *lc;

	foreach(lc, find_all_inheritors(root, NoLock, NULL))
		CacheInvalidateRelcacheByRelid(lfirst_oid(lc));
	CacheInvalidateRelcacheByRelid(oids->registry);
}

static Oid
RelationOwner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

/*
 * Runs one statement on the registry as the extension owner, with a pinned
 * search_path and the registry guard lifted: the caller may be a table owner
 * whose DDL moved a column, with no right to the registry itself.
 */
void
RegistryExecute(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	RegistryExecuteWithNulls(sql, nargs, argtypes, values, NULL);
}

void
RegistryExecuteWithNulls(const char *sql, int nargs, Oid *argtypes, Datum *values,
						 const char *nulls)
{
	const AutoraOids *oids = AutoraGetOids(false);
	Oid			save_user;
	int			save_sec;
	int			nestlevel;
	int			ret;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(RelationOwner(oids->registry),
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	registry_writes_allowed++;
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "autora: SPI_connect failed");
		ret = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
		if (ret < 0)
			elog(ERROR, "autora: registry update failed: %s", SPI_result_code_string(ret));
		SPI_finish();
	}
	PG_FINALLY();
	{
		registry_writes_allowed--;
	}
	PG_END_TRY();
	AtEOXact_GUC(true, nestlevel);
	SetUserIdAndSecContext(save_user, save_sec);
}

/* --- column roles across DDL ------------------------------------------------ */

struct RegistryColumns
{
	Oid			root;
	AttrNumber	tenant;
	List	   *pii;			/* of AttrNumber (int) */
	List	   *exclude;
	ProtectedConfig config;
};

static List *
AttnumsOf(Oid relid, List *names)
{
	List	   *attnums = NIL;
	ListCell   *lc;

	foreach(lc, names)
	{
		AttrNumber	attnum = get_attnum(relid, lfirst(lc));

		if (attnum != InvalidAttrNumber)
			attnums = lappend_int(attnums, attnum);
	}
	return attnums;
}

RegistryColumns *
RegistryRemember(Oid root)
{
	RegistryColumns *before = palloc0(sizeof(RegistryColumns));

	if (!RegistryGetConfig(root, &before->config))
		return NULL;
	before->root = root;
	before->tenant = before->config.tenant_column == NULL ? InvalidAttrNumber :
		get_attnum(root, before->config.tenant_column);
	before->pii = AttnumsOf(root, before->config.pii_columns);
	before->exclude = AttnumsOf(root, before->config.exclude_columns);
	return before;
}

/* The current name of a live column, or NULL when it was dropped. */
static char *
LiveColumnName(Oid relid, AttrNumber attnum)
{
	HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
	char	   *name = NULL;

	if (HeapTupleIsValid(tup))
	{
		Form_pg_attribute att = (Form_pg_attribute) GETSTRUCT(tup);

		if (!att->attisdropped)
			name = pstrdup(NameStr(att->attname));
		ReleaseSysCache(tup);
	}
	return name;
}

/* The names of the columns still there, as a name[] datum; *changed if any moved. */
static Datum
NamesNow(Oid relid, List *attnums, List *names_before, bool *changed)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(attnums), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, attnums)
	{
		char	   *name = LiveColumnName(relid, (AttrNumber) lfirst_int(lc));

		if (name == NULL)
			continue;
		elems[n++] = DirectFunctionCall1(namein, CStringGetDatum(name));
	}
	if (n != list_length(names_before))
		*changed = true;
	else
	{
		ListCell   *nc;
		int			i = 0;

		foreach(nc, names_before)
			if (strcmp(NameStr(*DatumGetName(elems[i++])), lfirst(nc)) != 0)
				*changed = true;
	}
	return PointerGetDatum(construct_array(elems, n, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR));
}

/*
 * After DDL: the registered names of the tenant, PII and excluded columns,
 * remembered by attribute number, are what the columns are called now.
 */
void
RegistryFollowColumns(RegistryColumns *before)
{
	Oid			argtypes[4] = {NAMEOID, NAMEARRAYOID, NAMEARRAYOID, OIDOID};
	Datum		values[4];
	bool		changed = false;
	char	   *tenant;

	if (before == NULL || !OidIsValid(before->root) ||
		!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(before->root)))
		return;
	CommandCounterIncrement();
	/* a platform table has no tenant column: its NULL stays */
	tenant = before->config.tenant_column == NULL ? NULL : LiveColumnName(before->root, before->tenant);
	if (tenant == NULL)
		tenant = before->config.tenant_column;	/* the guards refuse its drop */
	changed = tenant != NULL && strcmp(tenant, before->config.tenant_column) != 0;
	if (tenant != NULL)
		values[0] = DirectFunctionCall1(namein, CStringGetDatum(tenant));
	values[1] = NamesNow(before->root, before->pii, before->config.pii_columns, &changed);
	values[2] = NamesNow(before->root, before->exclude, before->config.exclude_columns, &changed);
	values[3] = ObjectIdGetDatum(before->root);
	if (!changed)
		return;
	if (tenant != NULL)
		RegistryExecute("UPDATE autora.protected SET tenant_column = $1, pii_columns = $2,"
						" exclude_columns = $3 WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $4",
						4, argtypes, values);
	else
		RegistryExecute("UPDATE autora.protected SET pii_columns = $1, exclude_columns = $2"
						" WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $3",
						3, argtypes + 1, values + 1);
	RegistryInvalidateTree(before->root);
}
