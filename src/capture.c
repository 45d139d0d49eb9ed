/*-------------------------------------------------------------------------
 * capture.c
 *	  Trigger functions attached by autora.protect(), and log_event():
 *	  turning a row change into a ledger record.
 *
 *	  stamp_tenant      BEFORE INSERT, row:  fill / check the tenant
 *	  capture_row       AFTER INSERT OR UPDATE OR DELETE, row: one entry (and,
 *	                    for UPDATE, the tenant checks: a BEFORE UPDATE row
 *	                    trigger makes PostgreSQL 15 leak memory per row)
 *	  capture_truncate  BEFORE TRUNCATE, statement: refuse, or one entry
 *	                    per tenant with its row count
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/heapam.h"
#include "access/tableam.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "autora_audit.h"
#include "context.h"
#include "ledger.h"
#include "encoding.h"
#include "jsonb_push.h"
#include "relinfo.h"
#include "tenants.h"
#include "vault.h"
#include "writer.h"

/* --- row to jsonb --------------------------------------------------------- */

/*
 * Does json text hold the escape \u0000?  jsonb has no such character, so
 * to_jsonb() would fail on it, and with it every write of the row.
 */
static bool
HasNulEscape(const char *text)
{
	for (const char *p = text; *p; p++)
	{
		if (*p != '\\')
			continue;
		if (p[1] == 'u' && strncmp(p + 2, "0000", 4) == 0)
			return true;
		if (p[1] != '\0')
			p++;				/* the escaped character */
	}
	return false;
}

/*
 * A column value as to_jsonb() would render it (timestamps in UTC).  A value
 * holding json with \u0000, which jsonb cannot represent, is recorded as
 * the string of its text form instead.
 */
static void
PushColumnValue(JsonbParseState **state, CapturedColumn *col, Datum value, bool isnull)
{
	JsonbValue	v;
	char	   *text;

	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(state, WJB_VALUE, &v);
		return;
	}
	if (col->holds_json)
	{
		text = OutputFunctionCall(&col->output, value);
		if (col->kind == COLJSON_JSON ? HasNulEscape(text) : strstr(text, "u0000") != NULL)
		{
			PushString(state, WJB_VALUE, text);
			return;
		}
		if (col->kind == COLJSON_JSON)
		{
			PushJsonb(state, DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text))));
			return;
		}
	}
	switch (col->kind)
	{
		case COLJSON_BOOL:
			v.type = jbvBool;
			v.val.boolean = DatumGetBool(value);
			pushJsonbValue(state, WJB_VALUE, &v);
			return;
		case COLJSON_INTEGER:
			PushNumeric(state, int64_to_numeric(col->typid == INT2OID ? DatumGetInt16(value) :
												col->typid == INT4OID ? DatumGetInt32(value) :
												DatumGetInt64(value)));
			return;
		case COLJSON_NUMERIC:
			{
				Numeric		n = DatumGetNumeric(value);

				if (!numeric_is_nan(n) && !numeric_is_inf(n))
				{
					PushNumeric(state, n);
					return;
				}
				break;
			}
		case COLJSON_FLOAT:
			{
				double		d = col->typid == FLOAT4OID ? DatumGetFloat4(value) : DatumGetFloat8(value);

				if (!isnan(d) && !isinf(d))
				{
					text = OutputFunctionCall(&col->output, value);
					PushNumeric(state, DatumGetNumeric(DirectFunctionCall3(numeric_in,
																		   CStringGetDatum(text),
																		   ObjectIdGetDatum(InvalidOid),
																		   Int32GetDatum(-1))));
					return;
				}
				break;
			}
		case COLJSON_DATETIME:
			{
				int			utc = 0;

				/* in UTC; a palloc'd buffer, as the jsonb is built from pointers later */
				PushString(state, WJB_VALUE, JsonEncodeDateTime(NULL, value, col->typid, &utc));
				return;
			}
		case COLJSON_JSON:
			text = OutputFunctionCall(&col->output, value);
			PushJsonb(state, DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text))));
			return;
		case COLJSON_JSONB:
			PushJsonb(state, DatumGetJsonbP(value));
			return;
		case COLJSON_GENERIC:
			PushJsonb(state, DatumGetJsonbP(FunctionCall1(&col->to_jsonb, value)));
			return;
		case COLJSON_STRING:
			break;
	}
	PushString(state, WJB_VALUE, OutputFunctionCall(&col->output, value));
}

/*
 * jsonb object of the given columns (indexes into info->columns, in jsonb
 * key order) of a row.  PII columns appear as their commitment under the
 * entry's salt, and their clear text is pushed to clear, as members of an
 * object under construction.
 */
static Jsonb *
RowToJsonb(RelInfo *info, const int *cols, int ncols, Datum *values, bool *nulls,
		   const PiiSalt *salt, JsonbParseState **clear, char **text)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < ncols; i++)
	{
		int			ci = cols[i];
		CapturedColumn *col = &info->columns[ci];
		int			att = col->attnum - 1;

		PushString(&state, WJB_KEY, col->name);
		if (col->pii && !nulls[att])
		{
			char	   *clear_text = OutputFunctionCall(&col->output, values[att]);

			PushString(&state, WJB_VALUE, PiiCommit(salt, clear_text));
			PushString(clear, WJB_KEY, col->name);
			PushString(clear, WJB_VALUE, clear_text);
		}
		else
			PushColumnValue(&state, col, values[att], nulls[att]);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	/* the text to hash, from the tree, before it is packed into a Jsonb */
	*text = CanonicalJsonText(res);
	return JsonbValueToJsonb(res);
}

/* Does any of the given columns of a row hold a PII value (not NULL)? */
static bool
AnyPii(RelInfo *info, const int *cols, int ncols, bool *nulls)
{
	if (nulls == NULL)
		return false;
	for (int i = 0; i < ncols; i++)
		if (info->columns[cols[i]].pii && !nulls[info->columns[cols[i]].attnum - 1])
			return true;
	return false;
}

/*
 * Row image of the given columns (pk, before or after); the clear values of
 * its PII columns go under key in the vault object, which salt commits to.
 */
static Jsonb *
RowImage(RelInfo *info, const int *cols, int ncols, Datum *values, bool *nulls,
		 const PiiSalt *salt, JsonbParseState **vault, const char *key, char **text)
{
	bool		pii = AnyPii(info, cols, ncols, nulls);
	Jsonb	   *image;

	if (pii)
	{
		PushString(vault, WJB_KEY, key);
		pushJsonbValue(vault, WJB_BEGIN_OBJECT, NULL);
	}
	image = RowToJsonb(info, cols, ncols, values, nulls, salt, vault, text);
	if (pii)
		pushJsonbValue(vault, WJB_END_OBJECT, NULL);
	return image;
}

/* The row's tenant as text; NULL for a platform table's rows (the platform chain). */
static char *
TenantOfRow(RelInfo *info, Datum *values, bool *nulls)
{
	int			att = info->tenant_attnum - 1;

	if (info->tenant_attnum == InvalidAttrNumber || nulls[att])
		return NULL;
	return OutputFunctionCall(&info->tenant_output, values[att]);
}

/*
 * The captured columns whose stored value differs between two row versions:
 * their names in table column order (the entry's changed), NULL when none;
 * and in *cols, their indexes in jsonb key order (the images'), *ncols many.
 */
static ArrayType *
ChangedColumns(RelInfo *info, Datum *oldv, bool *oldn, Datum *newv, bool *newn,
			   int *cols, int *ncols)
{
	bool	   *changed = palloc(sizeof(bool) * Max(info->ncolumns, 1));
	Datum	   *names = palloc(sizeof(Datum) * Max(info->ncolumns, 1));
	int			n = 0;

	for (int i = 0; i < info->ncolumns; i++)
	{
		CapturedColumn *col = &info->columns[i];
		int			att = col->attnum - 1;

		if (oldn[att] || newn[att])
			changed[i] = !(oldn[att] && newn[att]);
		else
			changed[i] = !datum_image_eq(oldv[att], newv[att], col->typbyval, col->typlen);
		if (changed[i])
			names[n++] = CStringGetTextDatum(col->name);
	}
	*ncols = 0;
	for (int i = 0; i < info->ncolumns; i++)
		if (changed[info->json_order[i]])
			cols[(*ncols)++] = info->json_order[i];
	if (n == 0)
		return NULL;
	return construct_array(names, n, TEXTOID, -1, false, TYPALIGN_INT);
}

static void
RequireTrigger(FunctionCallInfo fcinfo, const char *funcname)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("%s: not called by trigger manager", funcname),
				 errhint("Attach it with autora.protect() rather than calling it directly.")));
}

/*
 * A row written under a context must belong to the context's store, also
 * for roles that bypass row level security; a context without a store (a
 * platform actor) writes no store's rows.
 */
static void
RequireContextTenant(RelInfo *info, const char *row_tenant)
{
	const AutoraContext *ctx = ContextCurrent();

	if (row_tenant != NULL && ctx->present &&
		(ctx->tenant == NULL || strcmp(row_tenant, ctx->tenant) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("row of \"%s\" does not belong to the context tenant", info->relname),
				 errdetail("Rows may only be written for the tenant of the session context."),
				 errhint("Leave the tenant column empty to have it filled from the context.")));
}

/*
 * A session subject to row level security wrote the row under a context
 * (the permission check saw to that); its entry must carry that actor, also
 * when a function of the statement ended the context before the AFTER ROW
 * trigger fired (autora.clear_context() in RETURNING).  Roles that bypass
 * row level security may write without a context: their entries have no
 * actor, as documented.
 */
static void
RequireActor(RelInfo *info)
{
	if (ContextCurrent()->present || has_bypassrls_privilege(GetUserId()))
		return;
	NoContextError(psprintf("The context ended before the change of a row of \"%s\" was recorded, so the entry would name no actor.",
							info->relname),
				   "Keep the context until the statement ends; end it with autora.clear_context() afterwards.");
}

/* An UPDATE may not move a row to another store. */
static void
RequireSameTenant(RelInfo *info, const char *old_tenant, const char *new_tenant)
{
	if ((old_tenant == NULL) != (new_tenant == NULL) ||
		(old_tenant != NULL && strcmp(old_tenant, new_tenant) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("cannot move a row of \"%s\" to another tenant", info->relname),
				 errdetail("The tenant column of a protected table cannot be changed."),
				 errhint("Delete the row in one tenant's context and insert it in the other's.")));
}

/* --- capture_row ---------------------------------------------------------- */

/*
 * AFTER INSERT OR UPDATE OR DELETE, per row: checks the row's tenant
 * against the context (for every operation, also for roles that bypass row
 * level security) and records one entry with format 2 images; an UPDATE that
 * changed no captured column records none while skip_noop_updates is on.
 */
PG_FUNCTION_INFO_V1(autora_capture_row);
Datum
autora_capture_row(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	TriggerEvent event;
	TupleDesc	desc;
	RelInfo    *info;
	LedgerRecord rec = {0};
	HeapTuple	oldtup = NULL;
	HeapTuple	newtup = NULL;
	Datum	   *oldv = NULL,
			   *newv = NULL;
	bool	   *oldn = NULL,
			   *newn = NULL;
	JsonbParseState *vault = NULL;
	const int  *cols;			/* the columns of before/after, in jsonb key order */
	int			ncols;

	RequireTrigger(fcinfo, "capture_row");
	trigdata = (TriggerData *) fcinfo->context;
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_AFTER(event) || !TRIGGER_FIRED_FOR_ROW(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("capture_row: must be fired AFTER ... FOR EACH ROW")));

	desc = RelationGetDescr(trigdata->tg_relation);
	info = RelInfoGet(trigdata->tg_relation);

	if (TRIGGER_FIRED_BY_INSERT(event))
	{
		newtup = trigdata->tg_trigtuple;
		rec.op = "INSERT";
	}
	else if (TRIGGER_FIRED_BY_UPDATE(event))
	{
		oldtup = trigdata->tg_trigtuple;
		newtup = trigdata->tg_newtuple;
		rec.op = "UPDATE";
	}
	else if (TRIGGER_FIRED_BY_DELETE(event))
	{
		oldtup = trigdata->tg_trigtuple;
		rec.op = "DELETE";
	}
	else
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("capture_row: must be fired for INSERT, UPDATE or DELETE")));

	if (oldtup)
	{
		oldv = palloc(sizeof(Datum) * desc->natts);
		oldn = palloc(sizeof(bool) * desc->natts);
		heap_deform_tuple(oldtup, desc, oldv, oldn);
	}
	if (newtup)
	{
		newv = palloc(sizeof(Datum) * desc->natts);
		newn = palloc(sizeof(bool) * desc->natts);
		heap_deform_tuple(newtup, desc, newv, newn);
	}

	rec.tenant_id = newtup ? TenantOfRow(info, newv, newn) : TenantOfRow(info, oldv, oldn);
	RequireContextTenant(info, rec.tenant_id);
	RequireActor(info);
	/* INSERT and DELETE: the whole row; UPDATE: the columns it changed */
	cols = info->json_order;
	ncols = info->ncolumns;
	if (oldtup && newtup)
	{
		int		   *changed = palloc(sizeof(int) * Max(info->ncolumns, 1));

		RequireSameTenant(info, TenantOfRow(info, oldv, oldn), rec.tenant_id);
		rec.changed = ChangedColumns(info, oldv, oldn, newv, newn, changed, &ncols);
		if (rec.changed == NULL && autora_skip_noop_updates)
			return PointerGetDatum(NULL);
		if (rec.changed == NULL)
			rec.changed = construct_empty_array(TEXTOID);
		cols = changed;
	}

	rec.table_schema = info->root_schema;
	rec.table_name = info->root_name;
	rec.metadata = info->row_metadata;
	/*
	 * An entry whose images hold PII draws a salt; their clear values go to
	 * the vault as {"before": {...}, "after": {...}} ("pk" too, should a key
	 * column be PII: protect() refuses that, a later ALTER might not).
	 */
	if (AnyPii(info, cols, ncols, oldn) || AnyPii(info, cols, ncols, newn) ||
		AnyPii(info, info->pk, info->npk, newtup ? newn : oldn))
	{
		rec.vault_salt = PiiSaltDraw();
		pushJsonbValue(&vault, WJB_BEGIN_OBJECT, NULL);
	}
	if (info->npk > 0)
		rec.pk = newtup ? RowImage(info, info->pk, info->npk, newv, newn, rec.vault_salt, &vault,
								   "pk", &rec.pk_text)
			: RowImage(info, info->pk, info->npk, oldv, oldn, rec.vault_salt, &vault,
					   "pk", &rec.pk_text);
	if (oldtup)
		rec.before = RowImage(info, cols, ncols, oldv, oldn, rec.vault_salt, &vault,
							  "before", &rec.before_text);
	if (newtup)
		rec.after = RowImage(info, cols, ncols, newv, newn, rec.vault_salt, &vault,
							 "after", &rec.after_text);
	if (vault)
		rec.vault = JsonbValueToJsonb(pushJsonbValue(&vault, WJB_END_OBJECT, NULL));

	(void) LedgerAppend(&rec);
	return PointerGetDatum(NULL);
}

/* --- stamp_tenant --------------------------------------------------------- */

/*
 * BEFORE INSERT, per row: fills a NULL tenant column from the context, in
 * the column's own type, or refuses a row of another tenant.
 */
PG_FUNCTION_INFO_V1(autora_stamp_tenant);
Datum
autora_stamp_tenant(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	TriggerEvent event;
	Relation	rel;
	RelInfo    *info;
	const AutoraContext *ctx = ContextCurrent();
	HeapTuple	tuple;
	bool		isnull;
	Datum		value;
	int			attnum;

	RequireTrigger(fcinfo, "stamp_tenant");
	trigdata = (TriggerData *) fcinfo->context;
	event = trigdata->tg_event;
	if (!TRIGGER_FIRED_BEFORE(event) || !TRIGGER_FIRED_FOR_ROW(event) ||
		!TRIGGER_FIRED_BY_INSERT(event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("stamp_tenant: must be fired BEFORE INSERT ... FOR EACH ROW")));

	rel = trigdata->tg_relation;
	info = RelInfoGet(rel);
	attnum = info->tenant_attnum;
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("stamp_tenant: platform table \"%s\" has no tenant column", info->relname),
				 errhint("Protect the table again with autora.protect(), which sets its triggers.")));
	tuple = trigdata->tg_trigtuple;
	value = heap_getattr(tuple, attnum, RelationGetDescr(rel), &isnull);

	if (isnull)
	{
		bool		replnull = false;
		int			cols[1];

		if (!ctx->present)
			NoContextError(psprintf("The new row of \"%s\" gets its tenant from the session context.", info->relname),
						   NULL);
		if (ctx->tenant == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_AUTORA_NO_CONTEXT),
					 errmsg("no tenant to stamp on the new row of \"%s\"", info->relname),
					 errdetail("The session context has platform scope and no tenant."),
					 errhint("Give the tenant column a value, or set a context for the store.")));
		/* '09101' would become the bigint 9101, which is tenant '9101' */
		if (!TypedTenant(ctx->tenant, getBaseType(info->tenant_typid), &value))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("context tenant \"%s\" is not a value of column \"%s\" of \"%s\"",
							ctx->tenant, get_attname(RelationGetRelid(rel), attnum, false), info->relname),
					 errdetail("Tenant ids must be written in the column type's own text form, e.g. 101 for bigint."),
					 errhint("Use a tenant whose id fits the column, or register ids in that form.")));
		/* the column's own input: a domain's checks, a varchar's length */
		value = InputFunctionCall(&info->tenant_input, ctx->tenant, info->tenant_ioparam,
								  info->tenant_typmod);
		cols[0] = attnum;
		tuple = heap_modify_tuple_by_cols(tuple, RelationGetDescr(rel), 1, cols, &value, &replnull);
		return PointerGetDatum(tuple);
	}

	if (!isnull)
		RequireContextTenant(info, OutputFunctionCall(&info->tenant_output, value));
	return PointerGetDatum(tuple);
}

/* --- capture_truncate ----------------------------------------------------- */

typedef struct TenantCount
{
	char		tenant[AUTORA_TENANT_ID_MAXLEN + 1];
	int64		rows;
} TenantCount;

/*
 * Rows per tenant, read straight from the heap: RLS must not hide any.  A
 * platform table (no tenant column) counts every row under "".
 */
static void
CountRowsPerTenant(Oid relid, AttrNumber tenant_attnum, FmgrInfo *out, HTAB *counts)
{
	List	   *rels = find_all_inheritors(relid, AccessShareLock, NULL);
	ListCell   *lc;

	foreach(lc, rels)
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);
		TableScanDesc scan;
		TupleTableSlot *slot;
		AttrNumber	attnum;

		if (!RELKIND_HAS_STORAGE(rel->rd_rel->relkind))
		{
			table_close(rel, AccessShareLock);
			continue;
		}
		/* a partition's tenant column may sit at another position */
		attnum = tenant_attnum == InvalidAttrNumber ? InvalidAttrNumber :
			get_attnum(RelationGetRelid(rel), get_attname(relid, tenant_attnum, false));
		slot = table_slot_create(rel, NULL);
		scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			bool		isnull = true;
			Datum		v = attnum == InvalidAttrNumber ? (Datum) 0 : slot_getattr(slot, attnum, &isnull);
			char	   *tenant = isnull ? "" : OutputFunctionCall(out, v);
			TenantCount *tc;
			bool		found;

			tc = hash_search(counts, tenant, HASH_ENTER, &found);
			if (!found)
				tc->rows = 0;
			tc->rows++;
		}
		table_endscan(scan);
		ExecDropSingleTupleTableSlot(slot);
		table_close(rel, AccessShareLock);
	}
}

static int
CompareTenantCounts(const void *a, const void *b)
{
	return strcmp(((const TenantCount *) a)->tenant, ((const TenantCount *) b)->tenant);
}

/*
 * BEFORE TRUNCATE, per statement: refused unless autora.allow_truncate;
 * then one entry per tenant (and partition) with its row count.
 */
PG_FUNCTION_INFO_V1(autora_capture_truncate);
Datum
autora_capture_truncate(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata;
	RelInfo    *info;
	HTAB	   *counts;
	HASHCTL		ctl;
	HASH_SEQ_STATUS status;
	TenantCount *tc;
	TenantCount *sorted;
	long		n = 0;

	RequireTrigger(fcinfo, "capture_truncate");
	trigdata = (TriggerData *) fcinfo->context;
	if (!TRIGGER_FIRED_BEFORE(trigdata->tg_event) || !TRIGGER_FIRED_BY_TRUNCATE(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("capture_truncate: must be fired BEFORE TRUNCATE")));

	info = RelInfoGet(trigdata->tg_relation);
	if (!autora_allow_truncate)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("TRUNCATE of protected table \"%s\" is not allowed", info->relname),
				 errdetail("TRUNCATE ignores row level security and would remove every tenant's rows."),
				 errhint("DELETE the rows in each tenant's context, or have a superuser set autora.allow_truncate = on.")));

	/* each partition has its own TRUNCATE trigger, which records its rows */
	if (trigdata->tg_relation->rd_rel->relkind == RELKIND_PARTITIONED_TABLE)
		return PointerGetDatum(NULL);

	ctl.keysize = sizeof(tc->tenant);
	ctl.entrysize = sizeof(TenantCount);
	ctl.hcxt = CurrentMemoryContext;
	counts = hash_create("autora truncate counts", 16, &ctl,
						 HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	CountRowsPerTenant(RelationGetRelid(trigdata->tg_relation), info->tenant_attnum,
					   &info->tenant_output, counts);

	/* one entry per tenant, in tenant order so the outcome is deterministic */
	sorted = palloc(sizeof(TenantCount) * Max(hash_get_num_entries(counts), 1));
	hash_seq_init(&status, counts);
	while ((tc = hash_seq_search(&status)) != NULL)
		sorted[n++] = *tc;
	qsort(sorted, n, sizeof(TenantCount), CompareTenantCounts);
	for (long i = 0; i < n; i++)
	{
		LedgerRecord rec = {0};
		JsonbParseState *state = NULL;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		PushString(&state, WJB_KEY, "rows");
		PushNumeric(&state, int64_to_numeric(sorted[i].rows));
		if (info->partition)
		{
			PushString(&state, WJB_KEY, "partition");
			PushJsonb(&state, info->partition);
		}
		rec.metadata = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
		rec.tenant_id = sorted[i].tenant[0] ? sorted[i].tenant : NULL;
		rec.table_schema = info->root_schema;
		rec.table_name = info->root_name;
		rec.op = "TRUNCATE";
		(void) LedgerAppend(&rec);
	}
	WriterFlushAll();			/* TRUNCATE has no statement-level flush trigger */
	return PointerGetDatum(NULL);
}

/* --- log_event ------------------------------------------------------------ */

/*
 * autora.log_event(): a semantic event in the chain of the context's store
 * (the platform chain for a platform actor without one).
 */
PG_FUNCTION_INFO_V1(autora_log_event);
Datum
autora_log_event(PG_FUNCTION_ARGS)
{
	const AutoraContext *ctx = ContextCurrent();
	LedgerRecord rec = {0};
	int64		id;

	if (PG_ARGISNULL(0) || VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(0)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("event name must not be empty"),
				 errhint("Name the event, e.g. autora.log_event('login').")));
	if (!ctx->present)
		NoContextError("An event is recorded for the actor and tenant of the session context.", NULL);

	rec.tenant_id = ctx->tenant;
	rec.op = "EVENT";
	rec.event = text_to_cstring(PG_GETARG_TEXT_PP(0));
	rec.entity_type = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	rec.entity_id = PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2));
	rec.metadata = PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3);
	id = LedgerAppend(&rec);
	WriterFlushAll();			/* the caller may look its entry up next */
	PG_RETURN_INT64(id);
}
