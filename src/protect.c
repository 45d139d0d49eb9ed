/*-------------------------------------------------------------------------
 * protect.c
 *	  autora.protect() and autora.unprotect(): attach or remove the capture
 *	  and tenant triggers of a table, register it, and record the change in
 *	  the platform chain of the ledger.
 *
 * Both run as the extension owner (SECURITY DEFINER, EXECUTE granted to
 * autora_admin).  The guards refuse changes to autora triggers; these
 * functions lift that for the one relation they work on, for the length
 * of their own DDL.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "autora_audit.h"
#include "guard.h"
#include "ledger.h"

/* trigger names; BEFORE triggers fire in name order, so ours goes last */
#define STAMP_TRIGGER		"zz_autora_stamp_tenant"
#define CAPTURE_TRIGGER		"autora_capture"
#define TRUNCATE_TRIGGER	"autora_truncate"

/* DROP TRIGGER statements for the autora triggers the relation has now. */
static char *
DropAutoraTriggersSQL(Oid relid, const char *qualified)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	StringInfoData sql;

	initStringInfo(&sql);
	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *t = &rel->trigdesc->triggers[i];

			if (IsAutoraTriggerFunction(t->tgfoid))
				appendStringInfo(&sql, "DROP TRIGGER %s ON %s;",
								 quote_identifier(t->tgname), qualified);
		}
	relation_close(rel, AccessShareLock);
	return sql.data;
}

static void
ExecuteDDL(const char *sql)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret < 0)
		elog(ERROR, "autora: \"%s\" failed: %s", sql, SPI_result_code_string(ret));
}

static void
ExecuteOnRelation(Oid relid, const char *sql)
{
	GuardAllowRelationBegin(relid);
	PG_TRY();
	{
		ExecuteDDL(sql);
	}
	PG_FINALLY();
	{
		GuardAllowRelationEnd();
	}
	PG_END_TRY();
}

/*
 * Checks that each name of a name[] argument is a column of the table, and
 * returns the argument as a text[] literal for the trigger arguments.
 */
static char *
ColumnListArgument(Oid relid, ArrayType *arr, const char *what,
				   const char *tenant_column)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;
	StringInfoData literal;

	initStringInfo(&literal);
	appendStringInfoChar(&literal, '{');
	deconstruct_array(arr, NAMEOID, NAMEDATALEN, false, TYPALIGN_CHAR, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		const char *col;

		if (nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not contain NULL", what)));
		col = NameStr(*DatumGetName(elems[i]));
		if (get_attnum(relid, col) == InvalidAttrNumber)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_COLUMN),
					 errmsg("column \"%s\" named in %s does not exist in \"%s\"",
							col, what, get_rel_name(relid)),
					 errhint("List only columns of the table.")));
		if (strcmp(what, "exclude_columns") == 0 && strcmp(col, tenant_column) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the tenant column \"%s\" cannot be excluded from capture", col),
					 errhint("Remove it from exclude_columns.")));

		/* every element double-quoted, with " and \ escaped */
		if (i > 0)
			appendStringInfoChar(&literal, ',');
		appendStringInfoChar(&literal, '"');
		for (const char *p = col; *p; p++)
		{
			if (*p == '"' || *p == '\\')
				appendStringInfoChar(&literal, '\\');
			appendStringInfoChar(&literal, *p);
		}
		appendStringInfoChar(&literal, '"');
	}
	appendStringInfoChar(&literal, '}');
	return literal.data;
}

static void
RequireTenantColumn(Relation rel, const char *column)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), column);
	Oid			type;

	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has no tenant column \"%s\"",
						RelationGetRelationName(rel), column),
				 errhint("Name the tenant column: autora.protect('%s', 'store_id'), or set autora.tenant_column.",
						 RelationGetRelationName(rel))));
	type = getBaseType(TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid);
	if (type != TEXTOID && type != VARCHAROID && type != UUIDOID &&
		type != INT4OID && type != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("tenant column \"%s\" of \"%s\" has unsupported type %s",
						column, RelationGetRelationName(rel), format_type_be(type)),
				 errhint("Use a text, varchar, uuid, integer or bigint tenant column.")));
}

static void
RequireProtectableTable(Relation rel)
{
	char		kind = rel->rd_rel->relkind;

	if (kind != RELKIND_RELATION && kind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel)),
				 errhint("Only ordinary and partitioned tables can be protected.")));
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("temporary table \"%s\" cannot be protected", RelationGetRelationName(rel))));
	if (RelationGetNamespace(rel) == LedgerGetOids(false)->namespace ||
		IsCatalogRelation(rel))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" cannot be protected", RelationGetRelationName(rel)),
				 errdetail("Tables of the autora schema and system catalogs are not tenant tables.")));
	if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errdetail("Ledger entries identify rows by their primary key."),
				 errhint("Add one, e.g. ALTER TABLE %s ADD PRIMARY KEY (id), then protect the table.",
						 RelationGetRelationName(rel))));
}

/* A C string as a JSON string literal. */
static char *
JsonQuote(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	escape_json(&buf, s);
	return buf.data;
}

static Jsonb *
JsonbFromCString(const char *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

/* Records protect/unprotect in the platform chain. */
static void
RecordTableEvent(const char *event, const char *qualified, const char *metadata_json)
{
	LedgerRecord rec = {0};

	rec.op = "EVENT";
	rec.event = event;
	rec.entity_type = "table";
	rec.entity_id = qualified;
	rec.metadata = JsonbFromCString(metadata_json);
	(void) LedgerAppend(&rec);
}

PG_FUNCTION_INFO_V1(autora_protect);
Datum
autora_protect(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	const char *tenant_column;
	char	   *pii;
	char	   *excluded;
	char	   *qualified;
	char	   *args;
	StringInfoData sql;
	StringInfoData meta;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table to protect must not be NULL")));
	relid = PG_GETARG_OID(0);
	tenant_column = PG_ARGISNULL(1) ? autora_tenant_column : NameStr(*PG_GETARG_NAME(1));

	rel = relation_open(relid, ShareRowExclusiveLock);
	RequireProtectableTable(rel);
	RequireTenantColumn(rel, tenant_column);
	pii = ColumnListArgument(relid, PG_ARGISNULL(2) ? construct_empty_array(NAMEOID)
							 : PG_GETARG_ARRAYTYPE_P(2), "pii_columns", tenant_column);
	excluded = ColumnListArgument(relid, PG_ARGISNULL(3) ? construct_empty_array(NAMEOID)
								  : PG_GETARG_ARRAYTYPE_P(3), "exclude_columns", tenant_column);
	qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										   RelationGetRelationName(rel));
	relation_close(rel, NoLock);

	args = psprintf("%s, %s, %s", quote_literal_cstr(tenant_column),
					quote_literal_cstr(pii), quote_literal_cstr(excluded));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "autora: SPI_connect failed");

	/* re-protecting replaces the triggers, so new options take effect */
	initStringInfo(&sql);
	appendStringInfoString(&sql, DropAutoraTriggersSQL(relid, qualified));
	appendStringInfo(&sql,
					 "CREATE TRIGGER " STAMP_TRIGGER " BEFORE INSERT OR UPDATE ON %s"
					 " FOR EACH ROW EXECUTE FUNCTION autora.stamp_tenant(%s);"
					 "CREATE TRIGGER " CAPTURE_TRIGGER " AFTER INSERT OR UPDATE OR DELETE ON %s"
					 " FOR EACH ROW EXECUTE FUNCTION autora.capture_row(%s);"
					 "CREATE TRIGGER " TRUNCATE_TRIGGER " BEFORE TRUNCATE ON %s"
					 " FOR EACH STATEMENT EXECUTE FUNCTION autora.capture_truncate(%s);"
					 "ALTER TABLE %s ENABLE ALWAYS TRIGGER " STAMP_TRIGGER ","
					 " ENABLE ALWAYS TRIGGER " CAPTURE_TRIGGER ","
					 " ENABLE ALWAYS TRIGGER " TRUNCATE_TRIGGER ";",
					 qualified, args, qualified, args, qualified, args, qualified);
	ExecuteOnRelation(relid, sql.data);

	resetStringInfo(&sql);
	appendStringInfo(&sql,
					 "INSERT INTO autora.protected (relid, tenant_column, pii_columns, exclude_columns)"
					 " VALUES (%u, %s, %s, %s)"
					 " ON CONFLICT (relid) DO UPDATE SET tenant_column = EXCLUDED.tenant_column,"
					 " pii_columns = EXCLUDED.pii_columns, exclude_columns = EXCLUDED.exclude_columns",
					 relid, quote_literal_cstr(tenant_column),
					 quote_literal_cstr(pii), quote_literal_cstr(excluded));
	ExecuteDDL(sql.data);

	initStringInfo(&meta);
	appendStringInfo(&meta, "{\"tenant_column\": %s, \"pii_columns\": %s, \"exclude_columns\": %s}",
					 JsonQuote(tenant_column), JsonQuote(pii), JsonQuote(excluded));
	RecordTableEvent("protect", qualified, meta.data);

	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(autora_unprotect);
Datum
autora_unprotect(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	char	   *reason;
	char	   *qualified;
	char	   *sql;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table to unprotect must not be NULL")));
	reason = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (reason == NULL || reason[strspn(reason, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unprotect needs a reason"),
				 errdetail("Removing protection is recorded in the ledger with its reason."),
				 errhint("Call autora.unprotect(table, 'why protection is being removed').")));
	relid = PG_GETARG_OID(0);

	rel = relation_open(relid, ShareRowExclusiveLock);
	qualified = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										   RelationGetRelationName(rel));
	relation_close(rel, NoLock);
	sql = DropAutoraTriggersSQL(relid, qualified);
	if (sql[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not protected", qualified),
				 errhint("See autora.protected_tables for the protected tables.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "autora: SPI_connect failed");
	ExecuteOnRelation(relid, sql);
	ExecuteDDL(psprintf("DELETE FROM autora.protected WHERE relid = %u", relid));
	RecordTableEvent("unprotect", qualified,
					 psprintf("{\"reason\": %s}", JsonQuote(reason)));
	SPI_finish();
	PG_RETURN_VOID();
}
