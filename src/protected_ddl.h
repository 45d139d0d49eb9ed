/*-------------------------------------------------------------------------
 * protected_ddl.h
 *	  DDL on protected tables: what their owner may still do, what is
 *	  refused, and the ledger's record of it.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_PROTECTED_DDL_H
#define AUTORA_PROTECTED_DDL_H

#include "nodes/plannodes.h"
#include "tcop/utility.h"

/*
 * protect()/unprotect() change one relation's autora triggers and policies;
 * while they do, the guards let changes to that relation's tree through.
 */
extern void ProtectedDdlAllowBegin(Oid relid);
extern void ProtectedDdlAllowEnd(void);
extern bool ProtectedDdlAllowed(Oid relid);

/* The relation a statement names, or InvalidOid when there is none (no lock). */
extern Oid	RelidOf(RangeVar *rv);
extern Oid	RelidOfNames(List *names);

/* Is relid a protected table (or a member of a protected tree)? */
extern bool IsProtected(Oid relid);

/* Is this function one of autora's trigger functions? */
extern bool IsAutoraTriggerFunction(Oid funcid);

extern void RefuseProtectedDrop(Oid relid);

/* Refuses, before it runs, DDL that would expose or silently change protected rows. */
extern void ProtectedDdlCheck(Node *parsetree);

/*
 * Around the execution of a utility statement: Begin notes what the
 * statement touches; Done records it in the ledger and keeps the registry's
 * column roles with their columns; Failed, called from PG_CATCH, withholds
 * row data from an error raised while the DDL read protected rows.
 */
typedef struct ProtectedDdl
{
	Node	   *parsetree;		/* NULL: nothing to do after it */
	List	   *targets;		/* protected relations the statement changes */
	List	   *columns_before; /* per target: its columns, as JSON text */
	struct RegistryColumns *registry;	/* column roles of the tree it alters */
	bool		reads_rows;		/* evaluates expressions over protected rows */
	Oid			saved_altering_root;	/* restored when the statement ends */
	int			guc_nest_level; /* client_min_messages = error while reads_rows */
	const char *command;
	char	   *statement;
} ProtectedDdl;

extern void ProtectedDdlBegin(PlannedStmt *pstmt, const char *queryString,
							  ProcessUtilityContext context, ProtectedDdl *ddl);
extern void ProtectedDdlDone(ProtectedDdl *ddl);
extern void ProtectedDdlFailed(ProtectedDdl *ddl);

/*
 * Index and statistics expressions of a relation joining protection may
 * call only superuser-owned code (autovacuum's ANALYZE runs them).
 */
extern void RequireTrustedCode(Oid relid);

/* Object access: drops of protected tables, their tenant column, autora policies. */
extern void ProtectedDropCheck(Oid classId, Oid objectId, int subId);

/* Object access: a function about to run while DDL reads protected rows. */
extern void ProtectedFunctionCheck(Oid funcid);

/* protect() of root: no parent outside the tree, one parent per member. */
extern void ProtectedTreeCheck(Oid root);

#endif							/* AUTORA_PROTECTED_DDL_H */
