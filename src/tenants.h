/*-------------------------------------------------------------------------
 * tenants.h
 *	  The registered stores and actor roles.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_TENANTS_H
#define AUTORA_TENANTS_H

#include "nodes/pg_list.h"

/* Registers the invalidation of cached tenant and actor-role lookups. */
extern void TenantsInit(void);

/* Is tenant registered?  Sets *group (NULL when it has none). */
extern bool TenantLookup(const char *tenant, char **group);

/* Is role an actor role?  Sets *scope (tenant, group or platform). */
extern bool ActorRoleLookup(const char *role, char **scope);

/* The one "unknown tenant" error (ZA004); a long id is not repeated whole. */
extern void UnknownTenantError(const char *tenant) pg_attribute_noreturn();

/* Registered tenant ids, sorted: of one group, or all of them. */
extern List *TenantsOfGroup(const char *group);
extern List *AllTenants(void);

/*
 * The tenant id as a value of a tenant column's (base) type, when it is
 * written in that type's own text form ('9101', not '09101'); else false.
 */
extern bool TypedTenant(const char *id, Oid type, Datum *value);

#endif							/* AUTORA_TENANTS_H */
