/*-------------------------------------------------------------------------
 * vault.h
 *	  PII columns: commitments in the ledger, salts and clear values in the
 *	  erasable vault.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_VAULT_H
#define AUTORA_VAULT_H

#include "utils/jsonb.h"

#define PII_SALT_LEN			16
#define PII_COMMITMENT_PREFIX	"pii:"

/* One entry's random salt, ready to commit to its PII values. */
typedef struct PiiSalt PiiSalt;

extern PiiSalt *PiiSaltDraw(void);

/* The value as the ledger records it: "pii:" and 22 base64url characters. */
extern char *PiiCommit(const PiiSalt *salt, const char *value);

/* Keeps one entry's salt and the clear values it committed to. */
extern void VaultStore(int64 entry_id, const char *tenant_id, const PiiSalt *salt,
					   Jsonb *clear);

#endif							/* AUTORA_VAULT_H */
