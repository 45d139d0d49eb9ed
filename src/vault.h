/*-------------------------------------------------------------------------
 * vault.h
 *	  PII columns: keyed digests in the ledger, clear values in the vault.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_VAULT_H
#define AUTORA_VAULT_H

#include "utils/jsonb.h"

/* The value as the ledger records it: "hmac-sha256:" and 64 hex digits. */
extern char *VaultDigest(const char *value);

/* Keeps the clear PII values of one ledger entry. */
extern void VaultStore(int64 entry_id, const char *tenant_id, Jsonb *clear);

#endif							/* AUTORA_VAULT_H */
