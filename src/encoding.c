/*-------------------------------------------------------------------------
 * encoding.c
 *	  Canonical byte encoding of ledger entries and blocks, SHA-256 through
 *	  OpenSSL EVP, and RFC 6962 Merkle roots.
 *
 * The encoding is the contract with external verifiers (tools/autora_verify
 * and anyone reading an export): docs/ledger-format.md describes it byte by
 * byte.  Change it only together with LEDGER_FORMAT_VERSION.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <openssl/evp.h>

#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "port/pg_bswap.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/inet.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "encoding.h"

const char *const LedgerColumnNames[LEDGER_NCOLUMNS] = {
	"id", "format", "tenant_id", "seq", "xid", "ts", "stmt_ts",
	"table_schema", "table_name", "op", "pk", "before", "after", "changed",
	"actor_id", "actor_role", "db_session_user", "db_current_user",
	"client_addr", "application_name", "user_agent", "endpoint", "method",
	"request_id", "support_session", "event", "entity_type", "entity_id",
	"metadata", "hash"
};

/* Seconds from the Unix epoch to the PostgreSQL epoch (2000-01-01). */
#define UNIX_TO_POSTGRES_MICROS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC)

static const char entry_magic[] = "autora-entry";
static const char block_magic[] = "autora-block";

static StringInfo encode_buffer = NULL;
static EVP_MD *sha256 = NULL;
static EVP_MD_CTX *digest_ctx = NULL;

int64
TimestampToUnixMicros(TimestampTz ts)
{
	return (int64) ts + UNIX_TO_POSTGRES_MICROS;
}

static StringInfo
EncodeBuffer(void)
{
	if (encode_buffer == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		encode_buffer = makeStringInfo();
		MemoryContextSwitchTo(old);
	}
	resetStringInfo(encode_buffer);
	return encode_buffer;
}

void
Sha256Digest(const void *data, size_t len, uint8 out[LEDGER_HASH_LEN])
{
	unsigned int outlen;

	if (sha256 == NULL)
	{
		sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
		digest_ctx = EVP_MD_CTX_new();
		if (sha256 == NULL || digest_ctx == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_SYSTEM_ERROR),
					 errmsg("could not initialise SHA-256 from OpenSSL")));
	}
	if (EVP_DigestInit_ex2(digest_ctx, sha256, NULL) != 1 ||
		EVP_DigestUpdate(digest_ctx, data, len) != 1 ||
		EVP_DigestFinal_ex(digest_ctx, out, &outlen) != 1 ||
		outlen != LEDGER_HASH_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("SHA-256 computation failed in OpenSSL")));
}

/* --- framing: NULL is 0x00; a value is 0x01, u32 big-endian length, bytes --- */

static void
PutUint32(StringInfo buf, uint32 v)
{
	uint32		be = pg_hton32(v);

	appendBinaryStringInfo(buf, (char *) &be, 4);
}

static void
PutNull(StringInfo buf)
{
	appendStringInfoCharMacro(buf, 0);
}

static void
PutBytes(StringInfo buf, const void *data, uint32 len)
{
	appendStringInfoCharMacro(buf, 1);
	PutUint32(buf, len);
	appendBinaryStringInfo(buf, data, len);
}

static void
PutInt64(StringInfo buf, int64 v)
{
	uint64		be = pg_hton64((uint64) v);

	PutBytes(buf, &be, 8);
}

static void
PutCString(StringInfo buf, const char *s)
{
	if (s == NULL)
		PutNull(buf);
	else
		PutBytes(buf, s, strlen(s));
}

static void
PutText(StringInfo buf, Datum v)
{
	text	   *t = DatumGetTextPP(v);

	PutBytes(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/*
 * A JSON string as escape_json() writes it.  Most values need no escaping
 * at all (escape_json only touches '"', '\\' and control characters), and
 * are copied whole instead of a byte at a time.
 */
static void
AppendJsonString(StringInfo out, const char *s, int len)
{
	for (int i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];

		if (c < 0x20 || c == '"' || c == '\\')
		{
			escape_json(out, pnstrdup(s, len));
			return;
		}
	}
	enlargeStringInfo(out, len + 2);
	out->data[out->len++] = '"';
	memcpy(out->data + out->len, s, len);
	out->len += len;
	out->data[out->len++] = '"';
	out->data[out->len] = '\0';
}

static void
AppendScalar(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			appendBinaryStringInfo(out, "null", 4);
			break;
		case jbvBool:
			appendStringInfoString(out, v->val.boolean ? "true" : "false");
			break;
		case jbvNumeric:
			appendStringInfoString(out, DatumGetCString(DirectFunctionCall1(numeric_out,
																			NumericGetDatum(v->val.numeric))));
			break;
		case jbvString:
			AppendJsonString(out, v->val.string.val, v->val.string.len);
			break;
		default:
			elog(ERROR, "autora: unexpected jsonb scalar type %d", (int) v->type);
	}
}

static void AppendContainer(StringInfo out, const JsonbContainer *container);

/* Entry index of a container, read in place as fillJsonbValue() reads it. */
static void
AppendEntry(StringInfo out, const JsonbContainer *container, const char *base, int index)
{
	JEntry		entry = container->children[index];
	uint32		offset = getJsonbOffset(container, index);

	if (JBE_ISSTRING(entry))
		AppendJsonString(out, base + offset, getJsonbLength(container, index));
	else if (JBE_ISNUMERIC(entry))
		appendStringInfoString(out, DatumGetCString(DirectFunctionCall1(numeric_out,
																		PointerGetDatum(base + INTALIGN(offset)))));
	else if (JBE_ISBOOL_TRUE(entry))
		appendBinaryStringInfo(out, "true", 4);
	else if (JBE_ISBOOL_FALSE(entry))
		appendBinaryStringInfo(out, "false", 5);
	else if (JBE_ISNULL(entry))
		appendBinaryStringInfo(out, "null", 4);
	else
		AppendContainer(out, (const JsonbContainer *) (base + INTALIGN(offset)));
}

/*
 * The canonical text of a stored jsonb container: what JsonbToCString()
 * writes (", " between members, ": " after keys, a raw scalar bare), read
 * straight from the container rather than through the generic iterator.
 */
static void
AppendContainer(StringInfo out, const JsonbContainer *container)
{
	uint32		count = JsonContainerSize(container);

	if (JsonContainerIsObject(container))
	{
		const char *base = (const char *) &container->children[count * 2];

		appendStringInfoCharMacro(out, '{');
		for (uint32 i = 0; i < count; i++)
		{
			if (i > 0)
				appendBinaryStringInfo(out, ", ", 2);
			AppendEntry(out, container, base, i);
			appendBinaryStringInfo(out, ": ", 2);
			AppendEntry(out, container, base, i + count);
		}
		appendStringInfoCharMacro(out, '}');
	}
	else
	{
		const char *base = (const char *) &container->children[count];
		bool		scalar = JsonContainerIsScalar(container);

		if (!scalar)
			appendStringInfoCharMacro(out, '[');
		for (uint32 i = 0; i < count; i++)
		{
			if (i > 0)
				appendBinaryStringInfo(out, ", ", 2);
			AppendEntry(out, container, base, i);
		}
		if (!scalar)
			appendStringInfoCharMacro(out, ']');
	}
}

static void
AppendCanonicalJson(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
		case jbvBool:
		case jbvNumeric:
		case jbvString:
			AppendScalar(out, v);
			break;
		case jbvArray:
			if (!v->val.array.rawScalar)
				appendStringInfoCharMacro(out, '[');
			for (int i = 0; i < v->val.array.nElems; i++)
			{
				if (i > 0)
					appendBinaryStringInfo(out, ", ", 2);
				AppendCanonicalJson(out, &v->val.array.elems[i]);
			}
			if (!v->val.array.rawScalar)
				appendStringInfoCharMacro(out, ']');
			break;
		case jbvObject:
			appendStringInfoCharMacro(out, '{');
			for (int i = 0; i < v->val.object.nPairs; i++)
			{
				if (i > 0)
					appendBinaryStringInfo(out, ", ", 2);
				AppendCanonicalJson(out, &v->val.object.pairs[i].key);
				appendBinaryStringInfo(out, ": ", 2);
				AppendCanonicalJson(out, &v->val.object.pairs[i].value);
			}
			appendStringInfoCharMacro(out, '}');
			break;
		case jbvBinary:
			AppendContainer(out, v->val.binary.data);
			break;
		default:
			elog(ERROR, "autora: unexpected jsonb value type %d", (int) v->type);
	}
}

char *
CanonicalJsonText(JsonbValue *value)
{
	StringInfoData out;

	initStringInfo(&out);
	AppendCanonicalJson(&out, value);
	return out.data;
}

/* A stored jsonb, framed, its canonical text written in place. */
static void
PutJsonb(StringInfo buf, Datum v)
{
	Jsonb	   *jb = DatumGetJsonbP(v);
	int			length_at;
	uint32		be;

	appendStringInfoCharMacro(buf, 1);
	length_at = buf->len;
	PutUint32(buf, 0);
	AppendContainer(buf, &jb->root);
	be = pg_hton32((uint32) (buf->len - length_at - 4));
	memcpy(buf->data + length_at, &be, 4);
	if ((Pointer) jb != DatumGetPointer(v))
		pfree(jb);
}

static void
PutTextArray(StringInfo buf, Datum v)
{
	ArrayType  *arr = DatumGetArrayTypeP(v);
	Datum	   *elems;
	bool	   *elemnulls;
	int			n;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elemnulls, &n);
	appendStringInfoCharMacro(buf, 1);
	PutUint32(buf, (uint32) n);
	for (int i = 0; i < n; i++)
	{
		if (elemnulls[i])
			PutNull(buf);
		else
			PutText(buf, elems[i]);
	}
}

static void
PutInet(StringInfo buf, Datum v)
{
	PutCString(buf, DatumGetCString(DirectFunctionCall1(inet_out, v)));
}

void
EntryHash(const Datum *values, const bool *nulls, char *const *jsonb_text,
		  uint8 out[LEDGER_HASH_LEN])
{
	StringInfo	buf = EncodeBuffer();

	appendBinaryStringInfo(buf, entry_magic, sizeof(entry_magic) - 1);
	for (int c = 0; c < LC_HASH; c++)
	{
		Datum		v = values[c];

		if (nulls[c])
		{
			PutNull(buf);
			continue;
		}
		switch ((LedgerColumn) c)
		{
			case LC_FORMAT:
				PutInt64(buf, DatumGetInt16(v));
				break;
			case LC_ID:
			case LC_SEQ:
			case LC_XID:
			case LC_SUPPORT_SESSION:
				PutInt64(buf, DatumGetInt64(v));
				break;
			case LC_TS:
			case LC_STMT_TS:
				PutInt64(buf, TimestampToUnixMicros(DatumGetTimestampTz(v)));
				break;
			case LC_PK:
			case LC_BEFORE:
			case LC_AFTER:
			case LC_METADATA:
				if (jsonb_text != NULL && jsonb_text[c] != NULL)
					PutCString(buf, jsonb_text[c]);
				else
					PutJsonb(buf, v);
				break;
			case LC_CHANGED:
				PutTextArray(buf, v);
				break;
			case LC_CLIENT_ADDR:
				PutInet(buf, v);
				break;
			default:
				PutText(buf, v);
				break;
		}
	}
	Sha256Digest(buf->data, buf->len, out);
}

void
BlockHash(const BlockHeader *block, uint8 out[LEDGER_HASH_LEN])
{
	StringInfo	buf = EncodeBuffer();

	appendBinaryStringInfo(buf, block_magic, sizeof(block_magic) - 1);
	PutInt64(buf, LEDGER_FORMAT_VERSION);
	PutCString(buf, block->tenant_id);
	PutInt64(buf, block->block_no);
	PutInt64(buf, block->entry_count);
	PutInt64(buf, block->first_entry);
	PutInt64(buf, block->last_entry);
	PutInt64(buf, TimestampToUnixMicros(block->sealed_at));
	PutBytes(buf, block->merkle_root, LEDGER_HASH_LEN);
	PutBytes(buf, block->prev_hash, LEDGER_HASH_LEN);
	PutInt64(buf, (int64) block->seal_xmin);
	PutInt64(buf, (int64) block->seal_xmax);
	appendStringInfoCharMacro(buf, 1);
	PutUint32(buf, (uint32) block->seal_nxip);
	for (int i = 0; i < block->seal_nxip; i++)
		PutInt64(buf, (int64) block->seal_xip[i]);
	Sha256Digest(buf->data, buf->len, out);
}

/* MTH(D[n]) of RFC 6962 section 2.1: leaves prefixed 0x00, nodes 0x01. */
void
MerkleRoot(const uint8 *hashes, int64 n, uint8 out[LEDGER_HASH_LEN])
{
	uint8		node[1 + 2 * LEDGER_HASH_LEN];
	int64		k;

	Assert(n >= 1);
	if (n == 1)
	{
		node[0] = 0x00;
		memcpy(node + 1, hashes, LEDGER_HASH_LEN);
		Sha256Digest(node, 1 + LEDGER_HASH_LEN, out);
		return;
	}
	/* k: the largest power of two smaller than n */
	for (k = 1; k * 2 < n; k *= 2)
		;
	node[0] = 0x01;
	MerkleRoot(hashes, k, node + 1);
	MerkleRoot(hashes + k * LEDGER_HASH_LEN, n - k, node + 1 + LEDGER_HASH_LEN);
	Sha256Digest(node, sizeof(node), out);
}
