/*-------------------------------------------------------------------------
 * database_commands.h
 *	  Commands on whole databases, as they concern autora: how CREATE
 *	  DATABASE copies the ledger's sequences, and the sealer stepping aside
 *	  for commands that need a database without connections.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_DATABASE_COMMANDS_H
#define AUTORA_DATABASE_COMMANDS_H

#include "nodes/plannodes.h"

/*
 * The statement to run instead of pstmt: CREATE DATABASE without a
 * strategy gets file_copy (*read_only becomes false then); else pstmt.
 */
extern PlannedStmt *DatabaseCommandRewrite(PlannedStmt *pstmt, bool *read_only);

/*
 * Before the statement: the database it needs free of connections, whose
 * sealer is now paused (resume it with SealerResumeDatabase), or InvalidOid.
 */
extern Oid	DatabaseCommandPause(Node *parsetree);

/* After the statement succeeded: COMMIT PREPARED wakes the sealer. */
extern void DatabaseCommandDone(Node *parsetree);

#endif							/* AUTORA_DATABASE_COMMANDS_H */
