/*-------------------------------------------------------------------------
 * autora_audit.h
 *	  Configuration variables shared by the modules of autora_audit.
 *
 * The variables are defined (DefineCustom*Variable) in autora_audit.c.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_AUDIT_H
#define AUTORA_AUDIT_H

#include "postgres.h"

/* SQLSTATE class ZA: session context errors (see SPEC "Errors") */
#define ERRCODE_AUTORA_NO_CONTEXT		MAKE_SQLSTATE('Z','A','0','0','1')
#define ERRCODE_AUTORA_BAD_TOKEN		MAKE_SQLSTATE('Z','A','0','0','2')
#define ERRCODE_AUTORA_TOKEN_TIME		MAKE_SQLSTATE('Z','A','0','0','3')
#define ERRCODE_AUTORA_UNKNOWN			MAKE_SQLSTATE('Z','A','0','0','4')
#define ERRCODE_AUTORA_SUPPORT			MAKE_SQLSTATE('Z','A','0','0','5')

/*
 * Longest tenant id, in bytes of the database encoding.  The install script
 * enforces the same limit (the CHECK constraint on autora.tenants and
 * autora.add_tenant()); C code sizes its tenant-keyed buffers from it.
 */
#define AUTORA_TENANT_ID_MAXLEN			127

extern int	autora_seal_interval_ms;
extern int	autora_block_size;
extern bool autora_skip_noop_updates;
extern bool autora_allow_truncate;
extern bool autora_restore_mode;
extern char *autora_tenant_column;

/* true once _PG_init ran from shared_preload_libraries */
extern bool autora_preloaded;

#endif							/* AUTORA_AUDIT_H */
