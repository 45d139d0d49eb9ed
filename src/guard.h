/*-------------------------------------------------------------------------
 * guard.h
 *	  Hooks that keep the ledger append-only and protected tables protected.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_GUARD_H
#define AUTORA_GUARD_H

extern void GuardInstallHooks(void);

#endif							/* AUTORA_GUARD_H */
