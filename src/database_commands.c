/*-------------------------------------------------------------------------
 * database_commands.c
 *	  Commands on whole databases, as they concern autora (guard.c calls
 *	  these around every utility statement).
 *
 *	  CREATE DATABASE   PostgreSQL 15's default strategy (wal_log) does not
 *	                    WAL-log the first nextval() of the copied sequences,
 *	                    so after a crash they can step back and hand out
 *	                    ledger ids twice; file_copy is safe, and is what a
 *	                    CREATE DATABASE without a strategy gets.
 *	  DROP / ALTER / RENAME DATABASE, CREATE DATABASE ... TEMPLATE
 *	                    need the database without connections: its sealer
 *	                    worker is paused for the command.
 *	  COMMIT PREPARED   the preparing session could not wake the sealer
 *	                    for its entries; the committer does.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"

#include "database_commands.h"
#include "sealer.h"

static bool
HasDefElem(List *options, const char *name)
{
	ListCell   *lc;

	foreach(lc, options)
		if (strcmp(((DefElem *) lfirst(lc))->defname, name) == 0)
			return true;
	return false;
}

PlannedStmt *
DatabaseCommandRewrite(PlannedStmt *pstmt, bool *read_only)
{
	PlannedStmt *run;
	CreatedbStmt *stmt;

	if (!IsA(pstmt->utilityStmt, CreatedbStmt) ||
		HasDefElem(((CreatedbStmt *) pstmt->utilityStmt)->options, "strategy"))
		return pstmt;
	run = copyObject(pstmt);
	stmt = (CreatedbStmt *) run->utilityStmt;
	stmt->options = lappend(stmt->options,
							makeDefElem("strategy", (Node *) makeString("file_copy"), -1));
	*read_only = false;
	return run;
}

/* May this role run a command that needs the database free of connections? */
static Oid
IfOwnedOrSuperuser(Oid dboid)
{
	return OidIsValid(dboid) && pg_database_ownercheck(dboid, GetUserId()) ? dboid : InvalidOid;
}

/*
 * The database a database-level command needs free of connections, when
 * the role may run it: a role that may not would otherwise stop a
 * database's sealing by failing the command.
 */
static Oid
DatabaseNeedingNoConnections(Node *parsetree)
{
	ListCell   *lc;
	Oid			template = InvalidOid;

	switch (nodeTag(parsetree))
	{
		case T_DropdbStmt:
			return IfOwnedOrSuperuser(get_database_oid(((DropdbStmt *) parsetree)->dbname, true));
		case T_CreatedbStmt:
			foreach(lc, ((CreatedbStmt *) parsetree)->options)
			{
				DefElem    *opt = lfirst(lc);

				if (strcmp(opt->defname, "template") == 0 && opt->arg != NULL)
					template = get_database_oid(defGetString(opt), true);
			}
			if (!OidIsValid(template))
				template = get_database_oid("template1", true);
			return have_createdb_privilege() ? template : InvalidOid;
		case T_RenameStmt:
			if (((RenameStmt *) parsetree)->renameType == OBJECT_DATABASE)
				return IfOwnedOrSuperuser(get_database_oid(((RenameStmt *) parsetree)->subname, true));
			return InvalidOid;
		case T_AlterDatabaseStmt:
			foreach(lc, ((AlterDatabaseStmt *) parsetree)->options)
				if (strcmp(((DefElem *) lfirst(lc))->defname, "tablespace") == 0)
					return IfOwnedOrSuperuser(get_database_oid(((AlterDatabaseStmt *) parsetree)->dbname, true));
			return InvalidOid;
		default:
			return InvalidOid;
	}
}

Oid
DatabaseCommandPause(Node *parsetree)
{
	Oid			dboid = DatabaseNeedingNoConnections(parsetree);

	if (OidIsValid(dboid))
		SealerPauseDatabase(dboid);
	return dboid;
}

void
DatabaseCommandDone(Node *parsetree)
{
	if (IsA(parsetree, TransactionStmt) &&
		((TransactionStmt *) parsetree)->kind == TRANS_STMT_COMMIT_PREPARED)
		SealerWake();
}
