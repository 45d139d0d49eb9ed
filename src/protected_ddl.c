/*-------------------------------------------------------------------------
 * protected_ddl.c
 *	  DDL on protected tables.  The table owner (an application's migration
 *	  role) is not trusted with other tenants' rows, nor to change rows
 *	  unaudited: ordinary migrations (ADD COLUMN, CREATE INDEX on columns,
 *	  RENAME, constraints) keep working, and every one of them is recorded
 *	  in the platform chain; what would expose rows or change them without
 *	  entries is refused, whatever route it takes:
 *
 *	  - switching off autora's triggers or policies, or row level security;
 *	  - dropping the table or detaching it from its protected tree, and
 *	    dropping its tenant column (directly or by a cascade);
 *	  - attaching it under an unprotected parent, or attaching a table with
 *	    rows (which would appear without history) under a protected one;
 *	  - rewriting column values with USING, retyping the tenant column,
 *	    SET UNLOGGED (a crash would empty it), rules;
 *	  - running code the owner could write over every tenant's rows: while
 *	    DDL evaluates expressions over a protected table's rows (index
 *	    expressions, constraint validation, column rewrites, ANALYZE...),
 *	    only functions owned by a superuser may run, and errors that could
 *	    quote a row lose their row data.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/tablecmds.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "autora_audit.h"
#include "ledger.h"
#include "protected_ddl.h"
#include "registry.h"
#include "writer.h"

/* the longest statement text an event records */
#define STATEMENT_TEXT_MAX	2048

/* relation whose autora objects protect()/unprotect() are changing */
static Oid	allowed_relid = InvalidOid;

/* > 0 while DDL evaluates expressions over protected rows */
static int	ddl_reading_rows = 0;

/* --- protect()'s own DDL ----------------------------------------------------- */

void
ProtectedDdlAllowBegin(Oid relid)
{
	allowed_relid = relid;
}

void
ProtectedDdlAllowEnd(void)
{
	allowed_relid = InvalidOid;
}

/*
 * Is relid the relation protect()/unprotect() is working on, or a member
 * of its partition / inheritance tree (whose cloned triggers go with it)?
 */
bool
ProtectedDdlAllowed(Oid relid)
{
	List	   *ancestors;

	if (!OidIsValid(allowed_relid) || !OidIsValid(relid))
		return false;
	if (relid == allowed_relid)
		return true;
	ancestors = get_partition_ancestors(relid);
	if (list_member_oid(ancestors, allowed_relid))
		return true;
	return has_superclass(relid) &&
		list_member_oid(find_all_inheritors(allowed_relid, NoLock, NULL), relid);
}

bool
IsProtected(Oid relid)
{
	return OidIsValid(relid) && get_rel_relkind(relid) != '\0' && RelIsProtected(relid);
}

bool
IsAutoraTriggerFunction(Oid funcid)
{
	const LedgerOids *oids = LedgerGetOids(true);
	char	   *name;

	if (oids == NULL || get_func_namespace(funcid) != oids->namespace)
		return false;
	name = get_func_name(funcid);
	return name != NULL &&
		(strcmp(name, "capture_row") == 0 || strcmp(name, "capture_truncate") == 0 ||
		 strcmp(name, "stamp_tenant") == 0 || strcmp(name, "flush_entries") == 0);
}

/* The tenant column of a protected relation (the name is the same in every member). */
static char *
TenantColumnOf(Oid relid)
{
	ProtectedConfig config;

	if (!RegistryGetConfig(RegistryRootOf(relid), &config))
		return NULL;
	return config.tenant_column;
}

/* --- refusals ----------------------------------------------------------------- */

void
RefuseProtectedDrop(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("dropping or detaching protected table \"%s\" is not allowed", get_rel_name(relid)),
			 errdetail("Its rows would leave the ledger's view without an entry."),
			 errhint("Remove protection first with autora.unprotect(table, reason), which is recorded in the ledger.")));
}

static void
RefuseTrigger(const char *action, const char *trigger, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s of autora trigger %s on protected table \"%s\" is not allowed",
					action, trigger ? trigger : "(all)", get_rel_name(relid)),
			 errdetail("Audit capture and tenant stamping of a protected table cannot be switched off."),
			 errhint("Use autora.unprotect(table, reason), which is recorded in the ledger.")));
}

static void
RefusePolicy(const char *action, const char *what, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s %s on protected table \"%s\" is not allowed", action, what, get_rel_name(relid)),
			 errdetail("Row level security keeps each store's rows to its own sessions."),
			 errhint("Use autora.unprotect(table, reason), which is recorded in the ledger.")));
}

/* A change to a protected table that only unprotect / protect may make. */
static void
RefuseChange(Oid relid, const char *what, const char *why, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s on protected table \"%s\" is not allowed", what, get_rel_name(relid)),
			 errdetail("%s", why),
			 errhint("%s", hint)));
}

/* --- lookups -------------------------------------------------------------------- */

static Oid
RelidOf(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

static Oid
RelidOfNames(List *names)
{
	return RelidOf(makeRangeVarFromNameList(names));
}

/* Policies that autora.protect() creates are named autora_*. */
static bool
IsAutoraPolicy(Oid relid, const char *policy)
{
	return policy != NULL && strncmp(policy, "autora_", 7) == 0 &&
		!ProtectedDdlAllowed(relid) && IsProtected(relid);
}

/* Is trigname an autora trigger of a protected table (a table merely carrying one is not)? */
static bool
IsAutoraTrigger(Oid relid, const char *trigname)
{
	Relation	rel;
	bool		result = false;

	if (!OidIsValid(relid) || trigname == NULL || !IsProtected(relid))
		return false;
	rel = relation_open(relid, AccessShareLock);
	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
		{
			Trigger    *t = &rel->trigdesc->triggers[i];

			if (strcmp(t->tgname, trigname) == 0 && IsAutoraTriggerFunction(t->tgfoid))
				result = true;
		}
	relation_close(rel, AccessShareLock);
	return result;
}

/* Does the table hold any row?  Read under a lock that keeps writers out. */
static bool
TableHasRows(Oid relid)
{
	List	   *members;
	ListCell   *lc;
	bool		found = false;

	LockRelationOid(relid, AccessExclusiveLock);
	members = find_all_inheritors(relid, AccessExclusiveLock, NULL);
	foreach(lc, members)
	{
		Relation	rel = table_open(lfirst_oid(lc), NoLock);
		TableScanDesc scan;
		TupleTableSlot *slot;

		if (RELKIND_HAS_STORAGE(rel->rd_rel->relkind))
		{
			slot = table_slot_create(rel, NULL);
			scan = table_beginscan(rel, GetLatestSnapshot(), 0, NULL);
			found |= table_scan_getnextslot(scan, ForwardScanDirection, slot);
			table_endscan(scan);
			ExecDropSingleTupleTableSlot(slot);
		}
		table_close(rel, NoLock);
	}
	return found;
}

/* --- what may be attached where ---------------------------------------------- */

/*
 * child becomes a partition or inheritance child of parent.  A protected
 * child only goes under a protected parent with the same tenant column (an
 * unprotected parent would show its rows to anyone); an unprotected child
 * only when empty (its rows would appear in the protected tree with no
 * history), or protected already.
 */
static void
GuardAttach(Oid parent, Oid child, const char *how)
{
	bool		parent_protected;
	bool		child_protected;

	if (!OidIsValid(parent) || !OidIsValid(child))
		return;
	parent_protected = IsProtected(parent);
	child_protected = IsProtected(child);
	if (child_protected && !parent_protected)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s protected table \"%s\" under unprotected table \"%s\" is not allowed",
						how, get_rel_name(child), get_rel_name(parent)),
				 errdetail("Queries through the parent would see every tenant's rows of the child, without row level security or audit."),
				 errhint("Protect \"%s\" first with autora.protect(), with the same tenant column.",
						 get_rel_name(parent))));
	if (!parent_protected || ProtectedDdlAllowed(parent))
		return;
	if (child_protected)
	{
		char	   *parent_column = TenantColumnOf(parent);
		char	   *child_column = TenantColumnOf(child);

		if (parent_column != NULL && child_column != NULL &&
			strcmp(parent_column, child_column) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("%s protected table \"%s\" under protected table \"%s\" is not allowed",
							how, get_rel_name(child), get_rel_name(parent)),
					 errdetail("Their tenant columns differ (\"%s\" and \"%s\").", child_column, parent_column),
					 errhint("Attach tables that use the same tenant column.")));
		return;
	}
	if (TableHasRows(child))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s table \"%s\" with rows under protected table \"%s\" is not allowed",
						how, get_rel_name(child), get_rel_name(parent)),
				 errdetail("Its rows would appear in the protected table without any ledger entry."),
				 errhint("Attach it empty and insert its rows under each tenant's context, or protect it first with autora.protect().")));
}

/* --- ALTER TABLE and friends -------------------------------------------------- */

static void
CheckAlterTableCommand(Oid relid, AlterTableCmd *cmd)
{
	char	   *tenant;

	switch (cmd->subtype)
	{
			/* ENABLE ALWAYS only strengthens capture (pg_restore issues it) */
		case AT_EnableTrig:
		case AT_EnableReplicaTrig:
		case AT_DisableTrig:
			if (IsAutoraTrigger(relid, cmd->name))
				RefuseTrigger("ALTER", cmd->name, relid);
			break;
		case AT_EnableTrigAll:
		case AT_DisableTrigAll:
		case AT_EnableTrigUser:
		case AT_DisableTrigUser:
			RefuseTrigger("ALTER", NULL, relid);
			break;
		case AT_DisableRowSecurity:
			RefusePolicy("DISABLE", "ROW LEVEL SECURITY", relid);
			break;
		case AT_NoForceRowSecurity:
			RefusePolicy("NO FORCE", "ROW LEVEL SECURITY", relid);
			break;
		case AT_DetachPartition:
		case AT_DetachPartitionFinalize:
			/* refused before anything happens: CONCURRENTLY commits its first step */
			if (IsProtected(RelidOf(((PartitionCmd *) cmd->def)->name)))
				RefuseProtectedDrop(RelidOf(((PartitionCmd *) cmd->def)->name));
			break;
		case AT_DropInherit:
			if (RegistryRootOf(relid) != relid)
				RefuseProtectedDrop(relid);
			break;
		case AT_DropColumn:
			tenant = TenantColumnOf(relid);
			if (tenant != NULL && cmd->name != NULL && strcmp(cmd->name, tenant) == 0)
				RefuseChange(relid, "dropping the tenant column",
							 "The tenant column carries the table's row level security and the tenant of every entry.",
							 "Keep the column; to stop protecting the table use autora.unprotect(table, reason).");
			break;
		case AT_AlterColumnType:
			tenant = TenantColumnOf(relid);
			if (tenant != NULL && cmd->name != NULL && strcmp(cmd->name, tenant) == 0)
				RefuseChange(relid, "changing the type of the tenant column",
							 "The tenant column carries the table's row level security and the tenant of every entry.",
							 "Unprotect the table, change the column, and protect it again; both steps are recorded.");
			if (((ColumnDef *) cmd->def)->raw_default != NULL)
				RefuseChange(relid, "ALTER COLUMN ... TYPE ... USING",
							 "USING rewrites every tenant's values without a ledger entry.",
							 "Add a column, fill it with UPDATE under each tenant's context (captured), then drop the old one.");
			break;
		case AT_SetUnLogged:
			RefuseChange(relid, "SET UNLOGGED",
						 "A crash empties an unlogged table, and its rows would vanish without ledger entries.",
						 "Keep protected tables logged.");
			break;
		default:
			break;
	}
}

static void
CheckAlterTable(AlterTableStmt *stmt)
{
	Oid			relid = RelidOf(stmt->relation);
	ListCell   *lc;

	if (!OidIsValid(relid))
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AttachPartition && stmt->objtype != OBJECT_INDEX)
			GuardAttach(relid, RelidOf(((PartitionCmd *) cmd->def)->name), "attaching");
		else if (cmd->subtype == AT_AddInherit)
			GuardAttach(RelidOf((RangeVar *) cmd->def), relid, "inheriting");
	}
	if (ProtectedDdlAllowed(relid) || !IsProtected(relid))
		return;
	foreach(lc, stmt->cmds)
		CheckAlterTableCommand(relid, lfirst(lc));
}

/* New children of a protected table must be able to hold protected rows. */
static void
CheckCreateTable(CreateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->inhRelations)
	{
		Oid			parent = RelidOf(lfirst(lc));

		if (!IsProtected(parent))
			continue;
		if (stmt->relation->relpersistence == RELPERSISTENCE_TEMP)
			RefuseChange(parent, "a temporary child table",
						 "A session's temporary table cannot hold protected rows: it would escape capture and be dropped at session end.",
						 "Create a permanent partition or child, which autora protects with its parent.");
		if (stmt->relation->relpersistence == RELPERSISTENCE_UNLOGGED)
			RefuseChange(parent, "an unlogged child table",
						 "A crash empties an unlogged table, and its rows would vanish without ledger entries.",
						 "Create a logged partition or child.");
	}
}

void
ProtectedDdlCheck(Node *parsetree)
{
	Oid			relid;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			CheckAlterTable((AlterTableStmt *) parsetree);
			break;
		case T_CreateStmt:
			CheckCreateTable((CreateStmt *) parsetree);
			break;
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;
				ListCell   *lc;

				foreach(lc, stmt->objects)
				{
					List	   *names;
					char	   *name;

					if (stmt->removeType == OBJECT_TABLE)
					{
						relid = RelidOfNames(lfirst(lc));
						if (IsProtected(relid))
							RefuseProtectedDrop(relid);
						continue;
					}
					if (stmt->removeType != OBJECT_TRIGGER && stmt->removeType != OBJECT_POLICY)
						continue;
					names = lfirst(lc);
					name = strVal(llast(names));
					relid = RelidOfNames(list_truncate(list_copy(names), list_length(names) - 1));
					if (stmt->removeType == OBJECT_TRIGGER &&
						!ProtectedDdlAllowed(relid) && IsAutoraTrigger(relid, name))
						RefuseTrigger("DROP", name, relid);
					if (stmt->removeType == OBJECT_POLICY && IsAutoraPolicy(relid, name))
						RefusePolicy("DROP POLICY", name, relid);
				}
				break;
			}
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				relid = RelidOf(stmt->relation);
				if (stmt->renameType == OBJECT_TRIGGER &&
					!ProtectedDdlAllowed(relid) && IsAutoraTrigger(relid, stmt->subname))
					RefuseTrigger("RENAME", stmt->subname, relid);
				if (stmt->renameType == OBJECT_POLICY && IsAutoraPolicy(relid, stmt->subname))
					RefusePolicy("ALTER POLICY", stmt->subname, relid);
				break;
			}
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *stmt = (CreateTrigStmt *) parsetree;

				relid = RelidOf(stmt->relation);
				if (stmt->replace && !ProtectedDdlAllowed(relid) &&
					IsAutoraTrigger(relid, stmt->trigname))
					RefuseTrigger("CREATE OR REPLACE", stmt->trigname, relid);
				break;
			}
		case T_AlterPolicyStmt:
			{
				AlterPolicyStmt *stmt = (AlterPolicyStmt *) parsetree;

				relid = RelidOf(stmt->table);
				if (IsAutoraPolicy(relid, stmt->policy_name))
					RefusePolicy("ALTER POLICY", stmt->policy_name, relid);
				break;
			}
		case T_RuleStmt:
			relid = RelidOf(((RuleStmt *) parsetree)->relation);
			if (IsProtected(relid))
				RefuseChange(relid, "CREATE RULE",
							 "A rule runs with the table owner's rights and can send rows elsewhere, or keep a change from the table and its ledger.",
							 "Use a trigger, or a view over the table.");
			break;
		case T_CreateStatsStmt:
			{
				CreateStatsStmt *stmt = (CreateStatsStmt *) parsetree;
				ListCell   *lc;

				if (list_length(stmt->relations) != 1 || !IsA(linitial(stmt->relations), RangeVar))
					break;
				relid = RelidOf(linitial(stmt->relations));
				if (!IsProtected(relid))
					break;
				foreach(lc, stmt->exprs)
					if (((StatsElem *) lfirst(lc))->expr != NULL)
						RefuseChange(relid, "statistics on expressions",
									 "ANALYZE would evaluate the expressions over every tenant's rows with the table owner's rights.",
									 "Create statistics on plain columns.");
				break;
			}
		default:
			break;
	}
}

/* --- around execution ------------------------------------------------------------ */

/*
 * Is a column of a protected table of this type, directly or through a
 * domain, an array or a composite built on it?  Followed through pg_depend,
 * where every column and type records the type it is built on.
 */
static bool
TypeUsedByProtected(Oid typid, int depth)
{
	Relation	depend;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		used = false;

	if (depth > 8)
		return true;			/* deeply nested: assume so */
	depend = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(TypeRelationId));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(typid));
	scan = systable_beginscan(depend, DependReferenceIndexId, true, NULL, 2, keys);
	while (!used && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);

		if (dep->classid == TypeRelationId)
			used = TypeUsedByProtected(dep->objid, depth + 1);
		else if (dep->classid == RelationRelationId && dep->objsubid > 0)
		{
			if (get_rel_relkind(dep->objid) == RELKIND_COMPOSITE_TYPE)
				used = TypeUsedByProtected(get_rel_type_id(dep->objid), depth + 1);
			else
				used = IsProtected(dep->objid);
		}
	}
	systable_endscan(scan);
	table_close(depend, AccessShareLock);
	return used;
}

/* Does this utility statement evaluate expressions over protected rows? */
static bool
ReadsProtectedRows(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			return IsProtected(RelidOf(((AlterTableStmt *) parsetree)->relation));
		case T_IndexStmt:
			return IsProtected(RelidOf(((IndexStmt *) parsetree)->relation));
		case T_ReindexStmt:
			{
				ReindexStmt *stmt = (ReindexStmt *) parsetree;
				Oid			relid;

				if (stmt->kind != REINDEX_OBJECT_TABLE && stmt->kind != REINDEX_OBJECT_INDEX)
					return true;
				relid = RelidOf(stmt->relation);
				if (stmt->kind == REINDEX_OBJECT_INDEX && OidIsValid(relid))
					relid = IndexGetRelation(relid, true);
				return IsProtected(relid);
			}
		case T_ClusterStmt:
			return ((ClusterStmt *) parsetree)->relation == NULL ||
				IsProtected(RelidOf(((ClusterStmt *) parsetree)->relation));
		case T_VacuumStmt:
			if (((VacuumStmt *) parsetree)->rels == NIL)
				return true;
			foreach(lc, ((VacuumStmt *) parsetree)->rels)
				if (IsProtected(RelidOf(((VacuumRelation *) lfirst(lc))->relation)))
					return true;
			return false;
		case T_AlterDomainStmt:
			{
				/* a new or validated constraint is checked in every column of the domain */
				List	   *names = ((AlterDomainStmt *) parsetree)->typeName;
				Oid			domain = typenameTypeId(NULL, makeTypeNameFromNameList(names));

				return TypeUsedByProtected(domain, 0);
			}
		default:
			return false;
	}
}

/* The relations a statement changes, when it names them. */
static List *
ChangedRelations(Node *parsetree)
{
	List	   *relids = NIL;
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			return list_make1_oid(RelidOf(((AlterTableStmt *) parsetree)->relation));
		case T_RenameStmt:
			return list_make1_oid(RelidOf(((RenameStmt *) parsetree)->relation));
		case T_AlterObjectSchemaStmt:
			return list_make1_oid(RelidOf(((AlterObjectSchemaStmt *) parsetree)->relation));
		case T_IndexStmt:
			return list_make1_oid(RelidOf(((IndexStmt *) parsetree)->relation));
		case T_CreateTrigStmt:
			return list_make1_oid(RelidOf(((CreateTrigStmt *) parsetree)->relation));
		case T_CreatePolicyStmt:
			return list_make1_oid(RelidOf(((CreatePolicyStmt *) parsetree)->table));
		case T_AlterPolicyStmt:
			return list_make1_oid(RelidOf(((AlterPolicyStmt *) parsetree)->table));
		case T_CreateStatsStmt:
			foreach(lc, ((CreateStatsStmt *) parsetree)->relations)
				if (IsA(lfirst(lc), RangeVar))
					relids = lappend_oid(relids, RelidOf(lfirst(lc)));
			return relids;
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;

				if (stmt->removeType != OBJECT_TRIGGER && stmt->removeType != OBJECT_POLICY)
					return NIL;
				foreach(lc, stmt->objects)
				{
					List	   *names = lfirst(lc);

					relids = lappend_oid(relids,
										 RelidOfNames(list_truncate(list_copy(names),
																	list_length(names) - 1)));
				}
				return relids;
			}
		case T_GrantStmt:
			{
				GrantStmt  *stmt = (GrantStmt *) parsetree;

				if (stmt->objtype != OBJECT_TABLE)
					return NIL;
				if (stmt->targtype == ACL_TARGET_OBJECT)
				{
					foreach(lc, stmt->objects)
						relids = lappend_oid(relids, RelidOf(lfirst(lc)));
					return relids;
				}
				if (stmt->targtype == ACL_TARGET_ALL_IN_SCHEMA)
				{
					List	   *roots = RegistryRoots();
					ListCell   *rc;

					foreach(rc, roots)
						foreach(lc, stmt->objects)
							if (get_rel_namespace(lfirst_oid(rc)) ==
								get_namespace_oid(strVal(lfirst(lc)), true))
								relids = lappend_oid(relids, lfirst_oid(rc));
				}
				return relids;
			}
		default:
			return NIL;
	}
}

/* [{"name": ..., "type": ...}, ...] of a relation's live columns. */
static char *
ColumnsJson(Oid relid)
{
	HeapTuple	reltup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	StringInfoData buf;
	int			natts;
	bool		first = true;

	if (!HeapTupleIsValid(reltup))
		return pstrdup("null");
	natts = ((Form_pg_class) GETSTRUCT(reltup))->relnatts;
	ReleaseSysCache(reltup);
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int attnum = 1; attnum <= natts; attnum++)
	{
		HeapTuple	tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
		Form_pg_attribute att;

		if (!HeapTupleIsValid(tup))
			continue;
		att = (Form_pg_attribute) GETSTRUCT(tup);
		if (!att->attisdropped)
		{
			appendStringInfoString(&buf, first ? "{\"name\": " : ", {\"name\": ");
			escape_json(&buf, NameStr(att->attname));
			appendStringInfoString(&buf, ", \"type\": ");
			escape_json(&buf, format_type_with_typemod(att->atttypid, att->atttypmod));
			appendStringInfoChar(&buf, '}');
			first = false;
		}
		ReleaseSysCache(tup);
	}
	appendStringInfoChar(&buf, ']');
	return buf.data;
}

/* The text of this statement alone, at most STATEMENT_TEXT_MAX bytes. */
static char *
StatementText(PlannedStmt *pstmt, const char *queryString)
{
	int			start = pstmt->stmt_location > 0 ? pstmt->stmt_location : 0;
	int			len = pstmt->stmt_len > 0 ? pstmt->stmt_len : (int) strlen(queryString + start);

	if (queryString == NULL)
		return NULL;
	if (len > STATEMENT_TEXT_MAX)
		len = pg_mbcliplen(queryString + start, len, STATEMENT_TEXT_MAX);
	return pnstrdup(queryString + start, len);
}

/* Notes the protected tables a statement changes, for ProtectedDdlDone. */
static void
NoteTargets(Node *parsetree, ProtectedDdl *ddl)
{
	ListCell   *lc;

	foreach(lc, ChangedRelations(parsetree))
	{
		Oid			relid = lfirst_oid(lc);

		if (!IsProtected(relid) || ProtectedDdlAllowed(relid) ||
			list_member_oid(ddl->targets, relid))
			continue;
		ddl->targets = lappend_oid(ddl->targets, relid);
		ddl->columns_before = lappend(ddl->columns_before, ColumnsJson(relid));
		/* column roles follow their columns through renames and drops */
		if (ddl->registry == NULL &&
			(IsA(parsetree, AlterTableStmt) || IsA(parsetree, RenameStmt)))
			ddl->registry = RegistryRemember(RegistryRootOf(relid));
	}
}

void
ProtectedDdlBegin(PlannedStmt *pstmt, const char *queryString,
				  ProcessUtilityContext context, ProtectedDdl *ddl)
{
	Node	   *parsetree = pstmt->utilityStmt;

	memset(ddl, 0, sizeof(*ddl));
	if (LedgerGetOids(true) == NULL)
		return;

	/* the pieces of a statement are recorded with it, not alone */
	if (context != PROCESS_UTILITY_SUBCOMMAND)
		NoteTargets(parsetree, ddl);
	if (ddl->targets != NIL)
	{
		ddl->command = CreateCommandName(parsetree);
		ddl->statement = StatementText(pstmt, queryString);
	}

	/* last: nothing above may fail with the count raised */
	ddl->reads_rows = ReadsProtectedRows(parsetree);
	if (ddl->reads_rows)
		ddl_reading_rows++;
}

/* One "ddl" event per protected table the statement changed. */
static void
RecordDdl(ProtectedDdl *ddl)
{
	ListCell   *lc;
	ListCell   *bc;

	forboth(lc, ddl->targets, bc, ddl->columns_before)
	{
		Oid			relid = lfirst_oid(lc);
		LedgerRecord rec = {0};
		StringInfoData meta;

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
			continue;
		initStringInfo(&meta);
		appendStringInfoString(&meta, "{\"command\": ");
		escape_json(&meta, ddl->command);
		appendStringInfoString(&meta, ", \"statement\": ");
		if (ddl->statement)
			escape_json(&meta, ddl->statement);
		else
			appendStringInfoString(&meta, "null");
		appendStringInfo(&meta, ", \"columns_before\": %s, \"columns_after\": %s, \"by\": ",
						 (char *) lfirst(bc), ColumnsJson(relid));
		escape_json(&meta, GetUserNameFromId(GetUserId(), false));
		appendStringInfoChar(&meta, '}');

		rec.op = "EVENT";
		rec.event = "ddl";
		rec.entity_type = "table";
		rec.entity_id = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												   get_rel_name(relid));
		rec.metadata = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(meta.data)));
		(void) LedgerAppend(&rec);
	}
	WriterFlushAll();
}

void
ProtectedDdlDone(ProtectedDdl *ddl)
{
	if (ddl->reads_rows)
	{
		ddl_reading_rows--;
		ddl->reads_rows = false;
	}
	if (ddl->registry != NULL)
		RegistryFollowColumns(ddl->registry);
	if (ddl->targets != NIL)
	{
		CommandCounterIncrement();
		RecordDdl(ddl);
	}
}

/*
 * An error raised while DDL read every tenant's rows may quote one (a
 * duplicate key, a value that did not convert): data exceptions and
 * integrity violations lose their text, keeping their SQLSTATE.  Called in
 * PG_CATCH, in a memory context other than ErrorContext; returns when the
 * error is to be re-thrown as it is.
 */
void
ProtectedDdlFailed(ProtectedDdl *ddl)
{
	ErrorData  *edata;
	int			class;

	if (!ddl->reads_rows)
		return;
	ddl_reading_rows--;
	ddl->reads_rows = false;

	edata = CopyErrorData();
	class = ERRCODE_TO_CATEGORY(edata->sqlerrcode);
	if (class != ERRCODE_DATA_EXCEPTION && class != ERRCODE_INTEGRITY_CONSTRAINT_VIOLATION)
		return;
	FlushErrorState();
	edata->message = pstrdup("the statement failed on a row of a protected table");
	edata->detail = pstrdup("The error's own text could show another tenant's data, so it is withheld; its SQLSTATE is kept.");
	edata->detail_log = NULL;
	edata->hint = pstrdup("Find the row under each tenant's context, or read the server log as a superuser.");
	edata->context = NULL;
	edata->internalquery = NULL;
	edata->schema_name = edata->table_name = edata->column_name = NULL;
	edata->datatype_name = edata->constraint_name = NULL;
	ReThrowError(edata);
}

/* --- object access ---------------------------------------------------------------- */

/* The table and name of a policy, by its oid. */
static bool
PolicyById(Oid policy, Oid *relid, char **name)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_pg_policy_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(policy));
	scan = systable_beginscan(rel, PolicyOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_policy pol = (Form_pg_policy) GETSTRUCT(tup);

		*relid = pol->polrelid;
		*name = pstrdup(NameStr(pol->polname));
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

void
ProtectedDropCheck(Oid classId, Oid objectId, int subId)
{
	if (classId == RelationRelationId)
	{
		char	   *tenant;
		char	   *column;

		/* a session's temporary tables are never protected, and must go at its end */
		if (get_rel_persistence(objectId) == RELPERSISTENCE_TEMP ||
			ProtectedDdlAllowed(objectId) || !IsProtected(objectId))
			return;
		if (subId == 0)
			RefuseProtectedDrop(objectId);
		tenant = TenantColumnOf(objectId);
		column = get_attname(objectId, subId, true);
		if (tenant != NULL && column != NULL && strcmp(tenant, column) == 0)
			RefuseChange(objectId, "dropping the tenant column",
						 "The tenant column carries the table's row level security and the tenant of every entry.",
						 "Keep the column; to stop protecting the table use autora.unprotect(table, reason).");
	}
	else if (classId == PolicyRelationId)
	{
		Oid			relid;
		char	   *name;

		/* however it is reached: DROP ... CASCADE of the table, a column, a type */
		if (PolicyById(objectId, &relid, &name) && IsAutoraPolicy(relid, name))
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("dropping autora policy %s of protected table \"%s\" is not allowed",
							name, get_rel_name(relid)),
					 errdetail("The statement would drop the policy, with the table, its tenant column or an object the policy depends on; the policy keeps each store's rows to its own sessions."),
					 errhint("Remove protection first with autora.unprotect(table, reason), which is recorded in the ledger.")));
	}
}

void
ProtectedFunctionCheck(Oid funcid)
{
	HeapTuple	tup;
	Oid			owner;

	if (ddl_reading_rows == 0)
		return;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return;
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	if (!superuser_arg(owner))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("function %s cannot run over the rows of a protected table", get_func_name(funcid)),
				 errdetail("This statement evaluates expressions over every tenant's rows; only functions owned by a superuser may run there."),
				 errhint("Use built-in functions, have a superuser own the function, or unprotect the table first (recorded).")));
}
