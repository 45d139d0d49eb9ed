/*-------------------------------------------------------------------------
 * encoding.h
 *	  Canonical byte encoding and SHA-256 hashing of ledger entries and
 *	  blocks, and the Merkle root of a block (docs/ledger-format.md).
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_ENCODING_H
#define AUTORA_ENCODING_H

#include "datatype/timestamp.h"
#include "utils/jsonb.h"

#define LEDGER_HASH_LEN 32
#define LEDGER_FORMAT_VERSION 2

/* Columns of autora.ledger, in table order (attnum - 1). */
typedef enum LedgerColumn
{
	LC_ID,
	LC_FORMAT,
	LC_TENANT_ID,
	LC_SEQ,
	LC_XID,
	LC_TS,
	LC_STMT_TS,
	LC_TABLE_SCHEMA,
	LC_TABLE_NAME,
	LC_OP,
	LC_PK,
	LC_BEFORE,
	LC_AFTER,
	LC_CHANGED,
	LC_ACTOR_ID,
	LC_ACTOR_ROLE,
	LC_DB_SESSION_USER,
	LC_DB_CURRENT_USER,
	LC_CLIENT_ADDR,
	LC_APPLICATION_NAME,
	LC_USER_AGENT,
	LC_ENDPOINT,
	LC_METHOD,
	LC_REQUEST_ID,
	LC_SUPPORT_SESSION,
	LC_EVENT,
	LC_ENTITY_TYPE,
	LC_ENTITY_ID,
	LC_METADATA,
	LC_HASH,
	LEDGER_NCOLUMNS
} LedgerColumn;

/*
 * Hash of an entry from its column values (LC_HASH itself is ignored).
 * known_text, when given, holds for jsonb and inet columns the text this
 * encoding uses (jsonb: as CanonicalJsonText produced it; inet: as inet_out
 * prints it), which the capture path has at hand; NULL slots are computed
 * from the value.
 */
extern void EntryHash(const Datum *values, const bool *nulls,
					  const char *const *known_text, uint8 out[LEDGER_HASH_LEN]);

/*
 * The canonical text of a jsonb value tree (pushJsonbValue's result):
 * byte for byte what PostgreSQL's jsonb output gives for the stored value.
 */
extern char *CanonicalJsonText(JsonbValue *value);

/* Columns of autora.ledger_blocks, in table order (attnum - 1). */
typedef enum BlockColumn
{
	BC_BLOCK_ID,
	BC_TENANT_ID,
	BC_BLOCK_NO,
	BC_SEALED_AT,
	BC_ENTRY_COUNT,
	BC_FIRST_ENTRY,
	BC_LAST_ENTRY,
	BC_ENTRY_IDS,
	BC_ENTRY_HASHES,
	BC_MERKLE_ROOT,
	BC_PREV_HASH,
	BC_BLOCK_HASH,
	BC_SEAL_XMIN,
	BC_SEAL_XMAX,
	BC_SEAL_XIP,
	BC_FORMAT,
	BLOCK_NCOLUMNS
} BlockColumn;

/* Fields of a block that its hash covers. */
typedef struct BlockHeader
{
	const char *tenant_id;		/* NULL for the platform chain */
	int64		block_no;
	int64		entry_count;
	int64		first_entry;
	int64		last_entry;
	TimestampTz sealed_at;
	uint8		merkle_root[LEDGER_HASH_LEN];
	uint8		prev_hash[LEDGER_HASH_LEN];
	/* the seal round's horizon (see chain.h): covered, so it cannot be moved */
	uint64		seal_xmin;
	uint64		seal_xmax;
	int			seal_nxip;
	const uint64 *seal_xip;
} BlockHeader;

extern void BlockHash(const BlockHeader *block, uint8 out[LEDGER_HASH_LEN]);

/* RFC 6962 Merkle tree hash over n entry hashes laid end to end; n >= 1. */
extern void MerkleRoot(const uint8 *hashes, int64 n, uint8 out[LEDGER_HASH_LEN]);

/* SHA-256 of a byte string. */
extern void Sha256Digest(const void *data, size_t len, uint8 out[LEDGER_HASH_LEN]);

/* Microseconds since the Unix epoch, as the encoding writes timestamps. */
extern int64 TimestampToUnixMicros(TimestampTz ts);

#endif							/* AUTORA_ENCODING_H */
