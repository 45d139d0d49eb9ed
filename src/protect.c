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
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
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
#include "protected_ddl.h"
#include "ledger.h"
#include "objects.h"
#include "registry.h"
#include "writer.h"

/* trigger names; BEFORE triggers fire in name order, so ours goes last */
#define STAMP_TRIGGER		"zz_autora_stamp_tenant"
#define CAPTURE_TRIGGER		"autora_capture"
#define TRUNCATE_TRIGGER	"autora_truncate"
#define FLUSH_TRIGGER		"autora_flush"

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

/*
 * The DDL issued here fires the event trigger that calls
 * autora_protect_partitions(); it must not act on our own work.
 */
static bool protect_in_progress = false;

static void
ExecuteDDL(const char *sql)
{
	int			ret = SPI_execute(sql, false, 0);

	if (ret < 0)
		elog(ERROR, "autora: \"%s\" failed: %s", sql, SPI_result_code_string(ret));
}

/*
 * Runs autora's DDL on a relation as the extension owner, marked as
 * autora's own so that the guards let it through.
 */
static void
ExecuteOnRelation(Oid relid, const char *sql)
{
	ProtectedDdlAllowBegin(relid);
	protect_in_progress = true;
	PG_TRY();
	{
		ExecuteDDL(sql);
	}
	PG_FINALLY();
	{
		protect_in_progress = false;
		ProtectedDdlAllowEnd();
	}
	PG_END_TRY();
}

static char *
QualifiedName(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * First column of an SPI query's rows, as strings; not read-only, so that
 * it sees the DDL this function has just run.
 */
static List *
QueryStrings(const char *sql)
{
	List	   *result = NIL;

	if (SPI_execute(sql, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "autora: \"%s\" failed", sql);
	for (uint64 i = 0; i < SPI_processed; i++)
		result = lappend(result, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	return result;
}

/*
 * Has the relation autora's trigger of that name?  By name and by function:
 * names beginning autora_ are reserved, but a table may have had one before.
 */
static bool
HasTrigger(Oid relid, const char *name)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	bool		found = false;

	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
			if (strcmp(rel->trigdesc->triggers[i].tgname, name) == 0 &&
				IsAutoraTriggerFunction(rel->trigdesc->triggers[i].tgfoid))
				found = true;
	relation_close(rel, AccessShareLock);
	return found;
}

/*
 * A member that was protected in its own right becomes part of root's
 * protection, if their options are the same; otherwise its PII columns
 * could lose their role.
 */
static void
MergeRegisteredMember(Oid member, Oid root)
{
	ProtectedConfig config;

	if (!RegistryGetConfig(member, &config))
		return;
	if (!RegistrySameConfiguration(member, root))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("\"%s\" is protected with other options than \"%s\"",
						get_rel_name(member), get_rel_name(root)),
				 errdetail("As a member of \"%s\" it would take that table's tenant, PII and excluded columns.",
						   get_rel_name(root)),
				 errhint("Protect both with the same options.")));
	RegistryMergeMember(member);
}

/* Row level security as the table has it now. */
static void
RowSecurityState(Oid relid, bool *enabled, bool *forced)
{
	Relation	rel = relation_open(relid, AccessShareLock);

	*enabled = rel->rd_rel->relrowsecurity;
	*forced = rel->rd_rel->relforcerowsecurity;
	relation_close(rel, AccessShareLock);
}

/* Row level security as the table had it before its first protect(). */
static void
RowSecurityBeforeProtect(Oid relid, bool *enabled, bool *forced)
{
	bool		isnull;

	*enabled = *forced = false;
	if (SPI_execute(psprintf("SELECT rls_before, force_before FROM autora.protected"
							 " WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) %u", relid),
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "autora: reading autora.protected failed");
	if (SPI_processed == 0)
		return;
	*enabled = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*forced = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
}

/*
 * Drops the autora policies of a relation and puts its row level security
 * back as it was before protect(): enabled / forced as before, and never
 * switched off while other policies remain.
 */
static void
RemoveRowSecurity(Oid relid, bool enabled_before, bool forced_before)
{
	char	   *qualified = QualifiedName(relid);
	StringInfoData sql;
	ListCell   *lc;
	List	   *ours = QueryStrings(psprintf("SELECT polname FROM pg_catalog.pg_policy WHERE polrelid OPERATOR(pg_catalog.=) %u"
											" AND polname LIKE 'autora\\_%%'", relid));
	List	   *theirs = QueryStrings(psprintf("SELECT polname FROM pg_catalog.pg_policy WHERE polrelid OPERATOR(pg_catalog.=) %u"
											  " AND polname NOT LIKE 'autora\\_%%'", relid));

	initStringInfo(&sql);
	foreach(lc, ours)
		appendStringInfo(&sql, "DROP POLICY %s ON %s;", quote_identifier(lfirst(lc)), qualified);
	if (!forced_before)
		appendStringInfo(&sql, "ALTER TABLE %s NO FORCE ROW LEVEL SECURITY;", qualified);
	if (!enabled_before && theirs == NIL)
		appendStringInfo(&sql, "ALTER TABLE %s DISABLE ROW LEVEL SECURITY;", qualified);
	ExecuteOnRelation(relid, sql.data);
}

/*
 * Row level security for one relation of a protected tree: reads see the
 * context's visible stores, writes only the context's own store.  The
 * autora policies are RESTRICTIVE, so they narrow whatever policies the
 * table has; the permissive autora_base is added only when the table had
 * row level security off (or autora_base already), and no permissive
 * policy of its own: a table whose row level security denied everything
 * keeps denying.
 */
static void
ApplyRowSecurity(Oid relid, const char *column)
{
	char	   *qualified = QualifiedName(relid);
	char	   *col = (char *) quote_identifier(column);
	Oid			type = getBaseType(get_atttype(relid, get_attnum(relid, column)));
	const char *cast;
	const char *kind;			/* suffix of autora._visible_* / _own_* */
	char	   *own;
	StringInfoData sql;
	List	   *permissive;
	List	   *early;
	bool		enabled;
	bool		forced;
	bool		had_base;

	switch (type)
	{
		case INT4OID:
			cast = "integer", kind = "int4";
			break;
		case INT8OID:
			cast = "bigint", kind = "int8";
			break;
		case UUIDOID:
			cast = "uuid", kind = "uuid";
			break;
		default:
			cast = "text", kind = "text";
			break;
	}
	own = psprintf("%s = (SELECT autora._own_%s())", col, kind);

	early = QueryStrings(psprintf("SELECT polname FROM pg_catalog.pg_policy WHERE polrelid"
								  " OPERATOR(pg_catalog.=) %u AND NOT polpermissive"
								  " AND polname::pg_catalog.text COLLATE \"C\" OPERATOR(pg_catalog.<=) 'autora_update'"
								  " AND polname::pg_catalog.text NOT LIKE 'autora\\_%%'", relid));
	if (early != NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("restrictive policy \"%s\" of \"%s\" would run before autora's",
						(char *) linitial(early), get_rel_name(relid)),
				 errdetail("Restrictive policies are applied in name order; one named before \"autora_update\" sees every store's rows before autora's policies filter them."),
				 errhint("Rename it so that it sorts after \"autora_update\", e.g. ALTER POLICY %s ON %s RENAME TO zz_%s.",
						 quote_identifier(linitial(early)), qualified, (char *) linitial(early))));
	RowSecurityState(relid, &enabled, &forced);
	had_base = QueryStrings(psprintf("SELECT polname FROM pg_catalog.pg_policy WHERE polrelid OPERATOR(pg_catalog.=) %u"
									 " AND polname = 'autora_base'", relid)) != NIL;
	RemoveRowSecurity(relid, true, true);
	permissive = QueryStrings(psprintf("SELECT polname FROM pg_catalog.pg_policy WHERE polrelid OPERATOR(pg_catalog.=) %u"
									   " AND polpermissive", relid));
	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;",
					 qualified);
	if (permissive == NIL && (had_base || !enabled))
		appendStringInfo(&sql, "CREATE POLICY autora_base ON %s AS PERMISSIVE FOR ALL"
						 " USING (true) WITH CHECK (true);", qualified);
	/* (SELECT f())::type[] is an initplan: the list is computed once per statement */
	appendStringInfo(&sql,
					 "CREATE POLICY autora_read ON %s AS RESTRICTIVE FOR SELECT"
					 " USING (%s = ANY ((SELECT autora._visible_%s())::%s[]));"
					 "CREATE POLICY autora_insert ON %s AS RESTRICTIVE FOR INSERT WITH CHECK (%s);"
					 "CREATE POLICY autora_update ON %s AS RESTRICTIVE FOR UPDATE USING (%s) WITH CHECK (%s);"
					 "CREATE POLICY autora_delete ON %s AS RESTRICTIVE FOR DELETE USING (%s);",
					 qualified, col, kind, cast,
					 qualified, own,
					 qualified, own, own,
					 qualified, own);
	ExecuteOnRelation(relid, sql.data);
}

/*
 * The row triggers: stamping and capture.  They take no arguments: their
 * configuration is the registry's (src/registry.c).  A partitioned table
 * gets none: PostgreSQL would clone them to each new partition as the user
 * creating it, who may not execute autora's trigger functions; ProtectPartitions
 * gives each partition its own, from the event trigger.
 */
static char *
RowTriggersSQL(const char *qualified, bool platform)
{
	/* a platform table has no tenant to stamp */
	if (platform)
		return psprintf("CREATE TRIGGER " CAPTURE_TRIGGER " AFTER INSERT OR UPDATE OR DELETE ON %s"
						" FOR EACH ROW EXECUTE FUNCTION autora.capture_row();"
						"ALTER TABLE %s ENABLE ALWAYS TRIGGER " CAPTURE_TRIGGER ";",
						qualified, qualified);
	return psprintf("CREATE TRIGGER " STAMP_TRIGGER " BEFORE INSERT ON %s"
					" FOR EACH ROW EXECUTE FUNCTION autora.stamp_tenant();"
					"CREATE TRIGGER " CAPTURE_TRIGGER " AFTER INSERT OR UPDATE OR DELETE ON %s"
					" FOR EACH ROW EXECUTE FUNCTION autora.capture_row();"
					"ALTER TABLE %s ENABLE ALWAYS TRIGGER " STAMP_TRIGGER ","
					" ENABLE ALWAYS TRIGGER " CAPTURE_TRIGGER ";",
					qualified, qualified, qualified);
}

/* The statement triggers: TRUNCATE and flush (never cloned to partitions). */
static char *
StatementTriggersSQL(const char *qualified)
{
	return psprintf("CREATE TRIGGER " TRUNCATE_TRIGGER " BEFORE TRUNCATE ON %s"
					" FOR EACH STATEMENT EXECUTE FUNCTION autora.capture_truncate();"
					"CREATE TRIGGER " FLUSH_TRIGGER " AFTER INSERT OR UPDATE OR DELETE ON %s"
					" FOR EACH STATEMENT EXECUTE FUNCTION autora.flush_entries();"
					"ALTER TABLE %s ENABLE ALWAYS TRIGGER " TRUNCATE_TRIGGER ","
					" ENABLE ALWAYS TRIGGER " FLUSH_TRIGGER ";",
					qualified, qualified, qualified);
}

/* Row triggers go on relations that hold rows, not on partitioned tables. */
static bool
NeedsRowTriggers(Oid relid)
{
	return get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE;
}

/* Has the relation the autora read policy (ApplyRowSecurity ran on it)? */
static bool
HasAutoraPolicies(Oid relid)
{
	return QueryStrings(psprintf("SELECT polname FROM pg_catalog.pg_policy WHERE polrelid"
								 " OPERATOR(pg_catalog.=) %u AND polname OPERATOR(pg_catalog.=)"
								 " 'autora_read'", relid)) != NIL;
}

/*
 * Partitions and inheritance children can be queried directly, and PostgreSQL
 * gives them neither the policies nor the statement triggers of their parent:
 * each member of the tree gets its own policies, TRUNCATE and flush triggers,
 * and, when it holds rows, its own row triggers (see RowTriggersSQL).  With
 * only_new, members that have them already are left alone (the event trigger
 * calls this after every ALTER TABLE of a member).  column NULL: a platform
 * table, whose members get no policies and no stamp trigger.
 */
static void
ProtectPartitions(Oid root, const char *column, bool only_new)
{
	List	   *members = find_all_inheritors(root, ShareRowExclusiveLock, NULL);
	ListCell   *lc;

	foreach(lc, members)
	{
		Oid			member = lfirst_oid(lc);
		char	   *qualified;

		if (member == root)
			continue;
		if (only_new && (column == NULL || HasAutoraPolicies(member)) &&
			HasTrigger(member, TRUNCATE_TRIGGER))
			continue;
		RequireTrustedCode(member);
		MergeRegisteredMember(member, root);
		if (column != NULL)
			ApplyRowSecurity(member, column);
		qualified = QualifiedName(member);
		if (NeedsRowTriggers(member) && !HasTrigger(member, CAPTURE_TRIGGER))
			ExecuteOnRelation(member, RowTriggersSQL(qualified, column == NULL));
		if (!HasTrigger(member, TRUNCATE_TRIGGER))
			ExecuteOnRelation(member, StatementTriggersSQL(qualified));
	}
}

/* Removes autora's policies and triggers from every member of a tree. */
static void
UnprotectPartitions(Oid root)
{
	List	   *members = find_all_inheritors(root, ShareRowExclusiveLock, NULL);
	ListCell   *lc;

	foreach(lc, members)
	{
		Oid			member = lfirst_oid(lc);

		if (member == root)
			continue;
		RemoveRowSecurity(member, false, false);
		if (HasTrigger(member, TRUNCATE_TRIGGER))
			ExecuteOnRelation(member, psprintf("DROP TRIGGER " TRUNCATE_TRIGGER " ON %s;",
											   QualifiedName(member)));
		if (HasTrigger(member, FLUSH_TRIGGER))
			ExecuteOnRelation(member, psprintf("DROP TRIGGER " FLUSH_TRIGGER " ON %s;",
											   QualifiedName(member)));
		if (HasTrigger(member, CAPTURE_TRIGGER))
			ExecuteOnRelation(member, psprintf("DROP TRIGGER IF EXISTS " STAMP_TRIGGER " ON %s;"
											   "DROP TRIGGER " CAPTURE_TRIGGER " ON %s;",
											   QualifiedName(member), QualifiedName(member)));
	}
}

/* Is attnum a column of relid's primary key? */
static bool
IsKeyColumn(Oid relid, AttrNumber attnum)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	Bitmapset  *key = RelationGetIndexAttrBitmap(rel, INDEX_ATTR_BITMAP_PRIMARY_KEY);

	relation_close(rel, AccessShareLock);
	return bms_is_member(attnum - FirstLowInvalidHeapAttributeNumber, key);
}

/*
 * Checks that each name of a name[] argument is a column of the table, and
 * returns the argument as a name[] literal for the registry.
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
		if (strcmp(what, "pii_columns") == 0 && IsKeyColumn(relid, get_attnum(relid, col)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("primary key column \"%s\" cannot be a PII column", col),
					 errdetail("Entries identify their row by its primary key; a PII value gets a new commitment in every entry."),
					 errhint("Key the table by a surrogate id, and list the column in pii_columns.")));
		if (strcmp(what, "exclude_columns") == 0 && tenant_column != NULL &&
			strcmp(col, tenant_column) == 0)
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

/* The tenant column must exist and be of a supported type. */
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

/*
 * Only a logged, untyped, ordinary or partitioned table outside schema
 * autora, with a primary key, can be protected.
 */
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
	if (OidIsValid(rel->rd_rel->reloftype))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("typed table \"%s\" cannot be protected", RelationGetRelationName(rel)),
				 errdetail("ALTER TYPE ... CASCADE of its type would rename and retype its columns, unguarded."),
				 errhint("Make it untyped first: ALTER TABLE %s NOT OF.", RelationGetRelationName(rel))));
	/* a crash empties an unlogged table: its rows would vanish without entries */
	if (rel->rd_rel->relpersistence == RELPERSISTENCE_UNLOGGED)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("unlogged table \"%s\" cannot be protected", RelationGetRelationName(rel)),
				 errdetail("A crash empties an unlogged table, and its rows would vanish without ledger entries."),
				 errhint("Make it logged first: ALTER TABLE %s SET LOGGED.", RelationGetRelationName(rel))));
	if (RelationGetNamespace(rel) == AutoraGetOids(false)->namespace ||
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

/*
 * The role that called protect()/unprotect(): these run as the extension
 * owner (SECURITY DEFINER), so current_user is not it; the outer user is
 * whoever SET ROLE made the session act as.
 */
static char *
RequestingUser(void)
{
	return GetUserNameFromId(GetOuterUserId(), false);
}

/*
 * {"tenant_column": ..., "pii_columns": [...], "exclude_columns": [...], "by": ...};
 * tenant_column null for a platform table.
 */
static Jsonb *
ProtectionMetadata(const char *tenant_column, const char *pii, const char *excluded)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		args[4];
	bool		isnull;

	args[0] = tenant_column ? CStringGetTextDatum(tenant_column) : (Datum) 0;
	args[1] = CStringGetTextDatum(pii);
	args[2] = CStringGetTextDatum(excluded);
	args[3] = CStringGetTextDatum(RequestingUser());
	if (SPI_execute_with_args("SELECT jsonb_build_object('tenant_column', $1,"
							  " 'pii_columns', $2::text[], 'exclude_columns', $3::text[], 'by', $4)",
							  4, types, args, tenant_column ? "    " : "n   ",
							  true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "autora: building protect metadata failed");
	return DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* Records protect/unprotect in the platform chain. */
static void
RecordTableEvent(const char *event, const char *qualified, Jsonb *metadata)
{
	LedgerRecord rec = {0};

	rec.op = "EVENT";
	rec.event = event;
	rec.entity_type = "table";
	rec.entity_id = qualified;
	rec.metadata = metadata;
	(void) LedgerAppend(&rec);
	WriterFlushAll();
}

/*
 * Opens the table a protect()/unprotect() argument names: an OID with no
 * relation behind it (autora.protect(0)) is the caller's mistake, not an
 * internal error.
 */
static Relation
OpenTableArgument(FunctionCallInfo fcinfo, const char *what)
{
	Relation	rel;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("table to %s must not be NULL", what)));
	rel = try_relation_open(PG_GETARG_OID(0), ShareRowExclusiveLock);
	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", PG_GETARG_OID(0)),
				 errhint("Name the table, e.g. autora.%s('public.customers'%s).", what,
						 strcmp(what, "unprotect") == 0 ? ", 'reason'" : "")));
	return rel;
}

/*
 * protect() again keeps the kind of protection: making a tenant table a
 * platform table would drop the row level security that keeps each store's
 * rows to itself, and the other way round would leave its members' rows
 * without tenants.  Either change goes through unprotect(), on record.
 */
static void
RequireSameKind(Relation rel, bool platform)
{
	ProtectedConfig config;

	if (!RegistryGetConfig(RelationGetRelid(rel), &config) ||
		(config.tenant_column == NULL) == platform)
		return;
	if (platform)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table \"%s\" is protected with tenant column \"%s\"",
						RelationGetRelationName(rel), config.tenant_column),
				 errdetail("A platform table has no row level security; protecting this one so would expose every store's rows."),
				 errhint("To make it a platform table, call autora.unprotect(table, reason) first: both steps are recorded.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("table \"%s\" is protected as a platform table", RelationGetRelationName(rel)),
			 errhint("To protect it per tenant, call autora.unprotect(table, reason) first: both steps are recorded.")));
}

/* A member of a protected tree is protected with its root, not on its own. */
static void
RequireNotMember(Relation rel)
{
	Oid			root = RegistryRootOf(RelationGetRelid(rel));

	if (OidIsValid(root) && root != RelationGetRelid(rel))
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is protected as a member of protected table \"%s\"",
						RelationGetRelationName(rel), get_rel_name(root)),
				 errdetail("Partitions and inheritance children share the protection of their protected ancestor."),
				 errhint("Call autora.protect() or autora.unprotect() on \"%s\".", get_rel_name(root))));
}

/*
 * autora.protect(): registers the table (its configuration lives in the
 * registry, not in trigger arguments), then attaches triggers and policies
 * to it and its members, and records a protect event.
 */
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
	StringInfoData sql;
	bool		rls_before;
	bool		force_before;
	bool		platform;
	Oid			argtypes[7] = {OIDOID, NAMEOID, TEXTOID, TEXTOID, TEXTOID, BOOLOID, BOOLOID};
	Datum		values[7];

	rel = OpenTableArgument(fcinfo, "protect");
	relid = RelationGetRelid(rel);
	platform = !PG_ARGISNULL(4) && PG_GETARG_BOOL(4);
	if (platform && !PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a platform table has no tenant column"),
				 errdetail("protect(platform => true) records the table's changes in the platform chain, without row level security."),
				 errhint("Call autora.protect('%s', tenant_column => NULL, platform => true), or protect it per tenant without platform.",
						 RelationGetRelationName(rel))));
	tenant_column = platform ? NULL :
		PG_ARGISNULL(1) ? autora_tenant_column : NameStr(*PG_GETARG_NAME(1));
	RequireProtectableTable(rel);
	RequireNotMember(rel);
	RequireSameKind(rel, platform);
	/* kept from the first protect() only (see the ON CONFLICT below) */
	rls_before = rel->rd_rel->relrowsecurity;
	force_before = rel->rd_rel->relforcerowsecurity;
	if (!platform)
		RequireTenantColumn(rel, tenant_column);
	pii = ColumnListArgument(relid, PG_ARGISNULL(2) ? construct_empty_array(NAMEOID)
							 : PG_GETARG_ARRAYTYPE_P(2), "pii_columns", tenant_column);
	excluded = ColumnListArgument(relid, PG_ARGISNULL(3) ? construct_empty_array(NAMEOID)
								  : PG_GETARG_ARRAYTYPE_P(3), "exclude_columns", tenant_column);
	qualified = QualifiedName(relid);
	relation_close(rel, NoLock);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "autora: SPI_connect failed");

	/* registered first: the triggers created below act only on registered tables */
	values[0] = ObjectIdGetDatum(relid);
	values[1] = platform ? (Datum) 0 : DirectFunctionCall1(namein, CStringGetDatum(tenant_column));
	values[2] = CStringGetTextDatum(pii);
	values[3] = CStringGetTextDatum(excluded);
	values[4] = CStringGetTextDatum(RequestingUser());
	values[5] = BoolGetDatum(rls_before);
	values[6] = BoolGetDatum(force_before);
	/* the columns it sees now are reviewed: autora.coverage lists those added later */
	RegistryExecuteWithNulls("INSERT INTO autora.protected (relid, tenant_column, pii_columns, exclude_columns,"
					" protected_by, rls_before, force_before, reviewed_columns)"
					" VALUES ($1::pg_catalog.regclass, $2, $3::pg_catalog.name[], $4::pg_catalog.name[],"
					" $5, $6, $7,"
					" ARRAY(SELECT attnum FROM pg_catalog.pg_attribute WHERE attrelid"
					" OPERATOR(pg_catalog.=) $1 AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped"
					" ORDER BY attnum))"
					" ON CONFLICT (relid) DO UPDATE SET tenant_column = EXCLUDED.tenant_column,"
					" pii_columns = EXCLUDED.pii_columns, exclude_columns = EXCLUDED.exclude_columns,"
					" protected_by = EXCLUDED.protected_by, reviewed_columns = EXCLUDED.reviewed_columns",
					7, argtypes, values, platform ? " n     " : "       ");
	RegistryInvalidateTree(relid);
	CommandCounterIncrement();

	/* re-protecting replaces the triggers and policies */
	initStringInfo(&sql);
	appendStringInfoString(&sql, DropAutoraTriggersSQL(relid, qualified));
	if (NeedsRowTriggers(relid))
		appendStringInfoString(&sql, RowTriggersSQL(qualified, platform));
	appendStringInfoString(&sql, StatementTriggersSQL(qualified));
	ExecuteOnRelation(relid, sql.data);
	RequireTrustedCode(relid);
	if (!platform)
		ApplyRowSecurity(relid, tenant_column);
	ProtectPartitions(relid, tenant_column, false);

	RecordTableEvent("protect", qualified, ProtectionMetadata(tenant_column, pii, excluded));

	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * autora.unprotect(): the only way to undo protect(), with a reason on
 * record; row level security goes back to what it was before.
 */
PG_FUNCTION_INFO_V1(autora_unprotect);
Datum
autora_unprotect(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	char	   *reason;
	char	   *qualified;
	bool		rls_before;
	bool		force_before;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];

	reason = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (reason == NULL || reason[strspn(reason, " \t\r\n")] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unprotect needs a reason"),
				 errdetail("Removing protection is recorded in the ledger with its reason."),
				 errhint("Call autora.unprotect(table, 'why protection is being removed').")));
	rel = OpenTableArgument(fcinfo, "unprotect");
	relid = RelationGetRelid(rel);
	qualified = QualifiedName(relid);
	RequireNotMember(rel);
	relation_close(rel, NoLock);
	if (RegistryRootOf(relid) != relid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table %s is not protected", qualified),
				 errhint("See autora.protected_tables for the protected tables.")));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "autora: SPI_connect failed");
	ExecuteOnRelation(relid, DropAutoraTriggersSQL(relid, qualified));
	RowSecurityBeforeProtect(relid, &rls_before, &force_before);
	RemoveRowSecurity(relid, rls_before, force_before);
	UnprotectPartitions(relid);
	values[0] = ObjectIdGetDatum(relid);
	RegistryExecute("DELETE FROM autora.protected WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
					1, argtypes, values);
	RegistryInvalidateTree(relid);
	RecordTableEvent("unprotect", qualified,
					 JsonbFromCString(psprintf("{\"reason\": %s, \"by\": %s}", JsonQuote(reason),
											   JsonQuote(RequestingUser()))));
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * Called by the event trigger for every new or altered table: when the
 * table is, or descends from (partition or inheritance child), a protected
 * table, brings the members of that tree that lack protection under it and
 * returns true.
 */
PG_FUNCTION_INFO_V1(autora_protect_partitions);
Datum
autora_protect_partitions(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Oid			root;
	ProtectedConfig config;

	if (protect_in_progress || get_rel_relkind(relid) == '\0')
		PG_RETURN_BOOL(false);
	root = RegistryRootOf(relid);
	if (!OidIsValid(root) || !RegistryGetConfig(root, &config))
		PG_RETURN_BOOL(false);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "autora: SPI_connect failed");
	ProtectPartitions(root, config.tenant_column, true);
	SPI_finish();
	PG_RETURN_BOOL(true);
}

/* protect_schema()'s registration of a schema, through the registry's one writer. */
PG_FUNCTION_INFO_V1(autora_register_schema);
Datum
autora_register_schema(PG_FUNCTION_ARGS)
{
	Oid			argtypes[2] = {NAMEOID, NAMEOID};
	Datum		values[2];

	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	RegistryExecute("INSERT INTO autora.protected_schemas AS p VALUES ($1, $2)"
					" ON CONFLICT (schema_name) DO UPDATE SET tenant_column = EXCLUDED.tenant_column",
					2, argtypes, values);
	PG_RETURN_VOID();
}
