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
#include "commands/extension.h"
#include "catalog/pg_attribute.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_statistic_ext.h"
#include "catalog/pg_type.h"
#include "commands/tablecmds.h"
#include "executor/tuptable.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/errcodes.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "autora_audit.h"
#include "ledger.h"
#include "objects.h"
#include "protected_ddl.h"
#include "registry.h"
#include "writer.h"

/* the longest statement text an event records */
#define STATEMENT_TEXT_MAX	2048

/* relation whose autora objects protect()/unprotect() are changing */
static Oid	allowed_relid = InvalidOid;

/* > 0 while DDL evaluates expressions over protected rows */
static int	ddl_reading_rows = 0;

/* the protected tree an ALTER TABLE under way changes: its columns may go */
static Oid	ddl_altering_root = InvalidOid;

static void ProtectedDependents(Oid refclassid, Oid refobjid, List **relids, int depth);

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
	const AutoraOids *oids = AutoraGetOids(true);
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

/* --- names --------------------------------------------------------------------- */

/*
 * Trigger and policy names beginning autora_ (or zz_autora_) are autora's:
 * a table's own object under such a name would pass for autora's when the
 * table joins a protected tree.  A restore recreates autora's own.
 */
static bool
IsReservedName(const char *name)
{
	return name != NULL &&
		(strncmp(name, "autora_", 7) == 0 || strncmp(name, "zz_autora_", 10) == 0) &&
		!CreatingAutora() && !(autora_restore_mode && superuser());
}

static void
RefuseReservedName(const char *what, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_RESERVED_NAME),
			 errmsg("%s name \"%s\" is reserved for autora", what, name),
			 errdetail("Names beginning autora_ or zz_autora_ are those of the triggers and policies autora.protect() creates."),
			 errhint("Choose another name.")));
}

/*
 * PostgreSQL applies restrictive policies in name order, each one a
 * security barrier: a restrictive policy named before autora's would see
 * every store's rows before autora_read (or autora_update, autora_delete)
 * filtered them.
 */
#define AUTORA_LAST_RESTRICTIVE "autora_update"

static void
CheckRestrictivePolicyName(Oid relid, const char *name)
{
	/* autora's own names are reserved: checked as such */
	if (name != NULL && strcmp(name, AUTORA_LAST_RESTRICTIVE) <= 0 &&
		strncmp(name, "autora_", 7) != 0 && IsProtected(relid) && !ProtectedDdlAllowed(relid))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("restrictive policy \"%s\" on protected table \"%s\" would run before autora's",
						name, get_rel_name(relid)),
				 errdetail("Restrictive policies are applied in name order; one named before \"%s\" sees every store's rows before autora's policies filter them.",
						   AUTORA_LAST_RESTRICTIVE),
				 errhint("Name it so that it sorts after \"%s\", e.g. \"zz_%s\".", AUTORA_LAST_RESTRICTIVE, name)));
}

/* Is the named policy of relid restrictive? */
static bool
PolicyIsRestrictive(Oid relid, const char *name)
{
	Relation	rel = table_open(PolicyRelationId, AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;
	bool		restrictive = false;

	ScanKeyInit(&keys[0], Anum_pg_policy_polrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_policy_polname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(name));
	scan = systable_beginscan(rel, PolicyPolrelidPolnameIndexId, true, NULL, 2, keys);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		restrictive = !((Form_pg_policy) GETSTRUCT(tup))->polpermissive;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return restrictive;
}

/* --- lookups -------------------------------------------------------------------- */

Oid
RelidOf(RangeVar *rv)
{
	return rv ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

Oid
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

/* How many parents (partition parent or inheritance parents) a relation has. */
static int
ParentCount(Oid relid)
{
	Relation	inherits = table_open(InheritsRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	int			n = 0;

	ScanKeyInit(&key, Anum_pg_inherits_inhrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(inherits, InheritsRelidSeqnoIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(systable_getnext(scan)))
		n++;
	systable_endscan(scan);
	table_close(inherits, AccessShareLock);
	return n;
}

static void
RefuseAttach(const char *how, Oid child, Oid parent, const char *why, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s \"%s\" under \"%s\" is not allowed", how, get_rel_name(child), get_rel_name(parent)),
			 errdetail("%s", why),
			 errhint("%s", hint)));
}

/*
 * child becomes a partition or inheritance child of parent.
 * - A protected child goes only under a protected parent (an unprotected
 *   one would show its rows to anyone) with the same configuration (else
 *   its PII columns would lose their role); it then becomes a member of the
 *   parent's tree (ProtectedDdlDone merges its own registration).
 * - An unprotected child goes under a protected parent only when it is
 *   empty (its rows would appear without history), logged and permanent.
 * - A member of a protected tree has one parent: a second one, protected or
 *   not, would be a second way in with its own rules.
 */
static void
GuardAttach(Oid parent, Oid child, const char *how)
{
	bool		parent_protected;
	bool		child_protected;
	ListCell   *lc;

	if (!OidIsValid(parent) || !OidIsValid(child))
		return;
	parent_protected = IsProtected(parent);
	child_protected = IsProtected(child);
	if (!parent_protected && !child_protected)
		return;
	if (ProtectedDdlAllowed(parent))
		return;
	if (!parent_protected)
		RefuseAttach(how, child, parent,
					 "Queries through an unprotected parent would see every store's rows of the protected child, without row level security or audit.",
					 "Protect the parent first with autora.protect(), with the same configuration.");
	if (has_superclass(child))
		RefuseAttach(how, child, parent,
					 "A member of a protected tree has a single parent: a second one would be another way to its rows.",
					 "Detach it from its other parent first.");
	/* the child brings its own tree along: each of its members must qualify */
	foreach(lc, find_all_inheritors(child, NoLock, NULL))
	{
		Oid			member = lfirst_oid(lc);

		if (member != child && ParentCount(member) > 1)
			RefuseAttach(how, child, parent,
						 psprintf("Its member \"%s\" has another parent, which would be a second way to that member's rows.",
								  get_rel_name(member)),
						 "Detach the member from its other parent first.");
		if (get_rel_persistence(member) != RELPERSISTENCE_PERMANENT)
			RefuseAttach(how, child, parent,
						 member == child ?
						 "A temporary or unlogged table cannot hold protected rows: they would vanish at session end or after a crash without entries." :
						 psprintf("Its member \"%s\" is temporary or unlogged: protected rows would vanish at session end or after a crash without entries.",
								  get_rel_name(member)),
						 "Attach a permanent, logged table.");
	}
	if (child_protected)
	{
		if (!RegistrySameConfiguration(RegistryRootOf(child), RegistryRootOf(parent)))
			RefuseAttach(how, child, parent,
						 "Both are protected, with different tenant, PII or excluded columns; the child would take the parent's.",
						 "Protect them with the same options first.");
		return;
	}
	if (TableHasRows(child))
		RefuseAttach(how, child, parent,
					 "Its rows would appear in the protected table without any ledger entry.",
					 "Attach it empty and insert its rows under each store's context, or protect it first with autora.protect(), with the parent's options.");
}

/* --- ALTER TABLE and friends -------------------------------------------------- */

/*
 * One ALTER TABLE command on a protected table: refused when it could
 * expose other stores' rows or change rows unaudited.
 */
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
		case AT_AddOf:
			RefuseChange(relid, "ALTER TABLE ... OF",
						 "ALTER TYPE ... CASCADE of the type would then rename and retype its columns, unguarded and unrecorded.",
						 "Keep protected tables untyped.");
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

/*
 * ALTER TABLE of a protected table, and ATTACH / INHERIT into a protected
 * tree (GuardAttach).
 */
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
		if (list_length(stmt->inhRelations) > 1)
			RefuseChange(parent, "a child with several parents",
						 "A member of a protected tree has a single parent: another parent would be a second way to its rows, with its own rules.",
						 "Inherit from the protected table alone.");
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
				if ((stmt->renameType == OBJECT_TRIGGER || stmt->renameType == OBJECT_POLICY) &&
					!ProtectedDdlAllowed(relid) && IsReservedName(stmt->newname))
					RefuseReservedName(stmt->renameType == OBJECT_TRIGGER ? "trigger" : "policy",
									   stmt->newname);
				if (stmt->renameType == OBJECT_POLICY && OidIsValid(relid) &&
					PolicyIsRestrictive(relid, stmt->subname))
					CheckRestrictivePolicyName(relid, stmt->newname);
				break;
			}
		case T_CreateTrigStmt:
			{
				CreateTrigStmt *stmt = (CreateTrigStmt *) parsetree;

				relid = RelidOf(stmt->relation);
				if (stmt->replace && !ProtectedDdlAllowed(relid) &&
					IsAutoraTrigger(relid, stmt->trigname))
					RefuseTrigger("CREATE OR REPLACE", stmt->trigname, relid);
				if (!ProtectedDdlAllowed(relid) && IsReservedName(stmt->trigname))
					RefuseReservedName("trigger", stmt->trigname);
				break;
			}
		case T_CreatePolicyStmt:
			{
				CreatePolicyStmt *stmt = (CreatePolicyStmt *) parsetree;

				relid = RelidOf(stmt->table);
				if (!ProtectedDdlAllowed(relid) && IsReservedName(stmt->policy_name))
					RefuseReservedName("policy", stmt->policy_name);
				if (!stmt->permissive)
					CheckRestrictivePolicyName(relid, stmt->policy_name);
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
		case T_AlterEnumStmt:
			{
				AlterEnumStmt *stmt = (AlterEnumStmt *) parsetree;
				List	   *users = NIL;

				/* renaming a label changes what every store's rows say */
				if (stmt->oldVal != NULL)
					ProtectedDependents(TypeRelationId,
										LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true),
										&users, 0);
				if (users != NIL)
					RefuseChange(linitial_oid(users), "renaming a label of an enum it uses",
								 "Every store's rows holding that label would say something else, without an entry.",
								 "Add a new label, move the rows to it with UPDATE under each store's context, and leave the old one.");
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

/* The relation a dependent object (trigger, policy, constraint, default, index) belongs to. */
static Oid
RelationOfDependent(Oid classid, Oid objid)
{
	AttrNumber	oidcol;
	AttrNumber	relcol;
	Relation	catalog;
	HeapTuple	tup;
	Oid			relid = InvalidOid;

	if (classid == RelationRelationId)
		return get_rel_relkind(objid) == RELKIND_INDEX ? IndexGetRelation(objid, true) : objid;
	if (classid == TriggerRelationId)
		oidcol = Anum_pg_trigger_oid, relcol = Anum_pg_trigger_tgrelid;
	else if (classid == PolicyRelationId)
		oidcol = Anum_pg_policy_oid, relcol = Anum_pg_policy_polrelid;
	else if (classid == ConstraintRelationId)
		oidcol = Anum_pg_constraint_oid, relcol = Anum_pg_constraint_conrelid;
	else if (classid == AttrDefaultRelationId)
		oidcol = Anum_pg_attrdef_oid, relcol = Anum_pg_attrdef_adrelid;
	else
		return InvalidOid;
	catalog = table_open(classid, AccessShareLock);
	tup = get_catalog_object_by_oid(catalog, oidcol, objid);
	if (HeapTupleIsValid(tup))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, relcol, RelationGetDescr(catalog), &isnull);

		relid = isnull ? InvalidOid : DatumGetObjectId(d);
	}
	table_close(catalog, AccessShareLock);
	return relid;
}

/*
 * The protected tables that depend on an object (a type or a function):
 * their columns, or their triggers, policies, constraints, defaults and
 * indexes, directly or through domains, arrays and composites built on it.
 * Followed through pg_depend.
 */
static void
ProtectedDependents(Oid refclassid, Oid refobjid, List **relids, int depth)
{
	Relation	depend;
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

	if (depth > 8)
		return;
	depend = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&keys[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(refclassid));
	ScanKeyInit(&keys[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(refobjid));
	scan = systable_beginscan(depend, DependReferenceIndexId, true, NULL, 2, keys);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_depend dep = (Form_pg_depend) GETSTRUCT(tup);
		Oid			relid;

		if (dep->classid == TypeRelationId)
		{
			ProtectedDependents(TypeRelationId, dep->objid, relids, depth + 1);
			continue;
		}
		if (dep->classid == RelationRelationId &&
			get_rel_relkind(dep->objid) == RELKIND_COMPOSITE_TYPE)
		{
			ProtectedDependents(TypeRelationId, get_rel_type_id(dep->objid), relids, depth + 1);
			continue;
		}
		relid = RelationOfDependent(dep->classid, dep->objid);
		if (IsProtected(relid))
			*relids = list_append_unique_oid(*relids, relid);
	}
	systable_endscan(scan);
	table_close(depend, AccessShareLock);
}

/* The function a CREATE OR REPLACE FUNCTION replaces, if it exists. */
static Oid
ReplacedFunction(CreateFunctionStmt *stmt)
{
	ObjectWithArgs *func = makeNode(ObjectWithArgs);
	ListCell   *lc;

	if (!stmt->replace)
		return InvalidOid;
	func->objname = stmt->funcname;
	foreach(lc, stmt->parameters)
	{
		FunctionParameter *p = lfirst(lc);

		if (p->mode == FUNC_PARAM_IN || p->mode == FUNC_PARAM_INOUT ||
			p->mode == FUNC_PARAM_VARIADIC || p->mode == FUNC_PARAM_DEFAULT)
			func->objargs = lappend(func->objargs, p->argType);
	}
	return LookupFuncWithArgs(stmt->is_procedure ? OBJECT_PROCEDURE : OBJECT_FUNCTION, func, true);
}

/* The domain an ALTER DOMAIN names, if it exists. */
static Oid
AlteredDomain(AlterDomainStmt *stmt)
{
	return LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true);
}

/* Does this utility statement evaluate expressions over protected rows? */
static bool
ReadsProtectedRows(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			{
				Oid			relid = RelidOf(((AlterTableStmt *) parsetree)->relation);

				/* protect()'s own DDL runs nobody's code over the rows */
				return IsProtected(relid) && !ProtectedDdlAllowed(relid);
			}
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
				List	   *users = NIL;

				ProtectedDependents(TypeRelationId, AlteredDomain((AlterDomainStmt *) parsetree),
									&users, 0);
				return users != NIL;
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
		case T_AlterDomainStmt:
			ProtectedDependents(TypeRelationId, AlteredDomain((AlterDomainStmt *) parsetree),
								&relids, 0);
			return relids;
		case T_AlterFunctionStmt:
			{
				AlterFunctionStmt *stmt = (AlterFunctionStmt *) parsetree;
				Oid			func = LookupFuncWithArgs(stmt->objtype, stmt->func, true);

				if (OidIsValid(func))
					ProtectedDependents(ProcedureRelationId, func, &relids, 0);
				return relids;
			}
		case T_CreateFunctionStmt:
			{
				/* replacing the code that a protected table's trigger, index... runs */
				Oid			func = ReplacedFunction((CreateFunctionStmt *) parsetree);

				if (OidIsValid(func))
					ProtectedDependents(ProcedureRelationId, func, &relids, 0);
				return relids;
			}
		case T_DropStmt:
			{
				DropStmt   *stmt = (DropStmt *) parsetree;

				foreach(lc, stmt->objects)
				{
					List	   *names = lfirst(lc);

					if (stmt->removeType == OBJECT_FUNCTION || stmt->removeType == OBJECT_PROCEDURE)
					{
						Oid			func = LookupFuncWithArgs(stmt->removeType, lfirst(lc), true);

						if (OidIsValid(func))
							ProtectedDependents(ProcedureRelationId, func, &relids, 0);
						continue;
					}
					if (stmt->removeType == OBJECT_INDEX)
					{
						Oid			index = RelidOfNames(names);

						if (OidIsValid(index) && get_rel_relkind(index) == RELKIND_INDEX)
							relids = lappend_oid(relids, IndexGetRelation(index, true));
					}
					else if (stmt->removeType == OBJECT_TRIGGER || stmt->removeType == OBJECT_POLICY)
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

/*
 * Before a utility statement: notes the protected tables it changes and
 * their columns, and arms the function guard when it runs code over their
 * rows.
 */
void
ProtectedDdlBegin(PlannedStmt *pstmt, const char *queryString,
				  ProcessUtilityContext context, ProtectedDdl *ddl)
{
	Node	   *parsetree = pstmt->utilityStmt;

	memset(ddl, 0, sizeof(*ddl));
	ddl->saved_altering_root = ddl_altering_root;
	if (AutoraGetOids(true) == NULL)
		return;
	ddl->parsetree = parsetree;
	if (IsA(parsetree, AlterTableStmt))
	{
		Oid			root = RegistryRootOf(RelidOf(((AlterTableStmt *) parsetree)->relation));

		if (OidIsValid(root))
			ddl_altering_root = root;
	}

	/* the pieces of a statement are recorded with it, not alone; a restore recreates */
	if (context != PROCESS_UTILITY_SUBCOMMAND && !(autora_restore_mode && superuser()))
		NoteTargets(parsetree, ddl);
	if (ddl->targets != NIL)
	{
		ddl->command = CreateCommandName(parsetree);
		ddl->statement = StatementText(pstmt, queryString);
	}

	/* last: nothing above may fail with the count raised */
	ddl->reads_rows = ReadsProtectedRows(parsetree);
	if (ddl->reads_rows)
	{
		/*
		 * NOTICEs and WARNINGs raised on a row (a built-in's "identifier will
		 * be truncated", say) could quote it, as errors can: none reaches the
		 * client while the statement runs.  Undone at its end, or by the
		 * abort of its (sub)transaction.
		 */
		ddl->guc_nest_level = NewGUCNestLevel();
		(void) set_config_option("client_min_messages", "error", PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		ddl_reading_rows++;
	}
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

/*
 * A protected table attached under a protected parent (same configuration,
 * GuardAttach made sure) is a member of the parent's tree from now on: its
 * own registration goes, so that unprotecting the parent takes it along.
 */
static void
MergeAttachedRegistrations(Node *parsetree)
{
	AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
	Oid			relid;
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return;
	relid = RelidOf(stmt->relation);
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst(lc);

		if (cmd->subtype == AT_AttachPartition && stmt->objtype != OBJECT_INDEX)
			RegistryMergeMember(RelidOf(((PartitionCmd *) cmd->def)->name));
		else if (cmd->subtype == AT_AddInherit)
			RegistryMergeMember(relid);
	}
}

/*
 * After the statement: column roles follow renames and drops, code it
 * attached is checked, and each protected table it changed gets a ddl event.
 */
void
ProtectedDdlDone(ProtectedDdl *ddl)
{
	ListCell   *lc;

	ddl_altering_root = ddl->saved_altering_root;
	if (ddl->reads_rows)
	{
		AtEOXact_GUC(true, ddl->guc_nest_level);
		ddl_reading_rows--;
		ddl->reads_rows = false;
	}
	if (ddl->parsetree == NULL ||
		(ddl->targets == NIL && ddl->registry == NULL && !IsA(ddl->parsetree, AlterTableStmt)))
		return;
	CommandCounterIncrement();
	MergeAttachedRegistrations(ddl->parsetree);
	if (ddl->registry != NULL)
		RegistryFollowColumns(ddl->registry);
	/* the members of a renamed or moved tree record their entries under its new name */
	if (IsA(ddl->parsetree, RenameStmt) || IsA(ddl->parsetree, AlterObjectSchemaStmt))
		foreach(lc, ddl->targets)
		{
			Oid			root = RegistryRootOf(lfirst_oid(lc));

			if (OidIsValid(root))
				RegistryInvalidateTree(root);
		}
	/* an index built over no row evaluated nothing: its code is checked here */
	foreach(lc, ddl->targets)
		if (get_rel_relkind(lfirst_oid(lc)) != '\0')
			RequireTrustedCode(lfirst_oid(lc));
	if (ddl->targets != NIL)
		RecordDdl(ddl);
}

/* Errors that quote no row: refusals, cancellations, lock and resource failures. */
static bool
QuotesNoRow(int sqlerrcode)
{
	int			class = ERRCODE_TO_CATEGORY(sqlerrcode);

	return sqlerrcode == ERRCODE_INSUFFICIENT_PRIVILEGE ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		class == ERRCODE_INSUFFICIENT_RESOURCES ||
		class == ERRCODE_OPERATOR_INTERVENTION ||
		class == ERRCODE_SYSTEM_ERROR;
}

/*
 * An error raised while DDL read every tenant's rows may quote one: a
 * duplicate key, a value that did not convert, a token a parser did not
 * like (any SQLSTATE class).  The client gets the message's template,
 * without its parameters, and the SQLSTATE; the whole error goes to the
 * server log only.  Called in PG_CATCH, in a memory context other than
 * ErrorContext; returns when the error is to be re-thrown as it is.
 */
void
ProtectedDdlFailed(ProtectedDdl *ddl)
{
	ErrorData  *edata;

	ddl_altering_root = ddl->saved_altering_root;
	if (!ddl->reads_rows)
		return;
	ddl_reading_rows--;
	ddl->reads_rows = false;

	edata = CopyErrorData();
	if (QuotesNoRow(edata->sqlerrcode))
		return;
	FlushErrorState();
	ereport(LOG_SERVER_ONLY,
			(errmsg_internal("autora: error withheld from the client of DDL on a protected table: %s",
							 edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
	edata->message = psprintf("%s (its values are withheld)",
							  edata->message_id ? edata->message_id : "the statement failed");
	edata->detail = pstrdup("The statement was evaluating a protected table's rows, and the error's values could show another store's data; its SQLSTATE is kept and the server log has the whole error.");
	edata->detail_log = NULL;
	edata->hint = pstrdup("Find the row under each store's context, or ask a superuser for the server log.");
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
		/* any other column goes by an ALTER TABLE of its table (recorded), not by a cascade */
		if (ddl_altering_root != RegistryRootOf(objectId))
			RefuseChange(objectId, psprintf("dropping column \"%s\" by a cascade", column ? column : "?"),
						 "A cascade (DROP TYPE, DROP DOMAIN ... CASCADE) would remove every store's values of the column, unrecorded.",
						 "Drop the column first with ALTER TABLE ... DROP COLUMN, which is recorded.");
	}
	else if (classId == PolicyRelationId)
	{
		Oid			relid;
		char	   *name;

		/* however it is reached: DROP ... CASCADE of the table, a column, a type */
		if (PolicyById(objectId, &relid, &name) && IsAutoraPolicy(relid, name) &&
			get_rel_persistence(relid) != RELPERSISTENCE_TEMP)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("dropping autora policy %s of protected table \"%s\" is not allowed",
							name, get_rel_name(relid)),
					 errdetail("The statement would drop the policy, with the table, its tenant column or an object the policy depends on; the policy keeps each store's rows to its own sessions."),
					 errhint("Remove protection first with autora.unprotect(table, reason), which is recorded in the ledger.")));
	}
}

/*
 * While DDL reads every store's rows, a function may run there only if its
 * code is a superuser's, and it cannot pass a row on: a volatile function
 * that takes arguments could (set_config, pg_notify, lo_from_bytea, advisory
 * locks).  Volatile functions without arguments (gen_random_uuid(),
 * clock_timestamp()) see no row.
 */
void
ProtectedFunctionCheck(Oid funcid)
{
	HeapTuple	tup;
	Form_pg_proc proc;
	bool		trusted;

	if (ddl_reading_rows == 0)
		return;
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	if (!HeapTupleIsValid(tup))
		return;
	proc = (Form_pg_proc) GETSTRUCT(tup);
	/* autora's own functions (its event trigger's) are trusted */
	trusted = superuser_arg(proc->proowner) &&
		(proc->provolatile != PROVOLATILE_VOLATILE || proc->pronargs == 0 ||
		 proc->pronamespace == AutoraGetOids(false)->namespace);
	ReleaseSysCache(tup);
	if (!trusted)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("function %s cannot run over the rows of a protected table", get_func_name(funcid)),
				 errdetail("This statement evaluates expressions over every tenant's rows; only functions owned by a superuser, and none that is volatile and takes arguments, may run there."),
				 errhint("Use built-in immutable or stable functions, fill new columns with UPDATE under each tenant's context, or unprotect the table first (recorded).")));
}

/* Collects the first function in an expression that a superuser does not own. */
static bool
UntrustedFunction(Oid funcid, void *context)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	bool		untrusted = false;

	if (HeapTupleIsValid(tup))
	{
		untrusted = !superuser_arg(((Form_pg_proc) GETSTRUCT(tup))->proowner);
		ReleaseSysCache(tup);
	}
	if (untrusted)
		*(Oid *) context = funcid;
	return untrusted;
}

static bool FindUntrustedFunction(Node *node, void *context);

/* The type a domain is declared over (one step, not the final base). */
static Oid
BaseTypeOf(Oid domain)
{
	HeapTuple	tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(domain));
	Oid			base = InvalidOid;

	if (HeapTupleIsValid(tup))
	{
		base = ((Form_pg_type) GETSTRUCT(tup))->typbasetype;
		ReleaseSysCache(tup);
	}
	return base;
}

/*
 * The CHECK constraints of a domain (and of the domains it is built on) run
 * wherever a value is coerced to it: in an index expression, over every
 * row, whenever ANALYZE evaluates it.
 */
static bool
DomainHasUntrustedCode(Oid domain, void *context)
{
	for (int depth = 0; depth < 16 && get_typtype(domain) == TYPTYPE_DOMAIN; depth++)
	{
		Relation	constraints = table_open(ConstraintRelationId, AccessShareLock);
		ScanKeyData key;
		SysScanDesc scan;
		HeapTuple	tup;
		bool		found = false;

		ScanKeyInit(&key, Anum_pg_constraint_contypid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(domain));
		scan = systable_beginscan(constraints, ConstraintTypidIndexId, true, NULL, 1, &key);
		while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			bool		isnull;
			Datum		d = heap_getattr(tup, Anum_pg_constraint_conbin,
										 RelationGetDescr(constraints), &isnull);

			if (!isnull)
				found = FindUntrustedFunction(stringToNode(TextDatumGetCString(d)), context);
		}
		systable_endscan(scan);
		table_close(constraints, AccessShareLock);
		if (found)
			return true;
		domain = BaseTypeOf(domain);
	}
	return false;
}

static bool
FindUntrustedFunction(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, UntrustedFunction, context))
		return true;
	/* a domain with no constraint yet may have been stored as a relabeling */
	if ((IsA(node, CoerceToDomain) &&
		 DomainHasUntrustedCode(((CoerceToDomain *) node)->resulttype, context)) ||
		(IsA(node, RelabelType) &&
		 DomainHasUntrustedCode(((RelabelType *) node)->resulttype, context)))
		return true;
	return expression_tree_walker(node, FindUntrustedFunction, context);
}

static void
RefuseUntrustedCode(Oid relid, const char *what, Oid funcid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("%s of \"%s\" calls function %s, which a superuser does not own",
					what, get_rel_name(relid), get_func_name(funcid)),
			 errdetail("ANALYZE and index builds evaluate it over every store's rows with the table owner's rights."),
			 errhint("Use built-in functions, have a superuser own the function, or drop the %s.", what)));
}

/*
 * Index expressions and predicates, and statistics expressions, run over
 * every store's rows outside any statement of the owner's (autovacuum's
 * ANALYZE): on a protected table they may call only superuser-owned code.
 * Checked when a table becomes protected or joins a protected tree, and
 * after DDL on one (an index built on an empty table evaluates nothing).
 */
void
RequireTrustedCode(Oid relid)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Oid			found = InvalidOid;
	Relation	stats;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	relation_close(rel, AccessShareLock);
	/* as stored: the relcache's copy is simplified for the domains of that moment */
	foreach(lc, indexes)
	{
		HeapTuple	tup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		bool		isnull;
		Datum		exprs;
		Datum		pred;

		if (!HeapTupleIsValid(tup))
			continue;
		exprs = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indexprs, &isnull);
		if (!isnull && FindUntrustedFunction(stringToNode(TextDatumGetCString(exprs)), &found))
			RefuseUntrustedCode(relid, "an index", found);
		pred = SysCacheGetAttr(INDEXRELID, tup, Anum_pg_index_indpred, &isnull);
		if (!isnull && FindUntrustedFunction(stringToNode(TextDatumGetCString(pred)), &found))
			RefuseUntrustedCode(relid, "an index", found);
		ReleaseSysCache(tup);
	}

	stats = table_open(StatisticExtRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_statistic_ext_stxrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(stats, StatisticExtRelidIndexId, true, NULL, 1, &key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, Anum_pg_statistic_ext_stxexprs,
									 RelationGetDescr(stats), &isnull);

		if (!isnull && FindUntrustedFunction(stringToNode(TextDatumGetCString(d)), &found))
			RefuseUntrustedCode(relid, "a statistics object", found);
	}
	systable_endscan(scan);
	table_close(stats, AccessShareLock);
}
