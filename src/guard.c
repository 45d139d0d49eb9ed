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
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/indexing.h"
#include "catalog/pg_trigger.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "commands/defrem.h"
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
#include "utils/snapmgr.h"

#include "autora_audit.h"
#include "context.h"
#include "guard.h"
#include "relinfo.h"
#include "ledger.h"
#include "sealer.h"
#include "writer.h"

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ExecutorStart_hook_type prev_ExecutorStart = NULL;
static object_access_hook_type prev_object_access_hook = NULL;
static ExecutorCheckPerms_hook_type prev_ExecutorCheckPerms = NULL;
static planner_hook_type prev_planner = NULL;

/* relation whose autora objects protect()/unprotect() are changing */
static Oid	allowed_relid = InvalidOid;

/* DROP EXTENSION of an empty ledger is under way */
static bool extension_drop_allowed = false;

/*
 * Is relid the relation protect()/unprotect() is working on, or a member
 * of its partition / inheritance tree (whose cloned triggers go with it)?
 */
static bool
IsAllowedRelation(Oid relid)
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

void
GuardAllowRelationBegin(Oid relid)
{
	allowed_relid = relid;
}

void
GuardAllowRelationEnd(void)
{
	allowed_relid = InvalidOid;
}

bool
IsAutoraTriggerFunction(Oid funcid)
{
	const LedgerOids *oids = LedgerGetOids(true);
	char	   *name;
	bool		result;

	if (oids == NULL || get_func_namespace(funcid) != oids->namespace)
		return false;
	name = get_func_name(funcid);
	result = name != NULL &&
		(strcmp(name, "capture_row") == 0 || strcmp(name, "capture_truncate") == 0 ||
		 strcmp(name, "stamp_tenant") == 0 || strcmp(name, "flush_entries") == 0);
	return result;
}

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
RefuseExtension(const char *action)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s is not allowed while the autora ledger holds entries", action),
			 errdetail("Dropping the extension would drop the audit ledger."),
			 errhint("Keep the extension installed: the ledger cannot be dropped while it holds entries.")));
}

/* --- lookups -------------------------------------------------------------- */

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

static bool
IsProtected(Oid relid)
{
	return OidIsValid(relid) && get_rel_relkind(relid) != '\0' && RelIsProtected(relid);
}

/* Policies that autora.protect() creates are named autora_*. */
static bool
IsAutoraPolicy(Oid relid, const char *policy)
{
	return policy != NULL && strncmp(policy, "autora_", 7) == 0 &&
		!IsAllowedRelation(relid) && IsProtected(relid);
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

static bool
IsAutoraTrigger(Oid relid, const char *trigname)
{
	Relation	rel;
	bool		result = false;

	if (!OidIsValid(relid) || trigname == NULL || get_rel_relkind(relid) == '\0')
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

static bool
LedgerHasEntries(void)
{
	const LedgerOids *oids = LedgerGetOids(true);
	Relation	rel;
	TableScanDesc scan;
	TupleTableSlot *slot;
	bool		found;

	if (oids == NULL)
		return false;
	WriterFlushAll();
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
	rel = table_open(relid, AccessShareLock);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, GetLatestSnapshot(), 0, NULL);
	empty = !table_scan_getnextslot(scan, ForwardScanDirection, slot);
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
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
	const LedgerOids *oids = LedgerGetOids(true);

	return oids != NULL && OidIsValid(nsp) && nsp == oids->namespace && !creating_extension &&
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

static void
RefuseProtectedDrop(Oid relid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("dropping or detaching protected table \"%s\" is not allowed", get_rel_name(relid)),
			 errdetail("Its rows would leave the ledger's view without an entry."),
			 errhint("Remove protection first with autora.unprotect(table, reason), which is recorded in the ledger.")));
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

/* --- utility commands ----------------------------------------------------- */

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

					if (IsLedgerRelation(relid))
						RefuseLedger("DROP", relid);
					if (RelationInAutoraSchema(relid))
						RefuseAutoraObject("DROP", get_rel_name(relid));
					if (IsProtected(relid))
						RefuseProtectedDrop(relid);
					break;
				}
			case OBJECT_FUNCTION:
			case OBJECT_PROCEDURE:
			case OBJECT_ROUTINE:
			case OBJECT_AGGREGATE:
				if (FunctionInAutoraSchema(stmt->removeType, (ObjectWithArgs *) object))
					RefuseAutoraObject("DROP", NameListToString(((ObjectWithArgs *) object)->objname));
				break;
			case OBJECT_TRIGGER:
				{
					List	   *names = (List *) object;
					char	   *trigname = strVal(llast(names));
					Oid			relid = RelidOfNames(list_truncate(list_copy(names),
																   list_length(names) - 1));

					if (!IsAllowedRelation(relid) && IsAutoraTrigger(relid, trigname))
						RefuseTrigger("DROP", trigname, relid);
					break;
				}
			case OBJECT_POLICY:
				{
					List	   *names = (List *) object;
					char	   *policy = strVal(llast(names));
					Oid			relid = RelidOfNames(list_truncate(list_copy(names),
																   list_length(names) - 1));

					if (IsAutoraPolicy(relid, policy))
						RefusePolicy("DROP POLICY", policy, relid);
					break;
				}
			case OBJECT_EXTENSION:
				if (IsAutoraName(strVal(object), "autora_audit") && LedgerHasEntries())
					RefuseExtension("DROP EXTENSION autora_audit");
				break;
			case OBJECT_SCHEMA:
				if (IsAutoraName(strVal(object), "autora") && LedgerGetOids(true) != NULL)
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
	if (IsAllowedRelation(relid) || !IsProtected(relid))
		return;

	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

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
			default:
				break;
		}
	}
}

static void
GuardRename(RenameStmt *stmt)
{
	Oid			relid;

	switch (stmt->renameType)
	{
		case OBJECT_TRIGGER:
			relid = RelidOf(stmt->relation);
			if (!IsAllowedRelation(relid) && IsAutoraTrigger(relid, stmt->subname))
				RefuseTrigger("RENAME", stmt->subname, relid);
			break;
		case OBJECT_POLICY:
			relid = RelidOf(stmt->relation);
			if (IsAutoraPolicy(relid, stmt->subname))
				RefusePolicy("ALTER POLICY", stmt->subname, relid);
			break;
		case OBJECT_SCHEMA:
			if (IsAutoraName(stmt->subname, "autora") && LedgerGetOids(true) != NULL)
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
GuardUtility(Node *parsetree)
{
	ListCell   *lc;
	Oid			relid;

	switch (nodeTag(parsetree))
	{
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) parsetree)->relations)
			{
				relid = RelidOf(lfirst(lc));
				if (IsLedgerRelation(relid))
					RefuseLedger("TRUNCATE", relid);
			}
			break;
		case T_CopyStmt:
			{
				CopyStmt   *stmt = (CopyStmt *) parsetree;

				relid = RelidOf(stmt->relation);
				if (stmt->is_from && IsLedgerRelation(relid) && !RestoreAllowed(relid))
					RefuseLedger("COPY FROM", relid);
				break;
			}
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
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) parsetree;

				relid = RelidOf(stmt->relation);
				if (IsLedgerRelation(relid))
					RefuseLedger("ALTER ... SET SCHEMA", relid);
				if (RelationInAutoraSchema(relid))
					RefuseAutoraObject("ALTER ... SET SCHEMA", get_rel_name(relid));
				if (IsFunctionType(stmt->objectType) &&
					FunctionInAutoraSchema(stmt->objectType, (ObjectWithArgs *) stmt->object))
					RefuseAutoraObject("ALTER ... SET SCHEMA",
									   NameListToString(((ObjectWithArgs *) stmt->object)->objname));
				break;
			}
		case T_AlterOwnerStmt:
			{
				AlterOwnerStmt *stmt = (AlterOwnerStmt *) parsetree;

				if (IsFunctionType(stmt->objectType) &&
					FunctionInAutoraSchema(stmt->objectType, (ObjectWithArgs *) stmt->object))
					RefuseAutoraObject("ALTER ... OWNER",
									   NameListToString(((ObjectWithArgs *) stmt->object)->objname));
				break;
			}
		case T_AlterFunctionStmt:
			{
				AlterFunctionStmt *stmt = (AlterFunctionStmt *) parsetree;

				if (FunctionInAutoraSchema(stmt->objtype, stmt->func))
					RefuseAutoraObject("ALTER FUNCTION", NameListToString(stmt->func->objname));
				break;
			}
		case T_CreateFunctionStmt:
			{
				CreateFunctionStmt *stmt = (CreateFunctionStmt *) parsetree;
				char	   *name;

				if (InAutoraSchema(QualifiedNameGetCreationNamespace(stmt->funcname, &name)))
					RefuseAutoraObject(stmt->replace ? "CREATE OR REPLACE FUNCTION" : "CREATE FUNCTION", name);
				break;
			}
		case T_ViewStmt:
			{
				ViewStmt   *stmt = (ViewStmt *) parsetree;

				if (InAutoraSchema(RangeVarGetCreationNamespace(stmt->view)))
					RefuseAutoraObject(stmt->replace ? "CREATE OR REPLACE VIEW" : "CREATE VIEW",
									   stmt->view->relname);
				break;
			}
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *stmt = (CreateTrigStmt *) parsetree;

				relid = RelidOf(stmt->relation);
				if (IsLedgerRelation(relid))
					RefuseLedger("CREATE TRIGGER", relid);
				if (RelationInAutoraSchema(relid))
					RefuseAutoraObject("CREATE TRIGGER on", get_rel_name(relid));
				if (stmt->replace && !IsAllowedRelation(relid) &&
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
		case T_AlterSeqStmt:
			relid = RelidOf(((AlterSeqStmt *) parsetree)->sequence);
			if (RelationInAutoraSchema(relid))
				RefuseAutoraObject("ALTER SEQUENCE", get_rel_name(relid));
			break;
		case T_CreateStmt:
			foreach(lc, ((CreateStmt *) parsetree)->inhRelations)
			{
				relid = RelidOf(lfirst(lc));
				if (IsLedgerRelation(relid))
					RefuseLedger("INHERITS", relid);
			}
			break;
		case T_RuleStmt:
			relid = RelidOf(((RuleStmt *) parsetree)->relation);
			if (IsLedgerRelation(relid))
				RefuseLedger("CREATE RULE", relid);
			break;
		case T_AlterExtensionContentsStmt:
			if (IsAutoraName(((AlterExtensionContentsStmt *) parsetree)->extname, "autora_audit"))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("changing the members of extension autora_audit is not allowed"),
						 errdetail("Detaching a member would let it be dropped with the protection it gives.")));
			break;
		default:
			break;
	}
}

static bool
HasDefElem(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, name) == 0)
			return true;
	return false;
}

/* The database a database-level command needs free of connections. */
static Oid
DatabaseNeedingNoConnections(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			return get_database_oid(((DropdbStmt *) parsetree)->dbname, true);
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst(lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
					return get_database_oid(defGetString(opt), true);
			}
			return get_database_oid("template1", true);
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				return get_database_oid(((RenameStmt *) parsetree)->subname, true);
			return InvalidOid;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
					return get_database_oid(((AlterDatabaseStmt *) parsetree)->dbname, true);
			return InvalidOid;
		default:
			return InvalidOid;
	}
}

static void
autora_ProcessUtility(PlannedStmt *pstmt, const char *queryString,
					  bool readOnlyTree, ProcessUtilityContext context,
					  ParamListInfo params, QueryEnvironment *queryEnv,
					  DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *volatile parsetree = pstmt->utilityStmt;
	PlannedStmt *volatile run = pstmt;
	volatile bool run_read_only = readOnlyTree;
	volatile bool dropping_extension = false;
	volatile Oid paused_db;

	if (!IsBinaryUpgrade)
		GuardUtility(parsetree);

	/*
	 * PostgreSQL 15's default CREATE DATABASE strategy (wal_log) does not
	 * WAL-log the first nextval() of the copied sequences, so after a crash
	 * they can step back and hand out ledger ids twice; file_copy is safe.
	 */
	if (IsA(parsetree, CreatedbStmt) && !HasDefElem(((CreatedbStmt *) parsetree)->options, "strategy"))
	{
		CreatedbStmt *stmt;

		run = copyObject(pstmt);
		stmt = (CreatedbStmt *) run->utilityStmt;
		stmt->options = lappend(stmt->options,
								makeDefElem("strategy", (Node *) makeString("file_copy"), -1));
		parsetree = run->utilityStmt;
		run_read_only = false;
	}

	if (IsA(parsetree, DropStmt) && ((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION)
		dropping_extension = true;
	paused_db = DatabaseNeedingNoConnections(parsetree);
	if (OidIsValid(paused_db))
		SealerPauseDatabase(paused_db);

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
	PG_FINALLY();
	{
		extension_drop_allowed = false;
		if (OidIsValid(paused_db))
			SealerResumeDatabase(paused_db);
	}
	PG_END_TRY();

	/* the preparing session could not wake the sealer; the committer does */
	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		SealerWake();
}

/* --- executor ------------------------------------------------------------- */

static void
autora_ExecutorStart(QueryDesc *queryDesc, int eflags)
{
	PlannedStmt *pstmt = queryDesc->plannedstmt;
	ListCell   *lc;

	/* our own install script seeds the PII key */
	if (pstmt->resultRelations != NIL && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) &&
		!(creating_extension &&
		  CurrentExtensionObject == get_extension_oid("autora_audit", true)))
	{
		foreach(lc, pstmt->resultRelations)
		{
			RangeTblEntry *rte = rt_fetch(lfirst_int(lc), pstmt->rtable);

			if (rte->rtekind != RTE_RELATION || !IsLedgerRelation(rte->relid))
				continue;
			if (pstmt->commandType == CMD_INSERT && RestoreAllowed(rte->relid))
				continue;
			RefuseLedger(pstmt->commandType == CMD_INSERT ? "INSERT" :
						 pstmt->commandType == CMD_UPDATE ? "UPDATE" :
						 pstmt->commandType == CMD_DELETE ? "DELETE" :
						 pstmt->commandType == CMD_MERGE ? "MERGE" : "data-modifying WITH",
						 rte->relid);
		}
	}

	if (prev_ExecutorStart)
		prev_ExecutorStart(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* --- permission check: no context, no access ------------------------------- */

/*
 * Runs at permission-check time, so a statement on a protected table fails
 * without a context even when the table is empty (a policy would only run
 * per row, and answer silently).  Roles that bypass RLS, and auditors that
 * only read, need no context.
 */
static void
RequireContextFor(RangeTblEntry *rte)
{
	Oid			user = OidIsValid(rte->checkAsUser) ? rte->checkAsUser : GetUserId();
	Oid			auditor;

	if (ContextCurrent()->present || has_bypassrls_privilege(user))
		return;
	auditor = get_role_oid("autora_auditor", true);
	if ((rte->requiredPerms & ~ACL_SELECT) == 0 && OidIsValid(auditor) &&
		has_privs_of_role(user, auditor))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_AUTORA_NO_CONTEXT),
			 errmsg("no autora session context for protected table \"%s\"", get_rel_name(rte->relid)),
			 errdetail("Rows of protected tables are visible only to a session that has identified its tenant and actor."),
			 errhint("Call autora.set_context(token) at the start of the transaction.")));
}

static bool
autora_ExecutorCheckPerms(List *rangeTable, bool ereport_on_violation)
{
	ListCell   *lc;

	if (prev_ExecutorCheckPerms && !prev_ExecutorCheckPerms(rangeTable, ereport_on_violation))
		return false;
	foreach(lc, rangeTable)
	{
		RangeTblEntry *rte = lfirst(lc);

		if (rte->rtekind == RTE_RELATION && rte->requiredPerms != 0 &&
			(rte->relkind == RELKIND_RELATION || rte->relkind == RELKIND_PARTITIONED_TABLE) &&
			RelIsProtected(rte->relid))
			RequireContextFor(rte);
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
	PlannedStmt *result;
	ListCell   *lc;

	if (prev_planner)
		result = prev_planner(parse, query_string, cursorOptions, boundParams);
	else
		result = standard_planner(parse, query_string, cursorOptions, boundParams);

	if (cursorOptions & CURSOR_OPT_HOLD)
		foreach(lc, result->rtable)
		{
			RangeTblEntry *rte = lfirst(lc);

			if (rte->rtekind == RTE_RELATION && RelIsProtected(rte->relid))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("WITH HOLD cursors over protected table \"%s\" are not allowed",
								get_rel_name(rte->relid)),
						 errdetail("Held rows would outlive the session context that selected them."),
						 errhint("Use a cursor without HOLD inside the transaction.")));
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

static void
autora_object_access(ObjectAccessType access, Oid classId, Oid objectId,
					 int subId, void *arg)
{
	if (prev_object_access_hook)
		prev_object_access_hook(access, classId, objectId, subId, arg);

	if (access == OAT_DROP && classId == RelationRelationId && subId == 0 &&
		!extension_drop_allowed && !IsBinaryUpgrade)
	{
		const LedgerOids *oids = LedgerGetOids(true);

		if (oids != NULL && (objectId == oids->ledger || objectId == oids->blocks ||
							 objectId == oids->vault || objectId == oids->vault_key))
			RefuseLedger("DROP", objectId);
	}

	/*
	 * A cascaded drop removes a table's triggers before the table, so the
	 * protected table is recognised by its autora triggers going.
	 */
	if (access == OAT_DROP && classId == TriggerRelationId &&
		!extension_drop_allowed && !IsBinaryUpgrade && LedgerGetOids(true) != NULL)
	{
		Oid			relid = AutoraTriggerRelation(objectId);

		if (OidIsValid(relid) && !IsAllowedRelation(relid))
			RefuseProtectedDrop(relid);
	}
}

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
}
