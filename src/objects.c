/*-------------------------------------------------------------------------
 * objects.c
 *	  Where autora_audit's relations are: found once through pg_extension,
 *	  cached, and forgotten when the relcache says they may have changed.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"

#include "objects.h"

/* where the relations are; also caches "not installed here" */
typedef enum OidsState
{
	OIDS_UNKNOWN,
	OIDS_ABSENT,
	OIDS_PRESENT
} OidsState;
static AutoraOids autora_oids;
static OidsState oids_state = OIDS_UNKNOWN;

static void
ObjectsRelcacheCallback(Datum arg, Oid relid)
{
	/* an absent extension may have been created: any change rechecks */
	if (oids_state == OIDS_ABSENT || !OidIsValid(relid) ||
		relid == autora_oids.ledger || relid == autora_oids.blocks)
		oids_state = OIDS_UNKNOWN;
}

void
ObjectsInit(void)
{
	CacheRegisterRelcacheCallback(ObjectsRelcacheCallback, (Datum) 0);
}

static Oid
RequireRelation(const char *name, Oid nsp)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("autora_audit relation \"autora.%s\" is missing", name),
				 errhint("Reinstall the extension with DROP EXTENSION / CREATE EXTENSION autora_audit.")));
	return relid;
}

/*
 * The schema of the installed extension, from pg_extension (an index
 * lookup), or InvalidOid.  A schema's name proves nothing: in a database
 * without the extension its owner can create a schema named autora holding
 * tables and views of their own, which the sealer, running as superuser,
 * must never take for the ledger.  Only a superuser can install autora_audit.
 */
static Oid
ExtensionSchema(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("autora_audit"));
	rel = table_open(ExtensionRelationId, AccessShareLock);
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

const AutoraOids *
AutoraGetOids(bool missing_ok)
{
	Oid			nsp;

	if (oids_state == OIDS_UNKNOWN && IsTransactionState())
	{
		/* index and syscache lookups only: this runs for every statement's guard */
		nsp = ExtensionSchema();
		/* CREATE EXTENSION creates keys last: until then it is installing */
		if (OidIsValid(nsp) && OidIsValid(get_relname_relid("ledger", nsp)) &&
			!(creating_extension && !OidIsValid(get_relname_relid("keys", nsp))))
		{
			autora_oids.namespace = nsp;
			autora_oids.ledger = RequireRelation("ledger", nsp);
			autora_oids.blocks = RequireRelation("ledger_blocks", nsp);
			autora_oids.id_seq = RequireRelation("ledger_id_seq", nsp);
			autora_oids.platform_seq = RequireRelation("chain_seq_platform", nsp);
			autora_oids.vault = RequireRelation("pii_vault", nsp);
			autora_oids.tenants = RequireRelation("tenants", nsp);
			autora_oids.actor_roles = RequireRelation("actor_roles", nsp);
			autora_oids.keys = RequireRelation("keys", nsp);
			autora_oids.registry = RequireRelation("protected", nsp);
			autora_oids.registry_schemas = RequireRelation("protected_schemas", nsp);
			autora_oids.xid_base = RequireRelation("xid_base", nsp);
			autora_oids.restore_state = RequireRelation("restore_state", nsp);
			oids_state = OIDS_PRESENT;
		}
		else
			oids_state = OIDS_ABSENT;
	}
	if (oids_state == OIDS_PRESENT)
		return &autora_oids;
	if (!missing_ok)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension autora_audit is not installed in this database"),
				 errhint("Run CREATE EXTENSION autora_audit.")));
	return NULL;
}

bool
CreatingAutora(void)
{
	return creating_extension &&
		CurrentExtensionObject == get_extension_oid("autora_audit", true);
}

bool
IsLedgerRelation(Oid relid)
{
	const AutoraOids *oids;
	Oid			heap;

	if (!OidIsValid(relid) || (oids = AutoraGetOids(true)) == NULL)
		return false;
	if (get_rel_relkind(relid) == RELKIND_INDEX)
		heap = IndexGetRelation(relid, true);
	else
		heap = relid;
	return heap == oids->ledger || heap == oids->blocks || heap == oids->vault;
}

