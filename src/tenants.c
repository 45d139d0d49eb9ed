/*-------------------------------------------------------------------------
 * tenants.c
 *	  The registered stores (autora.tenants) and actor roles
 *	  (autora.actor_roles): lookups by key, cached across transactions and
 *	  invalidated when either table changes, and the lists of stores.  Below
 *	  the session context, which checks its tenant and role here; scope.c
 *	  decides visibility from them.
 *
 * Both tables are read directly: application roles need no privilege on
 * them, and cannot enumerate other stores.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/uuid.h"

#include "autora_audit.h"
#include "objects.h"
#include "tenants.h"

static int
CompareStrings(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/* Tenant ids of autora.tenants, sorted: those of group, or every one when group is NULL. */
static List *
ScanTenants(const char *group)
{
	const AutoraOids *oids = AutoraGetOids(false);
	Relation	rel = table_open(oids->tenants, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	List	   *result = NIL;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		id = slot_getattr(slot, 1, &isnull);
		Datum		g = slot_getattr(slot, 2, &isnull);

		if (group == NULL || (!isnull && strcmp(TextDatumGetCString(g), group) == 0))
			result = lappend(result, TextDatumGetCString(id));
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	list_sort(result, CompareStrings);
	return result;
}

void
UnknownTenantError(const char *tenant)
{
	int			len = strlen(tenant);
	char	   *shown = len <= 64 ? pstrdup(tenant) :
		psprintf("%s...", pnstrdup(tenant, pg_mbcliplen(tenant, len, 64)));

	ereport(ERROR,
			(errcode(ERRCODE_AUTORA_UNKNOWN),
			 errmsg("unknown tenant \"%s\"", shown),
			 errhint("autora.add_tenant() registers a store; autora.tenants lists them.")));
}

List *
TenantsOfGroup(const char *group)
{
	Assert(group != NULL);
	return ScanTenants(group);
}

List *
AllTenants(void)
{
	return ScanTenants(NULL);
}

/*
 * Rows of autora.tenants and autora.actor_roles found by key, kept across
 * transactions: every set_context call looks up one of each.  A change to
 * either table sends a relcache invalidation (autora._registry_changed()
 * trigger), which empties the cache in every backend, this one included at
 * the next command or on abort.  Only a row version nobody has updated or
 * deleted is kept (RowVersionIsLatest), so a lookup under an older snapshot
 * never keeps a value that a committed change has already replaced.
 */
#define LOOKUP_KEY_LEN 64

typedef struct LookupKey
{
	Oid			relid;
	char		id[LOOKUP_KEY_LEN];	/* zero-padded */
} LookupKey;

typedef struct LookupEntry
{
	LookupKey key;
	char	   *value;			/* NULL when SQL NULL */
} LookupEntry;

static HTAB *lookup_cache = NULL;
static MemoryContext LookupMemory = NULL;
static Oid	lookup_relids[2];	/* the tables the cached rows come from */

static void
LookupCacheForget(Datum arg, Oid relid)
{
	if (lookup_cache != NULL &&
		(!OidIsValid(relid) || relid == lookup_relids[0] || relid == lookup_relids[1]))
	{
		hash_destroy(lookup_cache);
		lookup_cache = NULL;
		MemoryContextReset(LookupMemory);
		lookup_relids[0] = lookup_relids[1] = InvalidOid;
	}
}

static bool
LookupKeyFor(Oid relid, const char *id, LookupKey *key)
{
	size_t		len = strlen(id);

	if (len >= LOOKUP_KEY_LEN)
		return false;			/* long ids are simply looked up each time */
	memset(key, 0, sizeof(*key));
	key->relid = relid;
	memcpy(key->id, id, len);
	return true;
}

/* Keeps one looked-up row of autora.tenants or autora.actor_roles. */
static void
LookupCacheRemember(const LookupKey *key, const char *value)
{
	LookupEntry *e;
	bool		found;

	if (lookup_cache == NULL)
	{
		HASHCTL		ctl;

		if (LookupMemory == NULL)
			LookupMemory = AllocSetContextCreate(TopMemoryContext, "autora tenant lookups",
												   ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(LookupKey);
		ctl.entrysize = sizeof(LookupEntry);
		ctl.hcxt = LookupMemory;
		lookup_cache = hash_create("autora tenant lookups", 64, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (key->relid != lookup_relids[0] && key->relid != lookup_relids[1])
	{
		if (OidIsValid(lookup_relids[0]) && OidIsValid(lookup_relids[1]))
			return;				/* not a registry table: cannot happen */
		lookup_relids[OidIsValid(lookup_relids[0]) ? 1 : 0] = key->relid;
	}
	e = hash_search(lookup_cache, key, HASH_ENTER, &found);
	e->value = value ? MemoryContextStrdup(LookupMemory, value) : NULL;
}

/*
 * No update or delete has touched this row version: its xmax is unset,
 * aborted, or only a row lock.  add_tenant's INSERT ... ON CONFLICT DO
 * UPDATE leaves its own row lock in the new version's xmax, so "unset" alone
 * would never cache a store that has been updated once.
 */
static bool
RowVersionIsLatest(HeapTupleHeader tup)
{
	uint16		infomask = tup->t_infomask;

	return !TransactionIdIsValid(HeapTupleHeaderGetRawXmax(tup)) ||
		(infomask & HEAP_XMAX_INVALID) != 0 ||
		HEAP_XMAX_IS_LOCKED_ONLY(infomask);
}

/*
 * Primary-key lookup in a small autora table keyed by text: the row's
 * column valuecol as a string (NULL if SQL NULL); false when no row.
 */
static bool
LookupByKey(Oid relid, const char *id, AttrNumber valuecol, char **value)
{
	LookupKey key;
	bool		cacheable = LookupKeyFor(relid, id, &key);
	Relation	rel;
	Oid			pkey;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (cacheable && lookup_cache != NULL)
	{
		LookupEntry *e = hash_search(lookup_cache, &key, HASH_FIND, NULL);

		if (e != NULL)
		{
			*value = e->value ? pstrdup(e->value) : NULL;
			return true;
		}
	}

	rel = table_open(relid, AccessShareLock);
	pkey = RelationGetPrimaryKeyIndex(rel);
	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   DEFAULT_COLLATION_OID, F_TEXTEQ, CStringGetTextDatum(id));
	scan = systable_beginscan(rel, pkey, OidIsValid(pkey), GetActiveSnapshot(), 1, &skey);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, valuecol, RelationGetDescr(rel), &isnull);

		*value = isnull ? NULL : TextDatumGetCString(d);
		found = true;
		if (cacheable && RowVersionIsLatest(tup->t_data))
			LookupCacheRemember(&key, *value);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* AFTER ... FOR EACH STATEMENT trigger of autora.tenants and autora.actor_roles. */
PG_FUNCTION_INFO_V1(autora_registry_changed);
Datum
autora_registry_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_registry_changed: not called by trigger manager")));
	/* sent at commit to every backend, and processed here at the next command */
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}

void
TenantsInit(void)
{
	CacheRegisterRelcacheCallback(LookupCacheForget, (Datum) 0);
}

bool
TenantLookup(const char *tenant, char **group)
{
	return LookupByKey(AutoraGetOids(false)->tenants, tenant, 2, group);
}

bool
ActorRoleLookup(const char *role, char **scope)
{
	return LookupByKey(AutoraGetOids(false)->actor_roles, role, 2, scope);
}

/* An integer written exactly as int8out would write it. */
static bool
ParseInteger(const char *s, int64 min, int64 max, int64 *out)
{
	char	   *end;
	char		canonical[32];

	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || *out < min || *out > max)
		return false;
	snprintf(canonical, sizeof(canonical), INT64_FORMAT, *out);
	return strcmp(canonical, s) == 0;
}

/* A uuid written exactly as uuid_out would write it (lower case, hyphens). */
static bool
IsCanonicalUuid(const char *s)
{
	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
	{
		bool		hyphen_position = (i == 8 || i == 13 || i == 18 || i == 23);

		if (hyphen_position ? s[i] != '-' : !(isdigit((unsigned char) s[i]) ||
												(s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

/* The id as a Datum of the column type, if it is in that type's text form. */
bool
TypedTenant(const char *id, Oid type, Datum *value)
{
	int64		v;

	switch (type)
	{
		case INT4OID:
			if (!ParseInteger(id, PG_INT32_MIN, PG_INT32_MAX, &v))
				return false;
			*value = Int32GetDatum((int32) v);
			return true;
		case INT8OID:
			if (!ParseInteger(id, PG_INT64_MIN, PG_INT64_MAX, &v))
				return false;
			*value = Int64GetDatum(v);
			return true;
		case UUIDOID:
			if (!IsCanonicalUuid(id))
				return false;
			*value = DirectFunctionCall1(uuid_in, CStringGetDatum(id));
			return true;
		default:
			*value = CStringGetTextDatum(id);
			return true;
	}
}
