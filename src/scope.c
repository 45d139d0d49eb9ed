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
 * does not cast is simply not visible there (TypedTenant, tenants.c).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "autora_audit.h"
#include "context.h"
#include "tenants.h"

static MemoryContext ScopeMemory = NULL;
static List *cached_tenants = NIL;
static uint64 cached_generation = 0;
static Oid	cached_user = InvalidOid;
static LocalTransactionId cached_xact = InvalidLocalTransactionId;

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
		tenants = AllTenants();
	else if (strcmp(ctx->scope, "group") == 0 && ctx->group != NULL)
		tenants = TenantsOfGroup(ctx->group);
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

/* The visible tenant ids that are values of type, as an array of it. */
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
