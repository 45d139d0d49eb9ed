/*-------------------------------------------------------------------------
 * scope.c
 *	  Which tenants the session context may see: its own store (tenant
 *	  scope), the stores of its group (group scope) or every store
 *	  (platform scope).  Members of autora_auditor without a context see
 *	  every store; anybody else without a context gets ZA001.
 *
 * The row level security policies of protected tables compare the tenant
 * column with these lists, so there is one typed variant per supported
 * tenant column type.  Only an id in the type's own text form counts:
 * '09101' is not the bigint 9101 (that is tenant '9101'), and an id that
 * does not cast is simply not visible there.
 * autora.tenants is read directly: application roles need no privilege on
 * it, and cannot enumerate other stores.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/transam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/uuid.h"

#include "autora_audit.h"
#include "context.h"
#include "ledger.h"
#include "scope.h"

static MemoryContext ScopeMemory = NULL;
static List *cached_tenants = NIL;
static uint64 cached_generation = 0;
static Oid	cached_user = InvalidOid;
static LocalTransactionId cached_xact = InvalidLocalTransactionId;

static int
CompareStrings(const ListCell *a, const ListCell *b)
{
	return strcmp(lfirst(a), lfirst(b));
}

/* Tenant ids of autora.tenants, all of them or those of one group. */
List *
TenantsOfGroup(const char *group, bool all)
{
	const LedgerOids *oids = LedgerGetOids(false);
	Relation	rel = table_open(oids->tenants, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	List	   *result = NIL;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		id = slot_getattr(slot, 1, &isnull);
		Datum		g = slot_getattr(slot, 2, &isnull);

		if (all || (!isnull && group != NULL && strcmp(TextDatumGetCString(g), group) == 0))
			result = lappend(result, TextDatumGetCString(id));
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	list_sort(result, CompareStrings);
	return result;
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
#define REGISTRY_KEY_LEN 64

typedef struct RegistryKey
{
	Oid			relid;
	char		id[REGISTRY_KEY_LEN];	/* zero-padded */
} RegistryKey;

typedef struct RegistryEntry
{
	RegistryKey key;
	char	   *value;			/* NULL when SQL NULL */
} RegistryEntry;

static HTAB *registry_cache = NULL;
static MemoryContext RegistryMemory = NULL;
static Oid	registry_relids[2];	/* the tables the cached rows come from */

static void
RegistryForget(Datum arg, Oid relid)
{
	if (registry_cache != NULL &&
		(!OidIsValid(relid) || relid == registry_relids[0] || relid == registry_relids[1]))
	{
		hash_destroy(registry_cache);
		registry_cache = NULL;
		MemoryContextReset(RegistryMemory);
		registry_relids[0] = registry_relids[1] = InvalidOid;
	}
}

static bool
RegistryKeyFor(Oid relid, const char *id, RegistryKey *key)
{
	size_t		len = strlen(id);

	if (len >= REGISTRY_KEY_LEN)
		return false;			/* long ids are simply looked up each time */
	memset(key, 0, sizeof(*key));
	key->relid = relid;
	memcpy(key->id, id, len);
	return true;
}

static void
RegistryRemember(const RegistryKey *key, const char *value)
{
	RegistryEntry *e;
	bool		found;

	if (registry_cache == NULL)
	{
		HASHCTL		ctl;

		if (RegistryMemory == NULL)
			RegistryMemory = AllocSetContextCreate(TopMemoryContext, "autora registry cache",
												   ALLOCSET_SMALL_SIZES);
		ctl.keysize = sizeof(RegistryKey);
		ctl.entrysize = sizeof(RegistryEntry);
		ctl.hcxt = RegistryMemory;
		registry_cache = hash_create("autora registry cache", 64, &ctl,
									 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (key->relid != registry_relids[0] && key->relid != registry_relids[1])
	{
		if (OidIsValid(registry_relids[0]) && OidIsValid(registry_relids[1]))
			return;				/* not a registry table: cannot happen */
		registry_relids[OidIsValid(registry_relids[0]) ? 1 : 0] = key->relid;
	}
	e = hash_search(registry_cache, key, HASH_ENTER, &found);
	e->value = value ? MemoryContextStrdup(RegistryMemory, value) : NULL;
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
	RegistryKey key;
	bool		cacheable = RegistryKeyFor(relid, id, &key);
	Relation	rel;
	Oid			pkey;
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	if (cacheable && registry_cache != NULL)
	{
		RegistryEntry *e = hash_search(registry_cache, &key, HASH_FIND, NULL);

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
			RegistryRemember(&key, *value);
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
ScopeInit(void)
{
	CacheRegisterRelcacheCallback(RegistryForget, (Datum) 0);
}

bool
TenantLookup(const char *tenant, char **group)
{
	return LookupByKey(LedgerGetOids(false)->tenants, tenant, 2, group);
}

bool
ActorRoleLookup(const char *role, char **scope)
{
	return LookupByKey(LedgerGetOids(false)->actor_roles, role, 2, scope);
}

static bool
IsAuditor(void)
{
	Oid			auditor = get_role_oid("autora_auditor", true);

	return OidIsValid(auditor) && has_privs_of_role(GetUserId(), auditor);
}

/*
 * The visible tenant ids, cached per context, user and transaction: the
 * context's scope and group are those registered for this transaction
 * (ContextCurrent), and a group's stores are read once per transaction, so
 * a store or role changed by the platform counts from the next transaction
 * in every session.  auditor_fallback: an auditor without a context sees
 * every store (the policies' variant).
 */
static List *
VisibleTenants(bool auditor_fallback)
{
	const AutoraContext *ctx = ContextCurrent();
	MemoryContext old;
	List	   *tenants;

	if (!ctx->present && !(auditor_fallback && IsAuditor()))
		(void) ContextRequired();	/* raises ZA001 */

	if (ScopeMemory != NULL && cached_generation == ContextGeneration() &&
		cached_user == GetUserId() && cached_xact == MyProc->lxid)
		return cached_tenants;

	if (ScopeMemory == NULL)
		ScopeMemory = AllocSetContextCreate(TopMemoryContext, "autora scope",
											ALLOCSET_SMALL_SIZES);
	MemoryContextReset(ScopeMemory);
	old = MemoryContextSwitchTo(ScopeMemory);
	if (!ctx->present || strcmp(ctx->scope, "platform") == 0)
		tenants = TenantsOfGroup(NULL, true);
	else if (strcmp(ctx->scope, "group") == 0 && ctx->group != NULL)
		tenants = TenantsOfGroup(ctx->group, false);
	else if (ctx->tenant != NULL)
		tenants = list_make1(pstrdup(ctx->tenant));
	else
		tenants = NIL;			/* not reached: ContextCurrent refuses it */
	MemoryContextSwitchTo(old);

	cached_tenants = tenants;
	cached_generation = ContextGeneration();
	cached_user = GetUserId();
	cached_xact = MyProc->lxid;
	return tenants;
}

/* --- typed lists: ids that do not cast to the column type are left out --- */

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

static Datum
VisibleArray(Oid type)
{
	List	   *tenants = VisibleTenants(true);
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(tenants), 1));
	int			n = 0;
	int16		typlen;
	bool		typbyval;
	char		typalign;
	ListCell   *lc;

	foreach(lc, tenants)
		if (TypedTenant(lfirst(lc), type, &elems[n]))
			n++;
	get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, type, typlen, typbyval, typalign));
}

/* autora.visible_tenants(): the reader; ZA001 without a context. */
PG_FUNCTION_INFO_V1(autora_visible_tenants);
Datum
autora_visible_tenants(PG_FUNCTION_ARGS)
{
	List	   *tenants = VisibleTenants(false);
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(tenants), 1));
	int			n = 0;
	ListCell   *lc;

	foreach(lc, tenants)
		elems[n++] = CStringGetTextDatum(lfirst(lc));
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, n, TEXTOID, -1, false, TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(autora_visible_text);
Datum
autora_visible_text(PG_FUNCTION_ARGS)
{
	return VisibleArray(TEXTOID);
}

PG_FUNCTION_INFO_V1(autora_visible_int4);
Datum
autora_visible_int4(PG_FUNCTION_ARGS)
{
	return VisibleArray(INT4OID);
}

PG_FUNCTION_INFO_V1(autora_visible_int8);
Datum
autora_visible_int8(PG_FUNCTION_ARGS)
{
	return VisibleArray(INT8OID);
}

PG_FUNCTION_INFO_V1(autora_visible_uuid);
Datum
autora_visible_uuid(PG_FUNCTION_ARGS)
{
	return VisibleArray(UUIDOID);
}

/*
 * The context tenant as the write policies compare it: NULL (so the write
 * is refused) for a platform context without a tenant, or an id not in the
 * column type's text form; ZA001 without a context.
 */
static Datum
OwnTenant(FunctionCallInfo fcinfo, Oid type)
{
	const AutoraContext *ctx = ContextRequired();
	Datum		value;

	if (ctx->tenant == NULL || !TypedTenant(ctx->tenant, type, &value))
		PG_RETURN_NULL();
	return value;
}

PG_FUNCTION_INFO_V1(autora_own_text);
Datum
autora_own_text(PG_FUNCTION_ARGS)
{
	return OwnTenant(fcinfo, TEXTOID);
}

PG_FUNCTION_INFO_V1(autora_own_int4);
Datum
autora_own_int4(PG_FUNCTION_ARGS)
{
	return OwnTenant(fcinfo, INT4OID);
}

PG_FUNCTION_INFO_V1(autora_own_int8);
Datum
autora_own_int8(PG_FUNCTION_ARGS)
{
	return OwnTenant(fcinfo, INT8OID);
}

PG_FUNCTION_INFO_V1(autora_own_uuid);
Datum
autora_own_uuid(PG_FUNCTION_ARGS)
{
	return OwnTenant(fcinfo, UUIDOID);
}
