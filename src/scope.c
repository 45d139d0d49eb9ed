/*-------------------------------------------------------------------------
 * scope.c
 *	  Which tenants the session context may see: its own store (tenant
 *	  scope), the stores of its group (group scope) or every store
 *	  (platform scope).  Members of autora_auditor without a context see
 *	  every store; anybody else without a context gets ZA001.
 *
 * The row level security policies of protected tables compare the tenant
 * column with these lists, so there is one typed variant per supported
 * tenant column type; ids that do not cast to it are simply not visible.
 * autora.tenants is read directly: application roles need no privilege on
 * it, and cannot enumerate other stores.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/fmgroids.h"
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
 * Primary-key lookup in a small autora table keyed by text: the row's
 * column valuecol as a string (NULL if SQL NULL); false when no row.
 */
static bool
LookupByKey(Oid relid, const char *key, AttrNumber valuecol, char **value)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pkey = RelationGetPrimaryKeyIndex(rel);
	ScanKeyData skey;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   DEFAULT_COLLATION_OID, F_TEXTEQ, CStringGetTextDatum(key));
	scan = systable_beginscan(rel, pkey, OidIsValid(pkey), GetActiveSnapshot(), 1, &skey);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, valuecol, RelationGetDescr(rel), &isnull);

		*value = isnull ? NULL : TextDatumGetCString(d);
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
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
 * The visible tenant ids, cached per context and user.  auditor_fallback:
 * an auditor without a context sees every store (the policies' variant).
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
		cached_user == GetUserId())
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
	else
		tenants = list_make1(pstrdup(ctx->tenant));
	MemoryContextSwitchTo(old);

	cached_tenants = tenants;
	cached_generation = ContextGeneration();
	cached_user = GetUserId();
	return tenants;
}

/* --- typed lists: ids that do not cast to the column type are left out --- */

static bool
ParseInteger(const char *s, int64 min, int64 max, int64 *out)
{
	char	   *end;

	errno = 0;
	if (*s == '\0' || isspace((unsigned char) *s))
		return false;
	*out = strtoll(s, &end, 10);
	return errno == 0 && *end == '\0' && *out >= min && *out <= max;
}

static bool
IsCanonicalUuid(const char *s)
{
	size_t		len = strlen(s);

	for (size_t i = 0; i < len; i++)
	{
		bool		hyphen_position = (len == 36 && (i == 8 || i == 13 || i == 18 || i == 23));

		if (hyphen_position ? s[i] != '-' : !isxdigit((unsigned char) s[i]))
			return false;
	}
	return len == 36 || len == 32;
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
	{
		const char *id = lfirst(lc);
		int64		v;

		switch (type)
		{
			case INT4OID:
				if (ParseInteger(id, PG_INT32_MIN, PG_INT32_MAX, &v))
					elems[n++] = Int32GetDatum((int32) v);
				break;
			case INT8OID:
				if (ParseInteger(id, PG_INT64_MIN, PG_INT64_MAX, &v))
					elems[n++] = Int64GetDatum(v);
				break;
			case UUIDOID:
				if (IsCanonicalUuid(id))
					elems[n++] = DirectFunctionCall1(uuid_in, CStringGetDatum(id));
				break;
			default:
				elems[n++] = CStringGetTextDatum(id);
				break;
		}
	}
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
