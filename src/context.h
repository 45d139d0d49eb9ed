/*-------------------------------------------------------------------------
 * context.h
 *	  The verified session context: who acts, for which tenant, from where.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_CONTEXT_H
#define AUTORA_CONTEXT_H

typedef struct AutoraContext
{
	bool		present;		/* false: no context set */
	char	   *tenant;			/* NULL for platform scope without a tenant */
	char	   *actor;
	char	   *role;
	char	   *scope;			/* tenant, group or platform: as registered */
	char	   *group;			/* the store's group, as registered */
	char	   *email;
	char	   *ip;				/* client address claimed by the application */
	char	   *user_agent;
	char	   *endpoint;
	char	   *method;
	char	   *request_id;
	bool		has_support_session;
	int64		support_session;
} AutoraContext;

extern void ContextDefineConfiguration(void);

/*
 * The context in force; never NULL (present is false when there is none).
 * Its scope and group are those registered for the current transaction;
 * ZA004 when its actor role or store is no longer registered.
 */
extern const AutoraContext *ContextCurrent(void);

/* Changes whenever the context does: a key for caches derived from it. */
extern uint64 ContextGeneration(void);

/* The context, or ZA001 when there is none. */
extern const AutoraContext *ContextRequired(void);

/*
 * The one ZA001 error: no context where one is needed.  detail says what
 * needed it; hint NULL gives the usual advice.
 */
extern void NoContextError(const char *detail, const char *hint) pg_attribute_noreturn();

#endif							/* AUTORA_CONTEXT_H */
