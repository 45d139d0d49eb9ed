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

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "replication/origin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
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
#include "objects.h"
#include "restore_state.h"
#include "sealer.h"
#include "tenants.h"
#include "vault.h"
#include "writer.h"

/* tenant id -> its chain sequence */
typedef struct TenantChain
{
	char		tenant[AUTORA_TENANT_ID_MAXLEN + 1];
	Oid			seq;
} TenantChain;
static HTAB *TenantChains = NULL;

static void
LedgerRelcacheCallback(Datum arg, Oid relid)
{
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

void
LedgerInit(void)
{
	CacheRegisterRelcacheCallback(LedgerRelcacheCallback, (Datum) 0);
}

/* A tenant's chain sequence, named as autora._chain_seq_name() names it; or InvalidOid. */
static Oid
ChainSequenceByName(const char *tenant, const AutoraOids *oids)
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
	const AutoraOids *oids = AutoraGetOids(false);
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
TenantChainSequence(const char *tenant, const AutoraOids *oids)
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
		UnknownTenantError(tenant);
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

/*
 * The client address of an entry: the one the context claims, else the
 * connection's (NULL over a Unix socket); as an inet value, and the text its
 * hash covers.  A session's entries repeat one address, so the last one is
 * kept rather than parsed and printed again for every entry.  False when
 * there is none.
 */
static bool
ClientInet(const char *claimed, Datum *value, const char **text)
{
	static bool connection_known = false;
	static bool connection_has = false;
	static Datum connection_value;
	static char *connection_text = NULL;
	static char *claim = NULL;
	static Datum claim_value;
	static char *claim_text = NULL;

	if (claimed == NULL)
	{
		if (!connection_known)
		{
			LOCAL_FCINFO(fcinfo, 0);
			Datum		addr;

			InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
			addr = inet_client_addr(fcinfo);
			if (!fcinfo->isnull)
			{
				MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

				connection_value = datumCopy(addr, false, -1);
				connection_text = DatumGetCString(DirectFunctionCall1(inet_out, addr));
				MemoryContextSwitchTo(old);
				connection_has = true;
			}
			connection_known = true;
		}
		*value = connection_value;
		*text = connection_text;
		return connection_has;
	}
	if (claim == NULL || strcmp(claim, claimed) != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
		Datum		new_value = DirectFunctionCall1(inet_in, CStringGetDatum(claimed));
		char	   *new_text = DatumGetCString(DirectFunctionCall1(inet_out, new_value));
		char	   *new_claim = pstrdup(claimed);

		MemoryContextSwitchTo(old);
		if (claim != NULL)
		{
			pfree(claim);
			pfree(DatumGetPointer(claim_value));
			pfree(claim_text);
		}
		claim = new_claim;
		claim_value = new_value;
		claim_text = new_text;
	}
	*value = claim_value;
	*text = claim_text;
	return true;
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

/*
 * Completes a record with what only the database knows (id, chain number,
 * transaction, times, roles, client, the context's actor and request),
 * hashes it and buffers the row; the writer inserts it on behalf of the
 * subtransaction that made the change.  Wakes the sealer at commit.
 */
int64
LedgerAppend(const LedgerRecord *rec)
{
	static Oid	session_role = InvalidOid;
	static char session_role_name[NAMEDATALEN];
	static Oid	current_role = InvalidOid;
	static char current_role_name[NAMEDATALEN];
	const AutoraOids *oids = AutoraGetOids(false);
	const AutoraContext *ctx = ContextCurrent();
	Datum		values[LEDGER_NCOLUMNS];
	bool		nulls[LEDGER_NCOLUMNS];
	const char *texts[LEDGER_NCOLUMNS] = {0};
	uint8		hash[LEDGER_HASH_LEN];
	bytea	   *hash_datum;
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

	nulls[LC_CLIENT_ADDR] = !ClientInet(ctx->ip, &values[LC_CLIENT_ADDR], &texts[LC_CLIENT_ADDR]);
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
		VaultStore(id, rec->tenant_id, rec->vault_salt, rec->vault);

	SealerWakeAtCommit();
	return id;
}
