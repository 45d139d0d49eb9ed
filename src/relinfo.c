/*-------------------------------------------------------------------------
 * relinfo.c
 *	  Per-relation capture metadata: captured columns and how each becomes
 *	  jsonb, primary key, tenant column.  Built once per relation from the
 *	  relcache and the registry of protected tables, dropped on invalidation,
 *	  so the capture path does no catalog lookups per row.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "jsonb_push.h"
#include "registry.h"
#include "relinfo.h"

static HTAB *RelInfoCache = NULL;
static MemoryContext RelInfoMemory = NULL;

/*
 * Relcache callback: the relation's capture metadata is rebuilt on next use.
 */
static void
RelInfoInvalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	RelInfo    *info;

	if (RelInfoCache == NULL)
		return;
	if (OidIsValid(relid))
	{
		info = hash_search(RelInfoCache, &relid, HASH_FIND, NULL);
		if (info != NULL)
			info->valid = false;
		return;
	}
	hash_seq_init(&status, RelInfoCache);
	while ((info = hash_seq_search(&status)) != NULL)
		info->valid = false;
}

void
RelInfoInit(void)
{
	CacheRegisterRelcacheCallback(RelInfoInvalidate, (Datum) 0);
}

/* How a value of this type becomes jsonb, as to_jsonb() would do it. */
static ColumnJsonKind
JsonKindOf(Oid typid)
{
	Oid			base = getBaseType(typid);

	switch (base)
	{
		case BOOLOID:
			return COLJSON_BOOL;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			return COLJSON_INTEGER;
		case NUMERICOID:
			return COLJSON_NUMERIC;
		case FLOAT4OID:
		case FLOAT8OID:
			return COLJSON_FLOAT;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return COLJSON_DATETIME;
		case JSONOID:
			return COLJSON_JSON;
		case JSONBOID:
			return COLJSON_JSONB;
		default:
			if (OidIsValid(get_element_type(base)) || type_is_rowtype(base))
				return COLJSON_GENERIC;
			return COLJSON_STRING;
	}
}

static bool
NameInList(const char *name, List *names)
{
	ListCell   *lc;

	foreach(lc, names)
		if (strcmp(name, (char *) lfirst(lc)) == 0)
			return true;
	return false;
}

/*
 * Does a value of this type hold json (itself, or in an array or composite)?
 * A json value may contain the escape \u0000, which jsonb cannot store.
 */
static bool
TypeHoldsJson(Oid typid, int depth)
{
	Oid			base = getBaseType(typid);
	Oid			elem;
	bool		result = false;

	if (base == JSONOID)
		return true;
	if (depth > 8)
		return true;			/* deeply nested: assume so, the fallback is lossless */
	if (OidIsValid(elem = get_element_type(base)))
		return TypeHoldsJson(elem, depth + 1);
	if (type_is_rowtype(base) && base != RECORDOID)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(base, -1);

		for (int i = 0; i < desc->natts && !result; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				result = TypeHoldsJson(TupleDescAttr(desc, i)->atttypid, depth + 1);
		ReleaseTupleDesc(desc);
	}
	return result;
}

/*
 * Could to_jsonb() call code a superuser did not write for a value of this
 * type?  It converts an element or attribute of a user-defined type with
 * that type's cast to json when there is one, and the type's owner may
 * create one at any time: the table owner could then decide what the
 * ledger says, and run code in every writer's session.  So a type chain
 * holding a type a superuser does not own is captured as text.
 */
static bool
TypeHasUntrustedJsonCast(Oid typid, int depth)
{
	Oid			base = getBaseType(typid);
	Oid			elem;
	HeapTuple	tup;
	bool		result = false;

	if (depth > 8)
		return true;			/* deeply nested: assume so, the fallback is lossless */
	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	if (HeapTupleIsValid(tup))
	{
		result = !superuser_arg(((Form_pg_type) GETSTRUCT(tup))->typowner);
		ReleaseSysCache(tup);
	}
	if (result || (base != typid && TypeHasUntrustedJsonCast(base, depth + 1)))
		return true;
	if (OidIsValid(elem = get_element_type(base)))
		return TypeHasUntrustedJsonCast(elem, depth + 1);
	if (type_is_rowtype(base) && base != RECORDOID)
	{
		TupleDesc	desc = lookup_rowtype_tupdesc(base, -1);

		for (int i = 0; i < desc->natts && !result; i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				result = TypeHasUntrustedJsonCast(TupleDescAttr(desc, i)->atttypid, depth + 1);
		ReleaseTupleDesc(desc);
	}
	return result;
}

/*
 * A captured column's metadata: its type, output function and jsonb kind.
 */
static void
FillColumn(CapturedColumn *col, Form_pg_attribute att, bool pii)
{
	Oid			outfunc;
	bool		isvarlena;

	col->attnum = att->attnum;
	col->name = pstrdup(NameStr(att->attname));
	col->typid = getBaseType(att->atttypid);
	col->typlen = att->attlen;
	col->typbyval = att->attbyval;
	col->kind = JsonKindOf(att->atttypid);
	/* its text form instead: no code but the type's own output function */
	if (col->kind == COLJSON_GENERIC && TypeHasUntrustedJsonCast(att->atttypid, 0))
		col->kind = COLJSON_STRING;
	col->pii = pii;
	col->holds_json = TypeHoldsJson(att->atttypid, 0);
	getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
	fmgr_info(outfunc, &col->output);
	if (col->kind == COLJSON_GENERIC)
	{
		/* to_jsonb(anyelement) learns its argument type from fn_expr */
		fmgr_info(F_TO_JSONB, &col->to_jsonb);
		col->to_jsonb.fn_expr = (Node *)
			makeFuncExpr(F_TO_JSONB, JSONBOID,
						 list_make1(makeNullConst(att->atttypid, att->atttypmod, att->attcollation)),
						 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL);
	}
}

/*
 * jsonb stores object keys sorted by length, then bytes, and sorts whatever
 * it is given; handing it the keys already in that order turns its sort
 * into one linear pass, for every row captured.
 */
static CapturedColumn *sort_columns;

static int
CompareJsonKeys(const void *a, const void *b)
{
	const char *x = sort_columns[*(const int *) a].name;
	const char *y = sort_columns[*(const int *) b].name;
	size_t		lx = strlen(x);
	size_t		ly = strlen(y);

	if (lx != ly)
		return lx < ly ? -1 : 1;
	return memcmp(x, y, lx);
}

static void
SortInJsonOrder(CapturedColumn *columns, int *indexes, int n)
{
	sort_columns = columns;
	qsort(indexes, n, sizeof(int), CompareJsonKeys);
}

/*
 * The tenant column's type must be one protect() accepts: stamping writes a
 * value of that type into it, and anything else would be the wrong datum.
 */
static void
RequireTenantType(Relation rel, Form_pg_attribute att)
{
	Oid			base = getBaseType(att->atttypid);

	if (base != TEXTOID && base != VARCHAROID && base != UUIDOID &&
		base != INT4OID && base != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("tenant column \"%s\" of protected table \"%s\" has unsupported type %s",
						NameStr(att->attname), RelationGetRelationName(rel),
						format_type_be(att->atttypid)),
				 errhint("A tenant column is text, varchar, uuid, integer or bigint.")));
}

/*
 * A member of a registered tree records its changes under the root's name
 * (SPEC: one history per table, however it is partitioned), and itself in
 * the entry's metadata.
 */
static void
NamePartition(RelInfo *info, Relation rel)
{
	JsonbParseState *state = NULL;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	PushString(&state, WJB_KEY, "name");
	PushString(&state, WJB_VALUE, RelationGetRelationName(rel));
	PushString(&state, WJB_KEY, "schema");
	PushString(&state, WJB_VALUE, get_namespace_name(RelationGetNamespace(rel)));
	info->partition = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	PushString(&state, WJB_KEY, "partition");
	PushJsonb(&state, info->partition);
	info->row_metadata = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
}

/*
 * Builds the capture metadata of a protected relation from the registry
 * entry of its root: the trigger that fired is not trusted to say which
 * columns are the tenant, PII or excluded ones.
 */
static void
RelInfoBuild(RelInfo *info, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			root = RegistryRootOf(RelationGetRelid(rel));
	ProtectedConfig config;
	const char *tenant_column;
	List	   *pii;
	List	   *excluded;
	Oid			pkindex;
	MemoryContext old;

	if (!OidIsValid(root) || !RegistryGetConfig(root, &config))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("table \"%s\" is not protected by autora", RelationGetRelationName(rel)),
				 errdetail("autora's trigger functions act only on tables registered by autora.protect()."),
				 errhint("Protect the table with autora.protect() instead of attaching autora's triggers yourself.")));

	info->mcxt = AllocSetContextCreate(RelInfoMemory, "autora relation info",
									   ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(info->mcxt);

	/* the lists live in the caller's memory: only the columns are kept */
	tenant_column = config.tenant_column;
	pii = config.pii_columns;
	excluded = config.exclude_columns;

	info->relname = pstrdup(RelationGetRelationName(rel));
	info->root_schema = get_namespace_name(get_rel_namespace(root));
	info->root_name = get_rel_name(root);
	info->partition = info->row_metadata = NULL;
	if (root != RelationGetRelid(rel))
		NamePartition(info, rel);

	info->columns = palloc0(sizeof(CapturedColumn) * desc->natts);
	info->ncolumns = 0;
	info->tenant_attnum = InvalidAttrNumber;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (tenant_column != NULL && strcmp(NameStr(att->attname), tenant_column) == 0)
		{
			Oid			infunc;
			Oid			outfunc;
			bool		isvarlena;

			RequireTenantType(rel, att);
			info->tenant_attnum = att->attnum;
			info->tenant_typid = att->atttypid;
			info->tenant_typmod = att->atttypmod;
			getTypeOutputInfo(att->atttypid, &outfunc, &isvarlena);
			fmgr_info(outfunc, &info->tenant_output);
			getTypeInputInfo(att->atttypid, &infunc, &info->tenant_ioparam);
			fmgr_info(infunc, &info->tenant_input);
		}
		if (NameInList(NameStr(att->attname), excluded))
			continue;
		FillColumn(&info->columns[info->ncolumns++], att,
				   NameInList(NameStr(att->attname), pii));
	}
	if (tenant_column != NULL && info->tenant_attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("tenant column \"%s\" of protected table \"%s\" does not exist",
						tenant_column, RelationGetRelationName(rel)),
				 errdetail("The registry of protected tables names a column the table does not have."),
				 errhint("Protect the table again with autora.protect() naming its tenant column.")));

	/* primary key columns; a key column may itself be excluded from before/after */
	info->npk = 0;
	info->pk = NULL;
	pkindex = RelationGetPrimaryKeyIndex(rel);
	if (OidIsValid(pkindex))
	{
		Relation	idx = index_open(pkindex, AccessShareLock);
		int			nkeys = idx->rd_index->indnkeyatts;

		info->pk = palloc(sizeof(int) * nkeys);
		for (int k = 0; k < nkeys; k++)
		{
			AttrNumber	attnum = idx->rd_index->indkey.values[k];
			int			found = -1;

			for (int c = 0; c < info->ncolumns; c++)
				if (info->columns[c].attnum == attnum)
					found = c;
			if (found < 0)
			{
				/* excluded key column: keep it for the key, not for the row */
				info->columns = repalloc(info->columns,
										 sizeof(CapturedColumn) * (desc->natts + nkeys));
				found = desc->natts + k;
				FillColumn(&info->columns[found], TupleDescAttr(desc, attnum - 1), false);
			}
			info->pk[info->npk++] = found;
		}
		index_close(idx, AccessShareLock);
		SortInJsonOrder(info->columns, info->pk, info->npk);
	}

	info->json_order = palloc(sizeof(int) * Max(info->ncolumns, 1));
	for (int i = 0; i < info->ncolumns; i++)
		info->json_order[i] = i;
	SortInJsonOrder(info->columns, info->json_order, info->ncolumns);

	MemoryContextSwitchTo(old);
	info->valid = true;
}

RelInfo *
RelInfoGet(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	RelInfo    *info;
	bool		found;

	if (RelInfoCache == NULL)
	{
		HASHCTL		ctl;

		RelInfoMemory = AllocSetContextCreate(CacheMemoryContext, "autora relinfo cache",
											  ALLOCSET_DEFAULT_SIZES);
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelInfo);
		ctl.hcxt = RelInfoMemory;
		RelInfoCache = hash_create("autora relinfo cache", 64, &ctl,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	info = hash_search(RelInfoCache, &relid, HASH_ENTER, &found);
	if (found && info->valid)
		return info;
	if (found && info->mcxt != NULL)
		MemoryContextDelete(info->mcxt);
	info->mcxt = NULL;
	info->valid = false;
	PG_TRY();
	{
		RelInfoBuild(info, rel);
	}
	PG_CATCH();
	{
		if (info->mcxt != NULL)
			MemoryContextDelete(info->mcxt);
		hash_search(RelInfoCache, &relid, HASH_REMOVE, NULL);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return info;
}
