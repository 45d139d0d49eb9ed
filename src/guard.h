/*-------------------------------------------------------------------------
 * guard.h
 *	  Hooks that keep the ledger append-only and protected tables protected.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_GUARD_H
#define AUTORA_GUARD_H

extern void GuardInstallHooks(void);

/*
 * protect()/unprotect() change one relation's autora triggers and policies;
 * while they do, the guards let changes to that relation (only) through.
 */
extern void GuardAllowRelationBegin(Oid relid);
extern void GuardAllowRelationEnd(void);

/* Is this trigger one that autora.protect() attached? */
extern bool IsAutoraTriggerFunction(Oid funcid);

#endif							/* AUTORA_GUARD_H */
