/*-------------------------------------------------------------------------
 * ledger.c
 *	  Appends entries to autora.ledger.  The capture path fills what only
 *	  the database knows (ids, transaction, time, database roles, client,
 *	  context), hashes the entry and writes heap and indexes directly: SQL
 *	  writes to the ledger are refused by guard.c for every role, so this
 *	  is the only way in.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "replication/origin.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "autora_audit.h"
#include "context.h"
#include "encoding.h"
#include "ledger.h"
#include "restore.h"
#include "sealer.h"
#include "vault.h"
#include "writer.h"

/* where the ledger relations are; also caches "not installed here" */
typedef enum LedgerOidsState
{
	LEDGER_UNKNOWN,
	LEDGER_ABSENT,
	LEDGER_PRESENT
} LedgerOidsState;
static LedgerOids ledger_oids;
static LedgerOidsState ledger_oids_state = LEDGER_UNKNOWN;

/* tenant id -> its chain sequence */
typedef struct TenantChain
{
	char		tenant[AUTORA_TENANT_ID_MAXLEN + 1];
	Oid			seq;
} TenantChain;
static HTAB *TenantChains = NULL;

/* did this transaction append entries? (wakes the sealer at commit) */
static bool entries_appended = false;

static void
LedgerRelcacheCallback(Datum arg, Oid relid)
{
	/* an absent extension may have been created: any change rechecks */
	if (ledger_oids_state == LEDGER_ABSENT || !OidIsValid(relid) ||
		relid == ledger_oids.ledger || relid == ledger_oids.blocks)
		ledger_oids_state = LEDGER_UNKNOWN;
	if (TenantChains != NULL)
	{
		HASH_SEQ_STATUS status;
		TenantChain *chain;

		hash_seq_init(&status, TenantChains);
		while ((chain = hash_seq_search(&status)) != NULL)
			if (!OidIsValid(relid) || chain->seq == relid)
				hash_search(TenantChains, chain->tenant, HASH_REMOVE, NULL);
	}
}

static void
LedgerXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (entries_appended)
				SealerWake();
			entries_appended = false;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			entries_appended = false;
			break;
		default:
			break;
	}
}

void
LedgerInit(void)
{
	CacheRegisterRelcacheCallback(LedgerRelcacheCallback, (Datum) 0);
	RegisterXactCallback(LedgerXactCallback, NULL);
}

static Oid
RequireRelation(const char *name, Oid nsp)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("autora_audit relation \"autora.%s\" is missing", name),
				 errhint("Reinstall the extension with DROP EXTENSION / CREATE EXTENSION autora_audit.")));
	return relid;
}

/*
 * The schema of the installed extension, from pg_extension (an index
 * lookup), or InvalidOid.  A schema's name proves nothing: in a database
 * without the extension its owner can create a schema named autora holding
 * tables and views of their own, which the sealer, running as superuser,
 * must never take for the ledger.  Only a superuser can install autora_audit.
 */
static Oid
ExtensionSchema(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("autora_audit"));
	rel = table_open(ExtensionRelationId, AccessShareLock);
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

const LedgerOids *
LedgerGetOids(bool missing_ok)
{
	Oid			nsp;

	if (ledger_oids_state == LEDGER_UNKNOWN && IsTransactionState())
	{
		/* index and syscache lookups only: this runs for every statement's guard */
		nsp = ExtensionSchema();
		/* CREATE EXTENSION creates keys last: until then it is installing */
		if (OidIsValid(nsp) && OidIsValid(get_relname_relid("ledger", nsp)) &&
			!(creating_extension && !OidIsValid(get_relname_relid("keys", nsp))))
		{
			ledger_oids.namespace = nsp;
			ledger_oids.ledger = RequireRelation("ledger", nsp);
			ledger_oids.blocks = RequireRelation("ledger_blocks", nsp);
			ledger_oids.id_seq = RequireRelation("ledger_id_seq", nsp);
			ledger_oids.platform_seq = RequireRelation("chain_seq_platform", nsp);
			ledger_oids.vault = RequireRelation("pii_vault", nsp);
			ledger_oids.vault_key = RequireRelation("vault_key", nsp);
			ledger_oids.tenants = RequireRelation("tenants", nsp);
			ledger_oids.actor_roles = RequireRelation("actor_roles", nsp);
			ledger_oids.keys = RequireRelation("keys", nsp);
			ledger_oids.registry = RequireRelation("protected", nsp);
			ledger_oids.registry_schemas = RequireRelation("protected_schemas", nsp);
			ledger_oids.xid_base = RequireRelation("xid_base", nsp);
			ledger_oids.restore_state = RequireRelation("restore_state", nsp);
			ledger_oids_state = LEDGER_PRESENT;
		}
		else
			ledger_oids_state = LEDGER_ABSENT;
	}
	if (ledger_oids_state == LEDGER_PRESENT)
		return &ledger_oids;
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension autora_audit is not installed in this database"),
				 errhint("Run CREATE EXTENSION autora_audit.")));
	return NULL;
}

bool
CreatingAutora(void)
{
	return creating_extension &&
		CurrentExtensionObject == get_extension_oid("autora_audit", true);
}

bool
IsLedgerRelation(Oid relid)
{
	const LedgerOids *oids;
	Oid			heap;

	if (!OidIsValid(relid) || (oids = LedgerGetOids(true)) == NULL)
		return false;
	if (get_rel_relkind(relid) == RELKIND_INDEX)
		heap = IndexGetRelation(relid, true);
	else
		heap = relid;
	return heap == oids->ledger || heap == oids->blocks ||
		heap == oids->vault || heap == oids->vault_key;
}

/* A tenant's chain sequence, named as autora._chain_seq_name() names it; or InvalidOid. */
static Oid
ChainSequenceByName(const char *tenant, const LedgerOids *oids)
{
	uint8		digest[LEDGER_HASH_LEN];
	char		name[NAMEDATALEN];

	Sha256Digest(tenant, strlen(tenant), digest);
	strcpy(name, "chain_seq_");
	for (int i = 0; i < 16; i++)
		sprintf(name + 10 + 2 * i, "%02x", digest[i]);
	return get_relname_relid(name, oids->namespace);
}

/*
 * How far a chain's sequence has numbered entries (0 when never used, or
 * the chain has none).  Read as the sequence's owner: verify's callers
 * (auditors) have no right to the sequences themselves.
 */
int64
ChainNumbered(const char *tenant)
{
	const LedgerOids *oids = LedgerGetOids(false);
	Oid			seq = tenant == NULL ? oids->platform_seq : ChainSequenceByName(tenant, oids);
	HeapTuple	tup;
	Oid			owner;
	Oid			save_user;
	int			save_sec;
	volatile Datum last = (Datum) 0;
	LOCAL_FCINFO(fcinfo, 1);

	if (!OidIsValid(seq) || get_rel_relkind(seq) != RELKIND_SEQUENCE)
		return 0;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(seq));
	if (!HeapTupleIsValid(tup))
		return 0;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seq);
	fcinfo->args[0].isnull = false;
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		last = pg_sequence_last_value(fcinfo);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_user, save_sec);
	}
	PG_END_TRY();
	return fcinfo->isnull ? 0 : DatumGetInt64(last);
}

/* The sequence numbering one tenant's chain; ZA004 for an unknown tenant. */
static Oid
TenantChainSequence(const char *tenant, const LedgerOids *oids)
{
	TenantChain *chain;
	bool		found;
	Oid			seq;

	if (tenant == NULL)
		return oids->platform_seq;
	if (strlen(tenant) > AUTORA_TENANT_ID_MAXLEN)
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_UNKNOWN),
				 errmsg("tenant id is too long"),
				 errhint("Tenant ids are at most %d bytes.", AUTORA_TENANT_ID_MAXLEN)));

	if (TenantChains == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(chain->tenant);
		ctl.entrysize = sizeof(TenantChain);
		ctl.hcxt = TopMemoryContext;
		TenantChains = hash_create("autora tenant chains", 64, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	chain = hash_search(TenantChains, tenant, HASH_FIND, &found);
	if (chain != NULL)
		return chain->seq;

	seq = ChainSequenceByName(tenant, oids);
	if (!OidIsValid(seq))
		ereport(ERROR,
				(errcode(ERRCODE_AUTORA_UNKNOWN),
				 errmsg("unknown tenant \"%s\"", tenant),
				 errdetail("Rows of protected tables must belong to a registered tenant."),
				 errhint("Register the store with autora.add_tenant() first.")));
	chain = hash_search(TenantChains, tenant, HASH_ENTER, &found);
	chain->seq = seq;
	return seq;
}

static Datum
TextDatumOrNull(const char *s, bool *isnull)
{
	*isnull = (s == NULL);
	return s == NULL ? (Datum) 0 : CStringGetTextDatum(s);
}

/* Name of a role, cached: session_user is looked up on every entry. */
static const char *
RoleName(Oid roleid, Oid *cached_id, char *cached_name)
{
	if (*cached_id != roleid)
	{
		strlcpy(cached_name, GetUserNameFromId(roleid, false), NAMEDATALEN);
		*cached_id = roleid;
	}
	return cached_name;
}

/* The client's address as inet_client_addr() gives it, or NULL; it never changes. */
static const char *
ClientAddress(void)
{
	static bool done = false;
	static char *address = NULL;

	if (!done)
	{
		LOCAL_FCINFO(fcinfo, 0);
		Datum		addr;

		InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
		addr = inet_client_addr(fcinfo);
		if (!fcinfo->isnull)
			address = MemoryContextStrdup(TopMemoryContext,
										  DatumGetCString(DirectFunctionCall1(inet_out, addr)));
		done = true;
	}
	return address;
}

/*
 * The client address of an entry as an inet value, and the text its hash
 * covers.  A session's entries repeat one address, so the last one is kept
 * rather than parsed and printed again for every entry.
 */
static Datum
ClientInet(const char *client, const char **text)
{
	static char *source = NULL;
	static Datum value;
	static char *printed = NULL;

	if (source == NULL || strcmp(source, client) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		Datum		new_value = DirectFunctionCall1(inet_in, CStringGetDatum(client));
		char	   *new_printed = DatumGetCString(DirectFunctionCall1(inet_out, new_value));
		char	   *new_source = pstrdup(client);

		MemoryContextSwitchTo(old);
		if (source != NULL)
		{
			pfree(source);
			pfree(DatumGetPointer(value));
			pfree(printed);
		}
		source = new_source;
		value = new_value;
		printed = new_printed;
	}
	*text = printed;
	return value;
}

/* Actor of entries written by a logical replication apply worker. */
static const char *
ReplicationActor(void)
{
	char	   *origin;

	if (replorigin_session_origin == InvalidRepOriginId ||
		!replorigin_by_oid(replorigin_session_origin, true, &origin))
		return NULL;
	return psprintf("replication:%s", origin);
}

int64
LedgerAppend(const LedgerRecord *rec)
{
	static Oid	session_role = InvalidOid;
	static char session_role_name[NAMEDATALEN];
	static Oid	current_role = InvalidOid;
	static char current_role_name[NAMEDATALEN];
	const LedgerOids *oids = LedgerGetOids(false);
	const AutoraContext *ctx = ContextCurrent();
	Datum		values[LEDGER_NCOLUMNS];
	bool		nulls[LEDGER_NCOLUMNS];
	const char *texts[LEDGER_NCOLUMNS] = {0};
	uint8		hash[LEDGER_HASH_LEN];
	bytea	   *hash_datum;
	const char *client;
	const char *actor;
	int64		id;

	memset(nulls, true, sizeof(nulls));

	id = nextval_internal(oids->id_seq, false);
	values[LC_ID] = Int64GetDatum(id);
	values[LC_FORMAT] = Int16GetDatum(LEDGER_FORMAT_VERSION);
	values[LC_TENANT_ID] = TextDatumOrNull(rec->tenant_id, &nulls[LC_TENANT_ID]);
	values[LC_SEQ] = Int64GetDatum(nextval_internal(TenantChainSequence(rec->tenant_id, oids), false));
	values[LC_XID] = Int64GetDatum((int64) (U64FromFullTransactionId(GetTopFullTransactionId()) +
											RestoreXidBase()));
	values[LC_TS] = TimestampTzGetDatum(GetCurrentTimestamp());
	values[LC_STMT_TS] = TimestampTzGetDatum(GetCurrentStatementStartTimestamp());
	nulls[LC_ID] = nulls[LC_FORMAT] = nulls[LC_SEQ] = nulls[LC_XID] = false;
	nulls[LC_TS] = nulls[LC_STMT_TS] = false;

	values[LC_TABLE_SCHEMA] = TextDatumOrNull(rec->table_schema, &nulls[LC_TABLE_SCHEMA]);
	values[LC_TABLE_NAME] = TextDatumOrNull(rec->table_name, &nulls[LC_TABLE_NAME]);
	values[LC_OP] = TextDatumOrNull(rec->op, &nulls[LC_OP]);
	if (rec->pk)
		values[LC_PK] = JsonbPGetDatum(rec->pk), nulls[LC_PK] = false;
	if (rec->before)
		values[LC_BEFORE] = JsonbPGetDatum(rec->before), nulls[LC_BEFORE] = false;
	if (rec->after)
		values[LC_AFTER] = JsonbPGetDatum(rec->after), nulls[LC_AFTER] = false;
	if (rec->changed)
		values[LC_CHANGED] = PointerGetDatum(rec->changed), nulls[LC_CHANGED] = false;

	actor = ctx->present ? ctx->actor : ReplicationActor();
	values[LC_ACTOR_ID] = TextDatumOrNull(actor, &nulls[LC_ACTOR_ID]);
	values[LC_ACTOR_ROLE] = TextDatumOrNull(ctx->role, &nulls[LC_ACTOR_ROLE]);
	values[LC_DB_SESSION_USER] =
		CStringGetTextDatum(RoleName(GetSessionUserId(), &session_role, session_role_name));
	values[LC_DB_CURRENT_USER] =
		CStringGetTextDatum(RoleName(GetUserId(), &current_role, current_role_name));
	nulls[LC_DB_SESSION_USER] = nulls[LC_DB_CURRENT_USER] = false;

	client = ctx->ip ? ctx->ip : ClientAddress();
	if (client)
	{
		values[LC_CLIENT_ADDR] = ClientInet(client, &texts[LC_CLIENT_ADDR]);
		nulls[LC_CLIENT_ADDR] = false;
	}
	values[LC_APPLICATION_NAME] =
		TextDatumOrNull(application_name && application_name[0] ? application_name : NULL,
						&nulls[LC_APPLICATION_NAME]);
	values[LC_USER_AGENT] = TextDatumOrNull(ctx->user_agent, &nulls[LC_USER_AGENT]);
	values[LC_ENDPOINT] = TextDatumOrNull(ctx->endpoint, &nulls[LC_ENDPOINT]);
	values[LC_METHOD] = TextDatumOrNull(ctx->method, &nulls[LC_METHOD]);
	values[LC_REQUEST_ID] = TextDatumOrNull(ctx->request_id, &nulls[LC_REQUEST_ID]);
	if (ctx->has_support_session)
	{
		values[LC_SUPPORT_SESSION] = Int64GetDatum(ctx->support_session);
		nulls[LC_SUPPORT_SESSION] = false;
	}
	values[LC_EVENT] = TextDatumOrNull(rec->event, &nulls[LC_EVENT]);
	values[LC_ENTITY_TYPE] = TextDatumOrNull(rec->entity_type, &nulls[LC_ENTITY_TYPE]);
	values[LC_ENTITY_ID] = TextDatumOrNull(rec->entity_id, &nulls[LC_ENTITY_ID]);
	if (rec->metadata)
		values[LC_METADATA] = JsonbPGetDatum(rec->metadata), nulls[LC_METADATA] = false;

	texts[LC_PK] = rec->pk_text;
	texts[LC_BEFORE] = rec->before_text;
	texts[LC_AFTER] = rec->after_text;
	EntryHash(values, nulls, texts, hash);
	hash_datum = palloc(VARHDRSZ + LEDGER_HASH_LEN);
	SET_VARSIZE(hash_datum, VARHDRSZ + LEDGER_HASH_LEN);
	memcpy(VARDATA(hash_datum), hash, LEDGER_HASH_LEN);
	values[LC_HASH] = PointerGetDatum(hash_datum);
	nulls[LC_HASH] = false;

	if (WriterTupleDesc(oids->ledger)->natts != LEDGER_NCOLUMNS)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("autora.ledger does not have the columns this library writes"),
				 errhint("Install the autora_audit version that matches the library.")));
	WriterInsert(oids->ledger, values, nulls);
	if (rec->vault)
		VaultStore(id, rec->tenant_id, rec->vault);

	entries_appended = true;
	return id;
}
