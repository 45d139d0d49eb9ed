/*-------------------------------------------------------------------------
 * scope.h
 *	  The stores a session context may see.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_SCOPE_H
#define AUTORA_SCOPE_H

#include "nodes/pg_list.h"

/* Is tenant registered?  Sets *group (NULL when it has none). */
extern bool TenantLookup(const char *tenant, char **group);

/* Is role an actor role?  Sets *scope (tenant, group or platform). */
extern bool ActorRoleLookup(const char *role, char **scope);

/*
 * The tenant id as a value of a tenant column's (base) type, when it is
 * written in that type's own text form ('9101', not '09101'); else false.
 */
extern bool TypedTenant(const char *id, Oid type, Datum *value);

/* Registers the invalidation of cached tenant and actor-role lookups. */
extern void ScopeInit(void);

/* Registered tenant ids, sorted: of one group, or all of them. */
extern List *TenantsOfGroup(const char *group, bool all);

#endif							/* AUTORA_SCOPE_H */
