/*-------------------------------------------------------------------------
 * autora_audit.c
 *	  Library entry point: configuration variables and hook installation.
 *
 * Everything else lives in the modules: context.c (session context),
 * capture.c (triggers), ledger.c / chain.c / verify.c (the ledger),
 * guard.c (hooks that keep it append-only) and sealer.c (background sealing).
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "autora_audit.h"
#include "context.h"
#include "guard.h"
#include "ledger.h"
#include "objects.h"
#include "registry.h"
#include "relinfo.h"
#include "restore_state.h"
#include "tenants.h"
#include "sealer.h"
#include "writer.h"

PG_MODULE_MAGIC;

int			autora_seal_interval_ms = 1000;
int			autora_block_size = 10000;
bool		autora_skip_noop_updates = true;
bool		autora_allow_truncate = false;
bool		autora_restore_mode = false;
char	   *autora_tenant_column = NULL;
bool		autora_preloaded = false;

void		_PG_init(void);

/*
 * The autora.* settings; who may set each one is part of the security model
 * (docs/security-model.md): anything that could switch capture or sealing off
 * is superuser-only.
 */
static void
DefineConfiguration(void)
{
	DefineCustomIntVariable("autora.seal_interval",
							"Longest time between a commit and the sealing of its ledger entries.",
							"The background sealer gathers committed entries into hash-chained "
							"blocks at most this long after they commit.",
							&autora_seal_interval_ms,
							1000, 10, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("autora.sealer_idle_timeout",
							"Time after which an idle background sealer exits.",
							"A database's sealer exits when no commit has appended ledger entries "
							"for this long, freeing its background worker slot; the next commit "
							"that appends entries, or autora.seal(), starts it again.",
							&autora_sealer_idle_timeout_ms,
							10000, 0, 3600 * 1000,
							PGC_SIGHUP,
							GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("autora.block_size",
							"Largest number of entries sealed into one block.",
							NULL,
							&autora_block_size,
							10000, 1, 1000000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("autora.skip_noop_updates",
							 "Skips ledger entries for UPDATEs that change no captured column.",
							 NULL,
							 &autora_skip_noop_updates,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("autora.allow_truncate",
							 "Allows TRUNCATE of protected tables, recording one entry per tenant.",
							 "TRUNCATE ignores row level security, so it is refused by default.",
							 &autora_allow_truncate,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomBoolVariable("autora.restore_mode",
							 "Lets a superuser load an empty ledger from a dump.",
							 "Only COPY or INSERT into an empty ledger relation is allowed; "
							 "autora.verify checks what was loaded.",
							 &autora_restore_mode,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	/* superuser-only: a database owner's ALTER DATABASE SET would pick the admin's column */
	DefineCustomStringVariable("autora.tenant_column",
							   "Tenant column used by autora.protect when none is given.",
							   NULL,
							   &autora_tenant_column,
							   "tenant_id",
							   PGC_SUSET,
							   0,
							   NULL, NULL, NULL);

	ContextDefineConfiguration();

	MarkGUCPrefixReserved("autora");
}

/*
 * Registers settings, cache callbacks and hooks in every backend; shared
 * memory and the sealer only when preloaded.
 */
void
_PG_init(void)
{
	autora_preloaded = process_shared_preload_libraries_in_progress;

	DefineConfiguration();

	RegistryInit();
	RestoreInit();
	RelInfoInit();
	ObjectsInit();
	LedgerInit();
	WriterInit();
	TenantsInit();
	GuardInstallHooks();

	/* shared memory and background workers only exist when preloaded */
	if (autora_preloaded)
		SealerInit();
}

/*
 * Called by the install script: CREATE EXTENSION must fail, with a hint,
 * when the library is not in shared_preload_libraries.
 */
PG_FUNCTION_INFO_V1(autora_require_preload);
Datum
autora_require_preload(PG_FUNCTION_ARGS)
{
	if (!autora_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("autora_audit must be loaded via shared_preload_libraries"),
				 errdetail("The guards that keep the audit ledger append-only run in every backend only when the library is preloaded."),
				 errhint("Add autora_audit to shared_preload_libraries in postgresql.conf, restart the server, then run CREATE EXTENSION autora_audit again.")));
	PG_RETURN_VOID();
}
