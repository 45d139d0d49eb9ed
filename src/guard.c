/*-------------------------------------------------------------------------
 * guard.c
 *	  Hooks that keep the ledger append-only and protected tables protected,
 *	  for every role, superusers included.
 *
 *	  ProcessUtility   refuses TRUNCATE / COPY FROM / ALTER / DROP / RENAME
 *	                   of ledger relations and their indexes, changes to the
 *	                   autora triggers of protected tables, ALTER EXTENSION
 *	                   ... DROP and DROP EXTENSION while the ledger holds
 *	                   entries; it runs before PostgreSQL's own checks so the
 *	                   refusal and its SQLSTATE are ours.
 *	  ExecutorStart    refuses any plan that writes a ledger relation
 *	                   (INSERT, UPDATE, DELETE, MERGE, data-modifying CTEs).
 *	                   DDL on anything else in schema autora (functions,
 *	                   views, sequences: replacing capture_row would switch
 *	                   capture off) is refused outside the extension's own
 *	                   scripts, and so is dropping a protected table.
 *	  ExecutorCheckPerms  refuses protected tables to sessions without a
 *	                   context (ZA001), even when the table is empty.
 *	  planner          refuses WITH HOLD cursors over protected tables.
 *	  object_access    refuses the drop of a ledger relation or a protected
 *	                   table however it is reached (DROP SCHEMA ... CASCADE,
 *	                   DROP OWNED).
 *
 * capture and the sealer write heap and indexes directly and never meet
 * these hooks, so there is no bypass for SQL.  The one exception is restore:
 * a superuser with autora.restore_mode on may load an empty ledger relation.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_trigger.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/defrem.h"
#include "commands/tablespace.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "tcop/pquery.h"
#include "utils/portal.h"
#include "utils/snapmgr.h"

#include "autora_audit.h"
#include "context.h"
#include "database_commands.h"
#include "guard.h"
#include "objects.h"
#include "protected_ddl.h"
#include "registry.h"
#include "restore.h"
#include "sealer.h"
#include "writer.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static ExecutorCheckPerms_hook_type prev_ExecutorCheckPerms = NULL;
static planner_hook_type prev_planner = NULL;
static ExecutorRun_hook_type prev_ExecutorRun = NULL;

/* DROP EXTENSION of an empty ledger is under way */
static bool extension_drop_allowed = false;

/* --- refusals ------------------------------------------------------------- */

static void
RefuseLedger(const char *action, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s of ledger relation \"%s\" is not allowed", action, get_rel_name(relid)),
			 errdetail("The autora audit ledger is append-only for every role, superusers included."),
			 errhint("Entries are added only by changes to protected tables and by autora.log_event(); read them through the autora views.")));
}

static void
RefuseExtension(const char *action)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed while the autora ledger holds entries", action),
			 errdetail("Dropping the extension would drop the audit ledger."),
			 errhint("Keep the extension installed: the ledger cannot be dropped while it holds entries.")));
}

/* Loading data into a ledger relation: the one legitimate case is a restore. */
static void
RefuseLedgerLoad(const char *action, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s of ledger relation \"%s\" is not allowed", action, get_rel_name(relid)),
			 errdetail("The autora audit ledger is append-only for every role, superusers included; only an empty ledger relation may be loaded, by a restore."),
			 errhint("To restore a dump, a superuser runs the restore with autora.restore_mode = on (PGOPTIONS='-c autora.restore_mode=on'), into a database whose ledger is empty.")));
}

/* The registry of protected tables changes only through protect()/unprotect(). */
static void
RefuseRegistry(const char *action, Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s of \"%s\" is not allowed", action, get_rel_name(relid)),
			 errdetail("The registry of protected tables decides which tables are protected; a direct change would remove protection without a record."),
			 errhint("Use autora.protect() or autora.unprotect(table, reason), which are recorded in the ledger.")));
}

/* --- lookups -------------------------------------------------------------- */

static bool
IsRegistryRelation(Oid relid)
{
	const AutoraOids *oids;

	if (!OidIsValid(relid) || (oids = AutoraGetOids(true)) == NULL)
		return false;
	return relid == oids->registry || relid == oids->registry_schemas ||
		relid == oids->xid_base || relid == oids->restore_state;
}

/* Do the ledger relations (or their indexes) sit in this tablespace? */
static bool
LedgerInTablespace(Oid tablespace, List *roles)
{
	const AutoraOids *oids = AutoraGetOids(true);
	Oid			rels[3];

	if (oids == NULL)
		return false;
	rels[0] = oids->ledger;
	rels[1] = oids->blocks;
	rels[2] = oids->vault;
	for (int i = 0; i < lengthof(rels); i++)
	{
		Relation	rel = relation_open(rels[i], AccessShareLock);
		List	   *indexes = RelationGetIndexList(rel);
		ListCell   *lc;
		bool		owned = roles == NIL;

		foreach(lc, roles)
			owned |= get_rolespec_oid(lfirst(lc), true) == rel->rd_rel->relowner;
		relation_close(rel, AccessShareLock);
		if (!owned)
			continue;
		indexes = lappend_oid(indexes, rels[i]);
		foreach(lc, indexes)
		{
			Oid			space = get_rel_tablespace(lfirst_oid(lc));

			if ((OidIsValid(space) ? space : MyDatabaseTableSpace) == tablespace)
				return true;
		}
	}
	return false;
}

/*
 * Does the ledger hold entries (DROP EXTENSION is refused then)?  Buffered
 * ones of this transaction count.
 */
static bool
LedgerHasEntries(void)
{
	const AutoraOids *oids = AutoraGetOids(true);
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	if (oids == NULL)
		return false;
	WriterFlushAll();
	/* inside a subtransaction, its ancestors' entries may still be buffered */
	if (WriterHasBuffered(oids->ledger))
		return true;
	rel = table_open(oids->ledger, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, GetLatestSnapshot(), 0, NULL);
	found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return found;
}

/* Restore: a superuser in restore mode may load an empty ledger relation. */
static bool
RestoreAllowed(Oid relid)
{
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		empty;

	if (!autora_restore_mode || !superuser())
		return false;
	/* the marker of a restore is autora's to write, never a dump's */
	if (relid == AutoraGetOids(false)->restore_state)
		return false;
	rel = table_open(relid, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, GetLatestSnapshot(), 0, NULL);
	empty = !table_scan_getnextslot(scan, ForwardScanDirection, slot);
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	/* sealing waits for autora.restore_finish() (loading the xid base is a restore too) */
	if (empty && (IsLedgerRelation(relid) || relid == AutoraGetOids(false)->xid_base))
		RestoreNoteLoad();
	return empty;
}

/*
 * Is the object in schema autora, outside the extension's own scripts?
 * pg_restore, run by a superuser in restore mode, recreates ownership of
 * the chain sequences; the ledger relations stay guarded even then.
 */
static bool
InAutoraSchema(Oid nsp)
{
	const AutoraOids *oids = AutoraGetOids(true);

	return oids != NULL && OidIsValid(nsp) && nsp == oids->namespace && !CreatingAutora() &&
		!(autora_restore_mode && superuser());
}

static bool
FunctionInAutoraSchema(ObjectType type, ObjectWithArgs *func)
{
	Oid			funcid = LookupFuncWithArgs(type, func, true);

	return OidIsValid(funcid) && InAutoraSchema(get_func_namespace(funcid));
}

static bool
RelationInAutoraSchema(Oid relid)
{
	return OidIsValid(relid) && InAutoraSchema(get_rel_namespace(relid));
}

static void
RefuseAutoraObject(const char *action, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s of autora object \"%s\" is not allowed", action, name),
			 errdetail("The functions, views and tables of schema autora enforce capture and tenancy; changing them would switch that off."),
			 errhint("Upgrade the extension with ALTER EXTENSION autora_audit UPDATE instead.")));
}

static bool
IsFunctionType(ObjectType type)
{
	return type == OBJECT_FUNCTION || type == OBJECT_PROCEDURE ||
		type == OBJECT_ROUTINE || type == OBJECT_AGGREGATE;
}

static bool
IsAutoraName(const char *name, const char *expected)
{
	return name != NULL && strcmp(name, expected) == 0;
}

/*
 * A DBA may index the ledger's columns for queries; an index that could
 * fail an insert (UNIQUE, exclusion) or run code in every capture
 * (expressions, predicates) would break or slow capture, and is refused.
 */
static void
GuardLedgerIndex(IndexStmt *stmt, Oid relid)
{
	ListCell   *lc;
	bool		plain = !stmt->unique && !stmt->primary && !stmt->isconstraint &&
		stmt->excludeOpNames == NIL && stmt->whereClause == NULL;

	/* an operator class of its own would run its functions in every capture, or in the sealer */
	foreach(lc, stmt->indexParams)
		plain &= ((IndexElem *) lfirst(lc))->expr == NULL &&
			((IndexElem *) lfirst(lc))->opclass == NIL;
	foreach(lc, stmt->indexIncludingParams)
		plain &= ((IndexElem *) lfirst(lc))->expr == NULL;
	if (!plain)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("this index on ledger relation \"%s\" is not allowed", get_rel_name(relid)),
				 errdetail("A unique or exclusion index could refuse an entry, and an expression, a predicate or an operator class would run code in every capture or seal round."),
				 errhint("Index plain columns with their default operator classes, without UNIQUE, expressions or WHERE.")));
}

/* The indexes the extension's script creates: the sealer and verify need them. */
static bool
IsLedgerOwnIndex(Oid relid)
{
	static const char *const own[] = {
		"ledger_id_xid_idx", "ledger_blocks_pkey", "ledger_blocks_chain_key",
		"pii_vault_entry_idx"
	};
	const AutoraOids *oids = AutoraGetOids(true);
	char	   *name;

	if (oids == NULL || get_rel_relkind(relid) != RELKIND_INDEX ||
		get_rel_namespace(relid) != oids->namespace)
		return false;
	name = get_rel_name(relid);
	for (int i = 0; i < lengthof(own); i++)
		if (strcmp(name, own[i]) == 0)
			return true;
	return false;
}

/*
 * An object tied to another extension (a member, or DEPENDS ON EXTENSION)
 * is dropped with it, by a DROP EXTENSION that names no autora object:
 * a protected table, an autora trigger or policy, anything of schema autora
 * or a ledger index must not be tied so.
 */
static void
GuardTiedToExtension(ObjectAddress address, Relation rel, const char *action)
{
	const AutoraOids *oids = AutoraGetOids(true);
	Oid			relid = InvalidOid;
	bool		tied;

	if (oids == NULL || !OidIsValid(address.objectId))
		return;
	if (address.classId == RelationRelationId)
		relid = get_rel_relkind(address.objectId) == RELKIND_INDEX ?
			IndexGetRelation(address.objectId, true) : address.objectId;
	else if (rel != NULL)
		relid = RelationGetRelid(rel);	/* a trigger's or a policy's table */
	tied = (OidIsValid(relid) && (IsProtected(relid) || IsLedgerRelation(relid) ||
								  get_rel_namespace(relid) == oids->namespace)) ||
		get_object_namespace(&address) == oids->namespace;
	if (tied)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s of %s is not allowed", action, getObjectDescription(&address, false)),
				 errdetail("Dropping that extension would drop it too, without the guards of autora_audit."),
				 errhint("Keep autora's objects and protected tables out of other extensions.")));
}

/* --- utility commands ----------------------------------------------------- */

/*
 * DROP of ledger relations, their indexes, autora's functions, the registry
 * or schema autora, and of extension autora_audit while the ledger holds
 * entries.
 */
static void
GuardDrop(DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		Node	   *object = lfirst(lc);

		switch (stmt->removeType)
		{
			case OBJECT_TABLE:
			case OBJECT_INDEX:
			case OBJECT_VIEW:
			case OBJECT_SEQUENCE:
			case OBJECT_MATVIEW:
				{
					Oid			relid = RelidOfNames((List *) object);

					/* a DBA's own index on the ledger may go again */
					if (stmt->removeType == OBJECT_INDEX && IsLedgerRelation(relid) &&
						!IsLedgerOwnIndex(relid))
						break;
					if (IsLedgerRelation(relid))
						RefuseLedger("DROP", relid);
					if (RelationInAutoraSchema(relid))
						RefuseAutoraObject("DROP", get_rel_name(relid));
					break;
				}
			case OBJECT_FUNCTION:
			case OBJECT_PROCEDURE:
			case OBJECT_ROUTINE:
			case OBJECT_AGGREGATE:
				if (FunctionInAutoraSchema(stmt->removeType, (ObjectWithArgs *) object))
					RefuseAutoraObject("DROP", NameListToString(((ObjectWithArgs *) object)->objname));
				break;
			case OBJECT_EXTENSION:
				if (IsAutoraName(strVal(object), "autora_audit") && LedgerHasEntries())
					RefuseExtension("DROP EXTENSION autora_audit");
				break;
			case OBJECT_SCHEMA:
				if (IsAutoraName(strVal(object), "autora") && AutoraGetOids(true) != NULL)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("DROP SCHEMA autora is not allowed"),
							 errdetail("The schema holds the audit ledger."),
							 errhint("The schema belongs to extension autora_audit.")));
				break;
			default:
				break;
		}
	}
}

/* ALTER TABLE of a ledger relation, or INHERIT from one. */
static void
GuardAlterTable(AlterTableStmt *stmt)
{
	Oid			relid = RelidOf(stmt->relation);
	ListCell   *lc;

	if (!OidIsValid(relid))
		return;
	if (IsLedgerRelation(relid))
		RefuseLedger("ALTER", relid);
	/* a child of the ledger would show its rows in SELECT ... FROM autora.ledger */
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AddInherit &&
			IsLedgerRelation(RelidOf((RangeVar *) cmd->def)))
			RefuseLedger("INHERIT", RelidOf((RangeVar *) cmd->def));
	}
	if (RelationInAutoraSchema(relid))
		RefuseAutoraObject("ALTER", get_rel_name(relid));
}

/* RENAME of schema autora, its functions or a ledger relation. */
static void
GuardRename(RenameStmt *stmt)
{
	Oid			relid;

	switch (stmt->renameType)
	{
		case OBJECT_SCHEMA:
			if (IsAutoraName(stmt->subname, "autora") && AutoraGetOids(true) != NULL)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("renaming schema autora is not allowed"),
						 errhint("The schema belongs to extension autora_audit.")));
			break;
		case OBJECT_FUNCTION:
		case OBJECT_PROCEDURE:
		case OBJECT_ROUTINE:
		case OBJECT_AGGREGATE:
			if (FunctionInAutoraSchema(stmt->renameType, (ObjectWithArgs *) stmt->object))
				RefuseAutoraObject("RENAME", NameListToString(((ObjectWithArgs *) stmt->object)->objname));
			break;
		default:
			relid = RelidOf(stmt->relation);
			if (IsLedgerRelation(relid))
				RefuseLedger("RENAME", relid);
			if (RelationInAutoraSchema(relid))
				RefuseAutoraObject("RENAME", get_rel_name(relid));
			break;
	}
}

static void
GuardTruncate(TruncateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->relations)
	{
		Oid			relid = RelidOf(lfirst(lc));

		if (IsLedgerRelation(relid))
			RefuseLedger("TRUNCATE", relid);
		if (IsRegistryRelation(relid))
			RefuseRegistry("TRUNCATE", relid);
	}
}

/* COPY FROM into the ledger or the registry: only an empty one, in a restore */
static void
GuardCopy(CopyStmt *stmt)
{
	Oid			relid = RelidOf(stmt->relation);

	if (stmt->is_from && IsLedgerRelation(relid) && !RestoreAllowed(relid))
		RefuseLedgerLoad("COPY FROM", relid);
	if (stmt->is_from && IsRegistryRelation(relid) && !RestoreAllowed(relid))
		RefuseRegistry("COPY FROM", relid);
}

static void
GuardIndex(IndexStmt *stmt)
{
	Oid			relid = RelidOf(stmt->relation);

	if (IsLedgerRelation(relid))
		GuardLedgerIndex(stmt, relid);
	else if (RelationInAutoraSchema(relid))
		RefuseAutoraObject("CREATE INDEX on", get_rel_name(relid));
}

static void
GuardStatistics(CreateStatsStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->relations)
	{
		Oid			relid = IsA(lfirst(lc), RangeVar) ? RelidOf(lfirst(lc)) : InvalidOid;

		if (IsLedgerRelation(relid))
			RefuseLedger("CREATE STATISTICS on", relid);
		if (RelationInAutoraSchema(relid))
			RefuseAutoraObject("CREATE STATISTICS on", get_rel_name(relid));
	}
}

/* ALTER ... ALL IN TABLESPACE would move the ledger, which ALTER may not */
static void
GuardMoveAll(AlterTableMoveAllStmt *stmt)
{
	Oid			space = get_tablespace_oid(stmt->orig_tablespacename, true);

	if (OidIsValid(space) && LedgerInTablespace(space, stmt->roles))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("ALTER ... ALL IN TABLESPACE would move the autora ledger relations"),
				 errdetail("The ledger relations cannot be altered, moved included."),
				 errhint("Name the relations to move, or OWNED BY the roles whose relations move.")));
}

static void
GuardSetSchema(AlterObjectSchemaStmt *stmt)
{
	Oid			relid = RelidOf(stmt->relation);

	if (IsLedgerRelation(relid))
		RefuseLedger("ALTER ... SET SCHEMA", relid);
	if (RelationInAutoraSchema(relid))
		RefuseAutoraObject("ALTER ... SET SCHEMA", get_rel_name(relid));
	if (IsFunctionType(stmt->objectType) &&
		FunctionInAutoraSchema(stmt->objectType, (ObjectWithArgs *) stmt->object))
		RefuseAutoraObject("ALTER ... SET SCHEMA",
						   NameListToString(((ObjectWithArgs *) stmt->object)->objname));
}

static void
GuardAlterOwner(AlterOwnerStmt *stmt)
{
	if (IsFunctionType(stmt->objectType) &&
		FunctionInAutoraSchema(stmt->objectType, (ObjectWithArgs *) stmt->object))
		RefuseAutoraObject("ALTER ... OWNER",
						   NameListToString(((ObjectWithArgs *) stmt->object)->objname));
}

/* Replacing autora's code (capture_row, say) would switch capture off. */
static void
GuardCreateFunction(CreateFunctionStmt *stmt)
{
	char	   *name;

	if (InAutoraSchema(QualifiedNameGetCreationNamespace(stmt->funcname, &name)))
		RefuseAutoraObject(stmt->replace ? "CREATE OR REPLACE FUNCTION" : "CREATE FUNCTION", name);
}

static void
GuardCreateView(ViewStmt *stmt)
{
	if (InAutoraSchema(RangeVarGetCreationNamespace(stmt->view)))
		RefuseAutoraObject(stmt->replace ? "CREATE OR REPLACE VIEW" : "CREATE VIEW",
						   stmt->view->relname);
}

static void
GuardCreateTrigger(CreateTrigStmt *stmt)
{
	Oid			relid = RelidOf(stmt->relation);

	if (IsLedgerRelation(relid))
		RefuseLedger("CREATE TRIGGER", relid);
	if (RelationInAutoraSchema(relid))
		RefuseAutoraObject("CREATE TRIGGER on", get_rel_name(relid));
}

static void
GuardCreatePolicy(CreatePolicyStmt *stmt)
{
	Oid			relid = RelidOf(stmt->table);

	if (IsLedgerRelation(relid) || IsRegistryRelation(relid))
		RefuseLedger("CREATE POLICY on", relid);
	if (RelationInAutoraSchema(relid))
		RefuseAutoraObject("CREATE POLICY on", get_rel_name(relid));
}

/* a child of the ledger would show its rows in SELECT ... FROM autora.ledger */
static void
GuardInherits(CreateStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->inhRelations)
	{
		Oid			relid = RelidOf(lfirst(lc));

		if (IsLedgerRelation(relid))
			RefuseLedger("INHERITS", relid);
	}
}

static void
GuardRule(RuleStmt *stmt)
{
	Oid			relid = RelidOf(stmt->relation);

	if (IsLedgerRelation(relid))
		RefuseLedger("CREATE RULE", relid);
	if (RelationInAutoraSchema(relid))
		RefuseAutoraObject("CREATE RULE on", get_rel_name(relid));
}

/* ALTER EXTENSION ... ADD / DROP: autora's members stay; nothing joins another extension to drop with it */
static void
GuardExtensionContents(AlterExtensionContentsStmt *stmt)
{
	Relation	rel = NULL;

	if (IsAutoraName(stmt->extname, "autora_audit"))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("changing the members of extension autora_audit is not allowed"),
				 errdetail("Detaching a member would let it be dropped with the protection it gives.")));
	/* another extension's member goes with that extension, unguarded */
	if (stmt->action > 0)
	{
		ObjectAddress address = get_object_address(stmt->objtype, copyObject(stmt->object),
												   &rel, AccessShareLock, true);

		GuardTiedToExtension(address, rel, "ALTER EXTENSION ... ADD");
	}
	if (rel != NULL)
		relation_close(rel, AccessShareLock);
}

/*
 * ALTER ... DEPENDS ON EXTENSION would let another extension's drop take
 * the object along, unguarded.
 */
static void
GuardDependsOnExtension(AlterObjectDependsStmt *stmt)
{
	Relation	rel = NULL;

	if (!stmt->remove)
	{
		ObjectAddress address = get_object_address_rv(stmt->objectType, stmt->relation,
													  list_copy((List *) stmt->object),
													  &rel, AccessShareLock, true);

		GuardTiedToExtension(address, rel, "ALTER ... DEPENDS ON EXTENSION");
	}
	if (rel != NULL)
		relation_close(rel, AccessShareLock);
}

/*
 * The utility guards: each statement kind that could touch the ledger, the
 * registry or autora's own objects has its check; then the owner's DDL on
 * protected tables (protected_ddl.c).
 */
static void
GuardUtility(Node *parsetree)
{
	Oid			relid;

	switch (nodeTag(parsetree))
	{
		case T_TruncateStmt:
			GuardTruncate((TruncateStmt *) parsetree);
			break;
		case T_CopyStmt:
			GuardCopy((CopyStmt *) parsetree);
			break;
		case T_IndexStmt:
			GuardIndex((IndexStmt *) parsetree);
			break;
		case T_CreateStatsStmt:
			GuardStatistics((CreateStatsStmt *) parsetree);
			break;
		case T_AlterTableMoveAllStmt:
			GuardMoveAll((AlterTableMoveAllStmt *) parsetree);
			break;
		case T_DropStmt:
			GuardDrop((DropStmt *) parsetree);
			break;
		case T_AlterTableStmt:
			GuardAlterTable((AlterTableStmt *) parsetree);
			break;
		case T_RenameStmt:
			GuardRename((RenameStmt *) parsetree);
			break;
		case T_AlterObjectSchemaStmt:
			GuardSetSchema((AlterObjectSchemaStmt *) parsetree);
			break;
		case T_AlterOwnerStmt:
			GuardAlterOwner((AlterOwnerStmt *) parsetree);
			break;
		case T_AlterFunctionStmt:
			if (FunctionInAutoraSchema(((AlterFunctionStmt *) parsetree)->objtype,
									   ((AlterFunctionStmt *) parsetree)->func))
				RefuseAutoraObject("ALTER FUNCTION",
								   NameListToString(((AlterFunctionStmt *) parsetree)->func->objname));
			break;
		case T_CreateFunctionStmt:
			GuardCreateFunction((CreateFunctionStmt *) parsetree);
			break;
		case T_ViewStmt:
			GuardCreateView((ViewStmt *) parsetree);
			break;
		case T_CreateTrigStmt:
			GuardCreateTrigger((CreateTrigStmt *) parsetree);
			break;
		case T_CreatePolicyStmt:
			GuardCreatePolicy((CreatePolicyStmt *) parsetree);
			break;
		case T_AlterSeqStmt:
			relid = RelidOf(((AlterSeqStmt *) parsetree)->sequence);
			if (RelationInAutoraSchema(relid))
				RefuseAutoraObject("ALTER SEQUENCE", get_rel_name(relid));
			break;
		case T_CreateStmt:
			GuardInherits((CreateStmt *) parsetree);
			break;
		case T_RuleStmt:
			GuardRule((RuleStmt *) parsetree);
			break;
		case T_AlterExtensionContentsStmt:
			GuardExtensionContents((AlterExtensionContentsStmt *) parsetree);
			break;
		case T_AlterObjectDependsStmt:
			GuardDependsOnExtension((AlterObjectDependsStmt *) parsetree);
			break;
		default:
			break;
	}
	ProtectedDdlCheck(parsetree);
}

/*
 * > 0 while EXPLAIN ANALYZE runs: its counts ("Rows Removed by Filter")
 * include the rows row level security removed, so a session could read
 * other stores' indexed values one comparison at a time.
 */
static int	explain_analyze_depth = 0;

/* Is this EXPLAIN with ANALYZE on? */
static bool
IsExplainAnalyze(Node *parsetree)
{
	ListCell   *lc;

	if (!IsA(parsetree, ExplainStmt))
		return false;
	foreach(lc, ((ExplainStmt *) parsetree)->options)
	{
		DefElem    *opt = lfirst(lc);

		if (strcmp(opt->defname, "analyze") == 0)
			return defGetBoolean(opt);
	}
	return false;
}

/*
 * Every utility statement: the guards first, then the statement, with the
 * owner's DDL on protected tables watched and recorded (protected_ddl.c)
 * and database commands prepared (database_commands.c).
 */
static void
autora_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *volatile parsetree = pstmt->utilityStmt;
	PlannedStmt *volatile run;
	bool		run_read_only = readOnlyTree;
	volatile bool dropping_extension = false;
	volatile Oid paused_db;
	ProtectedDdl ddl = {0};
	MemoryContext caller_cxt = CurrentMemoryContext;
	volatile bool explaining = IsExplainAnalyze(pstmt->utilityStmt);

	if (!IsBinaryUpgrade)
		GuardUtility(parsetree);

	run = DatabaseCommandRewrite(pstmt, &run_read_only);
	parsetree = run->utilityStmt;

	/* only a DROP EXTENSION naming autora_audit may drop autora's objects */
	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) parsetree)->objects)
			dropping_extension |= IsAutoraName(strVal(lfirst(lc)), "autora_audit");
	}
	paused_db = DatabaseCommandPause(parsetree);

	if (!IsBinaryUpgrade)
		ProtectedDdlBegin(pstmt, queryString, context, &ddl);
	if (explaining)
		explain_analyze_depth++;
	PG_TRY();
	{
		extension_drop_allowed = dropping_extension;
		if (prev_ProcessUtility)
			prev_ProcessUtility(run, queryString, run_read_only, context,
								params, queryEnv, dest, qc);
		else
			standard_ProcessUtility(run, queryString, run_read_only, context,
									params, queryEnv, dest, qc);
	}
	PG_CATCH();
	{
		extension_drop_allowed = false;
		if (explaining)
			explain_analyze_depth--;
		if (OidIsValid(paused_db))
			SealerResumeDatabase(paused_db);
		MemoryContextSwitchTo(caller_cxt);
		ProtectedDdlFailed(&ddl);
		PG_RE_THROW();
	}
	PG_END_TRY();
	extension_drop_allowed = false;
	if (explaining)
		explain_analyze_depth--;
	if (OidIsValid(paused_db))
		SealerResumeDatabase(paused_db);
	ProtectedDdlDone(&ddl);
	DatabaseCommandDone(parsetree);
}

/* --- executor ------------------------------------------------------------- */

static const char *
CommandName(CmdType type)
{
	return type == CMD_INSERT ? "INSERT" :
		type == CMD_UPDATE ? "UPDATE" :
		type == CMD_DELETE ? "DELETE" :
		type == CMD_MERGE ? "MERGE" : "data-modifying WITH";
}

/*
 * > 0 while a WITH HOLD cursor's query is planned or runs: its rows outlive
 * the context, so nothing it calls may read a protected table (see
 * autora_planner for the tables it reads itself).
 */
static int	held_depth = 0;

/*
 * Plans that write a ledger relation or the registry are refused, whatever
 * role runs them and however they were reached (functions, rules, CTEs).
 */
static void
autora_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	ListCell   *lc;

	/* our own install script seeds the PII key */
	if (pstmt->resultRelations != NIL && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) &&
		!CreatingAutora())
	{
		foreach(lc, pstmt->resultRelations)
		{
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), pstmt->rtable);

			if (rte->rtekind != RTE_RELATION ||
				(!IsLedgerRelation(rte->relid) && !IsRegistryRelation(rte->relid)))
				continue;
			if (IsRegistryRelation(rte->relid) && RegistryWriteAllowed())
				continue;
			if (pstmt->commandType == CMD_INSERT && RestoreAllowed(rte->relid))
				continue;
			if (IsLedgerRelation(rte->relid))
			{
				if (pstmt->commandType == CMD_INSERT)
					RefuseLedgerLoad("INSERT", rte->relid);
				RefuseLedger(CommandName(pstmt->commandType), rte->relid);
			}
			if (IsRegistryRelation(rte->relid) && !RegistryWriteAllowed())
				RefuseRegistry(CommandName(pstmt->commandType), rte->relid);
		}
	}

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/*
 * A WITH HOLD cursor's rows are computed by FETCH, or all at once at commit
 * (PersistHoldablePortal); both run its query with the cursor as the active
 * portal.
 */
static void
autora_ExecutorRun(QueryDesc *queryDesc, ScanDirection direction, uint64 count,
				   bool execute_once)
{
	volatile bool held = ActivePortal != NULL && ActivePortal->queryDesc == queryDesc &&
		(ActivePortal->cursorOptions & CURSOR_OPT_HOLD);

	if (held)
		held_depth++;
	PG_TRY();
	{
		if (prev_ExecutorRun)
			prev_ExecutorRun(queryDesc, direction, count, execute_once);
		else
			standard_ExecutorRun(queryDesc, direction, count, execute_once);
	}
	PG_FINALLY();
	{
		if (held)
			held_depth--;
	}
	PG_END_TRY();
}

static void
RefuseHeldRows(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("WITH HOLD cursors over protected table \"%s\" are not allowed", get_rel_name(relid)),
			 errdetail("Held rows would outlive the session context that selected them, also when a function the cursor calls reads them."),
			 errhint("Use a cursor without HOLD inside the transaction.")));
}

/* --- permission check: no context, no access ------------------------------- */

/*
 * Runs at permission-check time, so a statement on a protected table fails
 * without a context even when the table is empty (a policy would only run
 * per row, and answer silently).  Roles that bypass RLS, and auditors that
 * only read, need no context.
 */
/* An auditor without a context reading sees every store's rows anyway. */
static bool
IsAuditorReading(RangeTblEntry *rte, Oid user)
{
	Oid			auditor = get_role_oid("autora_auditor", true);

	return !ContextCurrent()->present && (rte->requiredPerms & ~ACL_SELECT) == 0 &&
		OidIsValid(auditor) && has_privs_of_role(user, auditor);
}

static void
RequireContextFor(RangeTblEntry *rte)
{
	Oid			user = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();

	if (ContextCurrent()->present || has_bypassrls_privilege(user) || IsAuditorReading(rte, user))
		return;
	if (RelIsPlatformTable(rte->relid))
		NoContextError(psprintf("Changes to platform table \"%s\" are recorded with the actor of the session context.",
								get_rel_name(rte->relid)), NULL);
	NoContextError(psprintf("Rows of protected table \"%s\" are visible only to a session that has identified its tenant and actor.",
							get_rel_name(rte->relid)), NULL);
}

static void
RefuseExplainAnalyze(RangeTblEntry *rte)
{
	Oid			user = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();

	if (has_bypassrls_privilege(user) || IsAuditorReading(rte, user))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("EXPLAIN ANALYZE of protected table \"%s\" is not allowed", get_rel_name(rte->relid)),
			 errdetail("Its row counts include the rows row level security removed, which tells a session about other stores' rows."),
			 errhint("Use EXPLAIN without ANALYZE, or a role that bypasses row level security.")));
}

/*
 * At permission-check time: no context, no access to a protected table
 * (so also when it is empty); no WITH HOLD or EXPLAIN ANALYZE over one.
 */
static bool
autora_ExecutorCheckPerms(List *rangeTable, bool ereport_on_violation)
{
	ListCell   *lc;

	if (prev_ExecutorCheckPerms && !prev_ExecutorCheckPerms(rangeTable, ereport_on_violation))
		return false;
	foreach(lc, rangeTable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind != RTE_RELATION || rte->requiredPerms == 0 ||
			(rte->relkind != RELKIND_RELATION && rte->relkind != RELKIND_PARTITIONED_TABLE) ||
			!RelIsProtected(rte->relid))
			continue;
		if (RelIsPlatformTable(rte->relid))
		{
			/* shared by every store: anyone may read it, and writes name their actor */
			if ((rte->requiredPerms & (ACL_INSERT | ACL_UPDATE | ACL_DELETE)) != 0)
				RequireContextFor(rte);
		}
		else
		{
			if (held_depth > 0)
				RefuseHeldRows(rte->relid);
			if (explain_analyze_depth > 0)
				RefuseExplainAnalyze(rte);
			RequireContextFor(rte);
		}
	}
	return true;
}

/* --- planner: no WITH HOLD cursors over protected tables --------------------- */

/*
 * A WITH HOLD cursor keeps its rows after the transaction, so they outlive
 * the context that selected them and can be fetched under another one (or,
 * behind a pooler, by another client).  The planner sees the cursor options
 * and every relation the query reads, views expanded.
 */
static PlannedStmt *
autora_planner(Query *parse, const char *query_string, int cursorOptions,
			   ParamListInfo boundParams)
{
	PlannedStmt *volatile result;
	bool		held = (cursorOptions & CURSOR_OPT_HOLD) != 0;
	ListCell   *lc;

	/* functions evaluated while planning (constant folding) count as the cursor's */
	if (held)
		held_depth++;
	PG_TRY();
	{
		if (prev_planner)
			result = prev_planner(parse, query_string, cursorOptions, boundParams);
		else
			result = standard_planner(parse, query_string, cursorOptions, boundParams);
	}
	PG_FINALLY();
	{
		if (held)
			held_depth--;
	}
	PG_END_TRY();

	if (held)
		foreach(lc, result->rtable)
		{
			RangeTblEntry *rte = lfirst(lc);

			if (rte->rtekind == RTE_RELATION && RelIsProtected(rte->relid) &&
				!RelIsPlatformTable(rte->relid))
				RefuseHeldRows(rte->relid);
		}
	return result;
}

/* --- object access -------------------------------------------------------- */

/* The relation of an autora trigger, or InvalidOid for any other trigger. */
static Oid
AutoraTriggerRelation(Oid trigger_oid)
{
	Relation	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigger_oid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		if (IsAutoraTriggerFunction(trig->tgfoid))
			relid = trig->tgrelid;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return relid;
}

/*
 * Drops reached indirectly (DROP SCHEMA ... CASCADE, DROP OWNED, a
 * cascade from a type) of ledger relations and protected objects.
 */
static void
autora_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		!extension_drop_allowed && !IsBinaryUpgrade)
	{
		const AutoraOids *oids = AutoraGetOids(true);

		if (oids != NULL && (objectId == oids->ledger || objectId == oids->blocks ||
							 objectId == oids->vault))
			RefuseLedger("DROP", objectId);
	}

	/*
	 * A cascaded drop removes a table's triggers before the table, so the
	 * protected table is recognised by its autora triggers going.
	 */
	if (access == OAT_DROP && classId == TriggerRelationId &&
		!extension_drop_allowed && !IsBinaryUpgrade && AutoraGetOids(true) != NULL)
	{
		Oid			relid = AutoraTriggerRelation(objectId);

		/* a session's temporary tables must go at its end, whatever they carry */
		if (OidIsValid(relid) && !ProtectedDdlAllowed(relid) &&
			get_rel_persistence(relid) != RELPERSISTENCE_TEMP && IsProtected(relid))
			RefuseProtectedDrop(relid);
	}

	/* protected tables, their tenant column and policies, however dropped */
	if (access == OAT_DROP && (classId == RelationRelationId || classId == PolicyRelationId) &&
		!extension_drop_allowed && !IsBinaryUpgrade && AutoraGetOids(true) != NULL)
		ProtectedDropCheck(classId, objectId, subId);

	if (access == OAT_FUNCTION_EXECUTE && !IsBinaryUpgrade)
		ProtectedFunctionCheck(objectId);
}

/* Installs every hook of this file, chaining to those installed before. */
void
GuardInstallHooks(void)
{
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = autora_ProcessUtility;
	prev_ExecutorStart = ExecutorStart_hook;
	ExecutorStart_hook = autora_ExecutorStart;
	prev_object_access_hook = object_access_hook;
	object_access_hook = autora_object_access;
	prev_ExecutorCheckPerms = ExecutorCheckPerms_hook;
	ExecutorCheckPerms_hook = autora_ExecutorCheckPerms;
	prev_planner = planner_hook;
	planner_hook = autora_planner;
	prev_ExecutorRun = ExecutorRun_hook;
	ExecutorRun_hook = autora_ExecutorRun;
}
