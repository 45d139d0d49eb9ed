/*-------------------------------------------------------------------------
 * context.c
 *	  The session context, held in GUCs that only this module may set.
 *
 * The whole context is one JSON value in the hidden GUC autora.context, so
 * the GUC machinery gives us transaction scope, SAVEPOINT / ROLLBACK TO and
 * abort restore, DISCARD ALL / RESET ALL clearing and parallel-worker
 * propagation.  autora.tenant_id, autora.actor_id and autora.actor_role are
 * views of it for current_setting(): their show hooks read the one context,
 * so no RESET of a single variable can make them disagree with it.  A check
 * hook refuses every value that does not come from set_context*: SET,
 * set_config(), ALTER ROLE SET, function SET clauses and connection options
 * all fail.
 *
 * The scope of the actor role and the group of the store are stored with the
 * context but not trusted from it: a session-scoped context outlives the
 * transaction that set it, while the platform may change autora.actor_roles
 * and autora.tenants.  ContextCurrent() takes both from the registry once per
 * transaction (through the lookup cache of scope.c), and refuses a context
 * whose role or store is no longer registered.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inet.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"

#include "autora_audit.h"
#include "context.h"
#include "tenants.h"
#include "token.h"

/* GUC storage; the value of autora.context is the authoritative one */
static char *context_json = NULL;
static char *context_tenant_guc = NULL;
static char *context_actor_guc = NULL;
static char *context_role_guc = NULL;

/* raised only around our own set_config_option calls */
static bool context_setting_in_progress = false;

/* parsed form of context_json, rebuilt when the GUC changes */
static uint64 context_generation = 1;
static uint64 parsed_generation = 0;
static AutoraContext parsed_context;
static MemoryContext ContextMemory = NULL;

/*
 * parsed_context's scope and group as registered, valid for this generation
 * of the setting in this transaction; the strings live in ResolvedMemory
 */
static uint64 resolved_generation = 0;
static LocalTransactionId resolved_xact = InvalidLocalTransactionId;
static MemoryContext ResolvedMemory = NULL;

/*
 * Members of the context object, in jsonb's key order (shorter keys first,
 * then bytewise), so that ContextJsonb builds it without sorting.
 */
typedef enum ContextKey
{
	CK_IP, CK_UA, CK_REQ, CK_SUB, CK_VIA, CK_ROLE, CK_EMAIL, CK_GROUP,
	CK_SCOPE, CK_METHOD, CK_TENANT, CK_ENDPOINT,
	CK_COUNT
} ContextKey;

static const char *const context_keys[CK_COUNT] = {
	"ip", "ua", "req", "sub", "via", "role", "email", "group",
	"scope", "method", "tenant", "endpoint"
};

/* keys an application may add through the extra argument / token claims */
static const ContextKey extra_keys[] = {CK_EMAIL, CK_IP, CK_UA, CK_ENDPOINT, CK_METHOD, CK_REQ};

static const AutoraContext *ContextAsSet(void);

static bool
ContextGucCheck(char **newval, void **extra, GucSource source)
{
	if (context_setting_in_progress || InitializingParallelWorker ||
		source == PGC_S_DEFAULT)
		return true;

	GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
	GUC_check_errmsg("the autora session context cannot be changed with SET");
	GUC_check_errdetail("The context is set only by autora.set_context() or autora.set_context_trusted().");
	GUC_check_errhint("Call autora.set_context(token) at the start of each transaction, or autora.clear_context() to end it.");
	return false;
}

static void
ContextJsonAssign(const char *newval, void *extra)
{
	context_generation++;
}

static const char *
ShowTenant(void)
{
	const char *v = ContextAsSet()->tenant;

	return v ? v : "";
}

static const char *
ShowActor(void)
{
	const char *v = ContextAsSet()->actor;

	return v ? v : "";
}

static const char *
ShowActorRole(void)
{
	const char *v = ContextAsSet()->role;

	return v ? v : "";
}

static void
DefineContextVariable(const char *name, const char *desc, char **var,
					  GucStringAssignHook assign, GucShowHook show, int extra_flags)
{
	DefineCustomStringVariable(name, desc,
							   "Read-only: set by autora.set_context() or autora.set_context_trusted().",
							   var, "",
							   PGC_SUSET,
							   GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE | extra_flags,
							   ContextGucCheck, assign, show);
}

void
ContextDefineConfiguration(void)
{
	DefineContextVariable("autora.tenant_id", "Tenant (store) of the session context.",
						  &context_tenant_guc, NULL, ShowTenant, 0);
	DefineContextVariable("autora.actor_id", "Actor (application user) of the session context.",
						  &context_actor_guc, NULL, ShowActor, 0);
	DefineContextVariable("autora.actor_role", "Actor role of the session context.",
						  &context_role_guc, NULL, ShowActorRole, 0);
	DefineContextVariable("autora.context", "The whole session context, as JSON.",
						  &context_json, ContextJsonAssign, NULL, GUC_NO_SHOW_ALL);
}

/* String value of a top-level key of a jsonb object, or NULL. */
static char *
JsonbGetString(Jsonb *jb, const char *key)
{
	JsonbValue *v = JsonbMember(jb, key);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	return NULL;
}

uint64
ContextGeneration(void)
{
	return context_generation;
}

static char *
KeepString(const char *s)
{
	return s != NULL ? MemoryContextStrdup(ContextMemory, s) : NULL;
}

/*
 * Makes parsed_context the context with these members (NULL: absent), or
 * no context at all, for the current generation of the setting.
 */
static void
AdoptContext(char *const values[CK_COUNT])
{
	if (ContextMemory == NULL)
		ContextMemory = AllocSetContextCreate(TopMemoryContext, "autora context",
											  ALLOCSET_SMALL_SIZES);
	MemoryContextReset(ContextMemory);
	memset(&parsed_context, 0, sizeof(parsed_context));
	if (values != NULL)
	{
		parsed_context.present = true;
		parsed_context.tenant = KeepString(values[CK_TENANT]);
		parsed_context.actor = KeepString(values[CK_SUB]);
		parsed_context.role = KeepString(values[CK_ROLE]);
		parsed_context.scope = KeepString(values[CK_SCOPE]);
		parsed_context.group = KeepString(values[CK_GROUP]);
		parsed_context.email = KeepString(values[CK_EMAIL]);
		parsed_context.ip = KeepString(values[CK_IP]);
		parsed_context.user_agent = KeepString(values[CK_UA]);
		parsed_context.endpoint = KeepString(values[CK_ENDPOINT]);
		parsed_context.method = KeepString(values[CK_METHOD]);
		parsed_context.request_id = KeepString(values[CK_REQ]);
	}
	parsed_generation = context_generation;
}

/*
 * Makes parsed_context the context of jb (NULL: none), the setting read
 * back (after a ROLLBACK, in a parallel worker...).
 */
static void
ParseContext(Jsonb *jb)
{
	char	   *values[CK_COUNT];
	char	   *support;

	if (jb == NULL)
	{
		AdoptContext(NULL);
		return;
	}
	for (int k = 0; k < CK_COUNT; k++)
		values[k] = JsonbGetString(jb, context_keys[k]);
	AdoptContext(values);
	support = JsonbGetString(jb, "support_session");
	if (support != NULL)
	{
		parsed_context.has_support_session = true;
		parsed_context.support_session = pg_strtoint64(support);
	}
}

/*
 * The context as set, its registry entries not checked: what the show hooks
 * of the settings display (SHOW ALL and pg_settings must not fail).
 */
static const AutoraContext *
ContextAsSet(void)
{
	if (parsed_generation != context_generation)
	{
		Jsonb	   *jb = NULL;

		if (context_json != NULL && context_json[0] != '\0')
			jb = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(context_json)));
		ParseContext(jb);
	}
	return &parsed_context;
}

#define STALE_CONTEXT_HINT \
	"Set a new context with autora.set_context(), or end this one with autora.clear_context()."

/*
 * Takes the scope of the context's actor role and the group of its store
 * from the registry, for the rest of this transaction: a change committed
 * meanwhile counts from the next one, the same in every session.  The
 * lookups are cached across transactions by scope.c and invalidated when
 * autora.actor_roles or autora.tenants change, so an unchanged registry
 * costs two hash probes per transaction.
 */
static void
ContextResolve(void)
{
	char	   *scope = NULL;
	char	   *group = NULL;
	MemoryContext old;

	if (parsed_context.role == NULL || !ActorRoleLookup(parsed_context.role, &scope) ||
		scope == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_UNKNOWN),
				 errmsg("actor role \"%s\" of the session context is no longer registered",
						parsed_context.role ? parsed_context.role : ""),
				 errdetail("The role was removed from autora.actor_roles after the context was set."),
				 errhint(STALE_CONTEXT_HINT)));
	if (parsed_context.tenant != NULL)
	{
		if (!TenantLookup(parsed_context.tenant, &group))
			ereport(ERROR,
					(errcode(ERRCODE_AUTORA_UNKNOWN),
					 errmsg("tenant \"%s\" of the session context is no longer registered",
							parsed_context.tenant),
					 errdetail("The store was removed from autora.tenants after the context was set."),
					 errhint(STALE_CONTEXT_HINT)));
	}
	else if (strcmp(scope, "platform") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_UNKNOWN),
				 errmsg("actor role \"%s\" of the session context no longer has platform scope",
						parsed_context.role),
				 errdetail("A context without a tenant needs a role with platform scope; the role now has %s scope.",
						   scope),
				 errhint(STALE_CONTEXT_HINT)));

	/* only now replace the previous values: an error above keeps them */
	if (ResolvedMemory == NULL)
		ResolvedMemory = AllocSetContextCreate(TopMemoryContext, "autora context registry",
											   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(ResolvedMemory);
	old = MemoryContextSwitchTo(ResolvedMemory);
	parsed_context.scope = pstrdup(scope);
	parsed_context.group = group != NULL ? pstrdup(group) : NULL;
	MemoryContextSwitchTo(old);
	resolved_generation = context_generation;
	resolved_xact = MyProc->lxid;
}

/*
 * The context in force, with the scope and group registered for this
 * transaction; ZA004 when its role or store has been removed.  Cheap after
 * the first call of a transaction: every policy check and captured row
 * comes here.
 */
const AutoraContext *
ContextCurrent(void)
{
	const AutoraContext *ctx = ContextAsSet();

	if (ctx->present && IsTransactionState() &&
		(resolved_generation != context_generation || resolved_xact != MyProc->lxid))
		ContextResolve();
	return ctx;
}

/*
 * Installs a context (json NULL clears it); is_local gives transaction
 * scope (SET LOCAL semantics).
 */
static void
ContextInstall(const char *json, bool is_local)
{
	GucAction	action = is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET;

	context_setting_in_progress = true;
	PG_TRY();
	{
		/* the caller's privileges do not matter: the check hook decides */
		(void) set_config_option("autora.context", json ? json : "", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
	}
	PG_FINALLY();
	{
		context_setting_in_progress = false;
	}
	PG_END_TRY();
}

/* An ip claim must be an IPv4 or IPv6 address (it becomes an inet). */
static void
RequireIpAddress(const char *value, bool from_token)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, value, buf) == 1 || inet_pton(AF_INET6, value, buf) == 1)
		return;
	ereport(ERROR,
			(errcode(from_token ? ERRCODE_AUTORA_BAD_TOKEN : ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("context claim \"ip\" is not an IP address"),
			 errhint("Pass the client address, e.g. \"203.0.113.7\" or \"2001:db8::1\".")));
}

/* The context object: the claims always present, and the extras given. */
static Jsonb *
ContextJsonb(char *const values[CK_COUNT])
{
	JsonbPair	pairs[CK_COUNT];
	JsonbValue	object;
	int			n = 0;

	for (int k = 0; k < CK_COUNT; k++)
	{
		bool		extra = false;

		for (int i = 0; i < lengthof(extra_keys); i++)
			extra |= (extra_keys[i] == k);
		if (values[k] == NULL && extra)
			continue;
		pairs[n].key.type = jbvString;
		pairs[n].key.val.string.val = (char *) context_keys[k];
		pairs[n].key.val.string.len = strlen(context_keys[k]);
		if (values[k] == NULL)
			pairs[n].value.type = jbvNull;
		else
		{
			pairs[n].value.type = jbvString;
			pairs[n].value.val.string.val = values[k];
			pairs[n].value.val.string.len = strlen(values[k]);
		}
		pairs[n].order = n;
		n++;
	}
	object.type = jbvObject;
	object.val.object.nPairs = n;
	object.val.object.pairs = pairs;
	return JsonbValueToJsonb(&object);
}

/*
 * Reads the extra keys of an extra argument or a token payload, in one pass.
 * A token carries other claims (exp, iss...); the trusted path is strict.
 */
static void
ReadExtras(Jsonb *extra, bool from_token, char *values[CK_COUNT])
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			key = -1;

	if (!JB_ROOT_IS_OBJECT(extra) || JB_ROOT_IS_SCALAR(extra))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("context extra must be a JSON object"),
				 errhint("Pass e.g. '{\"ip\": \"203.0.113.7\", \"ua\": \"Mozilla/5.0\"}'.")));
	it = JsonbIteratorInit(&extra->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = -1;
			for (int i = 0; i < lengthof(extra_keys); i++)
				if (strlen(context_keys[extra_keys[i]]) == v.val.string.len &&
					strncmp(context_keys[extra_keys[i]], v.val.string.val, v.val.string.len) == 0)
					key = extra_keys[i];
			if (key < 0 && !from_token)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unknown context key \"%.*s\"", v.val.string.len, v.val.string.val),
						 errhint("Allowed keys are email, ip, ua, endpoint, method and req.")));
		}
		else if (tok == WJB_VALUE && key >= 0)
		{
			/* strings and numbers count; null and other types are absent */
			if (v.type == jbvString)
				values[key] = pnstrdup(v.val.string.val, v.val.string.len);
			else if (v.type == jbvNumeric)
				values[key] = DatumGetCString(DirectFunctionCall1(numeric_out,
																  NumericGetDatum(v.val.numeric)));
		}
	}
}

/*
 * Validates the claims and installs the context.  Shared by the token path
 * and the trusted path; returns the context as jsonb.
 */
static Jsonb *
ContextEstablish(const char *tenant, const char *actor, const char *role,
				 Jsonb *extra, bool from_token, bool is_local)
{
	char	   *values[CK_COUNT] = {0};
	Jsonb	   *context;
	char	   *scope;
	char	   *group = NULL;

	if (actor == NULL || actor[0] == '\0')
		ereport(ERROR,
				(errcode(from_token ? ERRCODE_AUTORA_BAD_TOKEN : ERRCODE_AUTORA_UNKNOWN),
				 errmsg("the session context needs an actor"),
				 errhint("Pass the application user id as the actor (the token's \"sub\" claim).")));
	if (role == NULL || role[0] == '\0')
		ereport(ERROR,
				(errcode(from_token ? ERRCODE_AUTORA_BAD_TOKEN : ERRCODE_AUTORA_UNKNOWN),
				 errmsg("the session context needs an actor role"),
				 errhint("Pass one of the roles listed in autora.actor_roles.")));

	if (!ActorRoleLookup(role, &scope))
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_UNKNOWN),
				 errmsg("unknown actor role \"%s\"", role),
				 errhint("Use a role listed in autora.actor_roles.")));

	if (tenant != NULL && tenant[0] != '\0')
	{
		if (!TenantLookup(tenant, &group))
			UnknownTenantError(tenant);
	}
	else if (strcmp(scope, "platform") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_UNKNOWN),
				 errmsg("actor role \"%s\" needs a tenant", role),
				 errdetail("Only roles with platform scope may act without a tenant."),
				 errhint("Pass the store id as the tenant.")));
	else
		tenant = NULL;

	if (extra != NULL)
		ReadExtras(extra, from_token, values);
	if (values[CK_IP] != NULL)
		RequireIpAddress(values[CK_IP], from_token);
	values[CK_TENANT] = (char *) tenant;
	values[CK_SUB] = (char *) actor;
	values[CK_ROLE] = (char *) role;
	values[CK_SCOPE] = scope;
	values[CK_GROUP] = group;
	values[CK_VIA] = from_token ? "token" : "trusted";

	context = ContextJsonb(values);
	ContextInstall(JsonbToCString(NULL, &context->root, VARSIZE(context)), is_local);

	/* what was installed is at hand, just looked up in the registry */
	AdoptContext(values);
	resolved_generation = context_generation;
	resolved_xact = MyProc->lxid;
	return context;
}

static void
RequireRoleMembership(const char *rolename, const char *what)
{
	Oid			roleid = get_role_oid(rolename, true);

	if (!OidIsValid(roleid) || !has_privs_of_role(GetUserId(), roleid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Only members of role %s may do this.", rolename),
				 errhint("Use autora.set_context(token) with a signed token instead, or GRANT %s to the service role.", rolename)));
}

static char *
TextArgOrNull(FunctionCallInfo fcinfo, int n)
{
	return PG_ARGISNULL(n) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(n));
}

PG_FUNCTION_INFO_V1(autora_set_context_trusted);
Datum
autora_set_context_trusted(PG_FUNCTION_ARGS)
{
	Jsonb	   *context;

	RequireRoleMembership("autora_trusted", "set a context without a token");
	context = ContextEstablish(TextArgOrNull(fcinfo, 0),
							   TextArgOrNull(fcinfo, 1),
							   TextArgOrNull(fcinfo, 2),
							   PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3),
							   false,
							   PG_ARGISNULL(4) ? true : PG_GETARG_BOOL(4));
	PG_RETURN_JSONB_P(context);
}

/* A string-valued claim of a token (numbers are accepted as ids). */
static char *
TokenClaim(Jsonb *payload, const char *key)
{
	JsonbValue *v = JsonbMember(payload, key);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type != jbvString && v->type != jbvNumeric)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_BAD_TOKEN),
				 errmsg("invalid context token: claim \"%s\" is not a string", key),
				 errhint("Claims tenant, sub, role, email, ip, ua, endpoint, method and req are strings.")));
	return JsonbGetString(payload, key);
}

/*
 * autora.set_context(token): verifies the token and installs its claims
 * as the session or transaction context.
 */
PG_FUNCTION_INFO_V1(autora_set_context);
Datum
autora_set_context(PG_FUNCTION_ARGS)
{
	Jsonb	   *payload;
	Jsonb	   *context;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_BAD_TOKEN),
				 errmsg("invalid context token: the token is NULL"),
				 errhint("Pass the signed token the application received for this request.")));
	payload = TokenVerify(text_to_cstring(PG_GETARG_TEXT_PP(0)));
	for (int i = 0; i < lengthof(extra_keys); i++)
		(void) TokenClaim(payload, context_keys[extra_keys[i]]);
	context = ContextEstablish(TokenClaim(payload, "tenant"),
							   TokenClaim(payload, "sub"),
							   TokenClaim(payload, "role"),
							   payload, true,
							   PG_ARGISNULL(1) ? true : PG_GETARG_BOOL(1));
	PG_RETURN_JSONB_P(context);
}

PG_FUNCTION_INFO_V1(autora_clear_context);
Datum
autora_clear_context(PG_FUNCTION_ARGS)
{
	ContextInstall(NULL, false);
	PG_RETURN_VOID();
}

void
NoContextError(const char *detail, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_AUTORA_NO_CONTEXT),
			 errmsg("no autora session context"),
			 errdetail_internal("%s", detail),
			 errhint("%s", hint ? hint : "Call autora.set_context(token) at the start of the transaction.")));
}

const AutoraContext *
ContextRequired(void)
{
	const AutoraContext *ctx = ContextCurrent();

	if (!ctx->present)
		NoContextError("This session has not identified its tenant and actor.", NULL);
	return ctx;
}

static Datum
TextOrNull(FunctionCallInfo fcinfo, const char *value)
{
	if (value == NULL)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(value));
}

PG_FUNCTION_INFO_V1(autora_tenant);
Datum
autora_tenant(PG_FUNCTION_ARGS)
{
	return TextOrNull(fcinfo, ContextRequired()->tenant);
}

PG_FUNCTION_INFO_V1(autora_actor);
Datum
autora_actor(PG_FUNCTION_ARGS)
{
	return TextOrNull(fcinfo, ContextRequired()->actor);
}

PG_FUNCTION_INFO_V1(autora_actor_role);
Datum
autora_actor_role(PG_FUNCTION_ARGS)
{
	return TextOrNull(fcinfo, ContextRequired()->role);
}

/*
 * autora.context(): the context as set, with the scope and group that count
 * in this transaction (the stored ones are those of the moment it was set).
 */
PG_FUNCTION_INFO_V1(autora_context);
Datum
autora_context(PG_FUNCTION_ARGS)
{
	const AutoraContext *ctx = ContextRequired();
	Datum		stored = DirectFunctionCall1(jsonb_in, CStringGetDatum(context_json));
	JsonbPair	pairs[2];
	JsonbValue	object;

	/* jsonb key order: group before scope */
	pairs[0].key.type = jbvString;
	pairs[0].key.val.string.val = (char *) context_keys[CK_GROUP];
	pairs[0].key.val.string.len = strlen(context_keys[CK_GROUP]);
	if (ctx->group == NULL)
		pairs[0].value.type = jbvNull;
	else
	{
		pairs[0].value.type = jbvString;
		pairs[0].value.val.string.val = ctx->group;
		pairs[0].value.val.string.len = strlen(ctx->group);
	}
	pairs[0].order = 0;
	pairs[1].key.type = jbvString;
	pairs[1].key.val.string.val = (char *) context_keys[CK_SCOPE];
	pairs[1].key.val.string.len = strlen(context_keys[CK_SCOPE]);
	pairs[1].value.type = jbvString;
	pairs[1].value.val.string.val = ctx->scope;
	pairs[1].value.val.string.len = strlen(ctx->scope);
	pairs[1].order = 1;
	object.type = jbvObject;
	object.val.object.nPairs = 2;
	object.val.object.pairs = pairs;
	return DirectFunctionCall2(jsonb_concat, stored,
							   JsonbPGetDatum(JsonbValueToJsonb(&object)));
}
