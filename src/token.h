/*-------------------------------------------------------------------------
 * token.h
 *	  Verification of signed context tokens (JWT compact serialization).
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_TOKEN_H
#define AUTORA_TOKEN_H

#include "utils/jsonb.h"

/* Clock skew tolerated on exp and nbf, in seconds. */
#define TOKEN_LEEWAY_SECONDS 30

/* Longest token accepted, in bytes. */
#define TOKEN_MAX_LENGTH 16384

/*
 * Verifies the token's signature with the key its header names, and its
 * exp / nbf; returns its payload.  Raises ZA002 (malformed, bad signature,
 * unknown key, algorithm mismatch) or ZA003 (expired, not yet valid).
 * Messages never repeat the token or key material.
 */
extern Jsonb *TokenVerify(const char *token);

/* A top-level member of a jsonb object, or NULL. */
extern JsonbValue *JsonbMember(Jsonb *jb, const char *key);

/* Checks that key material suits its algorithm; raises 22023 otherwise. */
extern void TokenCheckKey(const char *alg, const char *key);

#endif							/* AUTORA_TOKEN_H */
