/*-------------------------------------------------------------------------
 * encoding.c
 *	  Canonical byte encoding of ledger entries and blocks, SHA-256, and
 *	  RFC 6962 Merkle roots.
 *
 * The encoding is the contract with external verifiers (tools/autora_verify
 * and anyone reading an export): docs/ledger-format.md describes it byte by
 * byte.  Change it only together with LEDGER_FORMAT_VERSION.
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"

/*
 * SHA-256 through OpenSSL's SHA256_* functions, deprecated in OpenSSL 3 in
 * favour of EVP but the same optimised code underneath.  Measured on the
 * bench machine (OpenSSL 3.0, -O2, 2M calls): a 65-byte Merkle node takes
 * 168 ns with SHA256_*, 329 ns with EVP and a reused EVP_MD_CTX, 762 ns
 * with EVP_Digest; a 750-byte entry 1034, 1223 and 1666 ns.  PostgreSQL's
 * pg_cryptohash goes through EVP and allocates a context per hash.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>

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

/* Seconds from the Unix epoch to the PostgreSQL epoch (2000-01-01). */
#define UNIX_TO_POSTGRES_MICROS \
	((int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC)

static const char entry_magic[] = "autora-entry";
static const char block_magic[] = "autora-block";

static StringInfo encode_buffer = NULL;

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
	SHA256_CTX	ctx;

	StaticAssertStmt(LEDGER_HASH_LEN == SHA256_DIGEST_LENGTH, "hash length");
	if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, data, len) != 1 ||
		SHA256_Final(out, &ctx) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_SYSTEM_ERROR),
				 errmsg("SHA-256 computation failed in OpenSSL")));
}

/* Bytes that escape_json() rewrites: '"', '\\' and the control characters. */
static inline bool
NeedsEscape(unsigned char c)
{
	return c < 0x20 || c == '"' || c == '\\';
}

/*
 * The same test for eight bytes at once, with the "has a byte less than n"
 * and "has a zero byte" word tricks (exact as a yes/no answer).
 */
static inline bool
ChunkNeedsEscape(uint64 x)
{
	const uint64 ones = UINT64CONST(0x0101010101010101);
	const uint64 highs = UINT64CONST(0x8080808080808080);
	uint64		quote = x ^ (ones * '"');
	uint64		backslash = x ^ (ones * '\\');

	return (((x - ones * 0x20) & ~x) |
			((quote - ones) & ~quote) |
			((backslash - ones) & ~backslash)) & highs;
}

/* Length of the prefix of s that escape_json() would copy unchanged. */
static int
PlainPrefix(const char *s, int len)
{
	int			i = 0;

	for (; i + 8 <= len; i += 8)
	{
		uint64		chunk;

		memcpy(&chunk, s + i, 8);
		if (ChunkNeedsEscape(chunk))
			break;
	}
	while (i < len && !NeedsEscape((unsigned char) s[i]))
		i++;
	return i;
}

/* Appends n bytes; the fast path is inline, enlargeStringInfo only on growth. */
static inline void
Emit(StringInfo out, const char *s, int n)
{
	if (unlikely(out->len + n >= out->maxlen))
		enlargeStringInfo(out, n);
	memcpy(out->data + out->len, s, n);
	out->len += n;
}

static inline void
EmitChar(StringInfo out, char c)
{
	if (unlikely(out->len + 1 >= out->maxlen))
		enlargeStringInfo(out, 1);
	out->data[out->len++] = c;
}

/* --- framing: NULL is 0x00; a value is 0x01, u32 big-endian length, bytes --- */

static inline void
PutUint32(StringInfo buf, uint32 v)
{
	uint32		be = pg_hton32(v);

	Emit(buf, (char *) &be, 4);
}

static inline void
PutNull(StringInfo buf)
{
	EmitChar(buf, 0);
}

static inline void
PutBytes(StringInfo buf, const void *data, uint32 len)
{
	EmitChar(buf, 1);
	PutUint32(buf, len);
	Emit(buf, data, len);
}

static inline void
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

static inline void
PutText(StringInfo buf, Datum v)
{
	text	   *t = DatumGetTextPP(v);

	PutBytes(buf, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
}

/*
 * A JSON string as escape_json() writes it.  Runs that need no escaping,
 * usually the whole value, are copied in one go.  The buffer is not kept
 * NUL-terminated while text is appended: EntryHash uses lengths only.
 */
static void
AppendJsonString(StringInfo out, const char *s, int len)
{
	int			run = PlainPrefix(s, len);

	EmitChar(out, '"');
	Emit(out, s, run);
	if (run < len)
	{
		StringInfoData escaped;

		/* rare: hand the rest to PostgreSQL's own escaping */
		initStringInfo(&escaped);
		escape_json(&escaped, pnstrdup(s + run, len - run));
		/* drop escape_json's quotes: the opening one is written above */
		Emit(out, escaped.data + 1, escaped.len - 2);
		pfree(escaped.data);
	}
	EmitChar(out, '"');
}

static void
AppendNumeric(StringInfo out, Datum numeric)
{
	char	   *text = DatumGetCString(DirectFunctionCall1(numeric_out, numeric));

	Emit(out, text, strlen(text));
	pfree(text);
}

/* A jsonb scalar as jsonb_out prints it. */
static void
AppendScalar(StringInfo out, JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			Emit(out, "null", 4);
			break;
		case jbvBool:
			if (v->val.boolean)
				Emit(out, "true", 4);
			else
				Emit(out, "false", 5);
			break;
		case jbvNumeric:
			AppendNumeric(out, NumericGetDatum(v->val.numeric));
			break;
		case jbvString:
			AppendJsonString(out, v->val.string.val, v->val.string.len);
			break;
		default:
			elog(ERROR, "autora: unexpected jsonb scalar type %d", (int) v->type);
	}
}

/*
 * The deepest jsonb nesting the ledger records.  Whatever capture encoded,
 * verify must be able to encode again, in a backend whose stack may be
 * deeper already: a fixed bound, not the stack, decides.
 */
#define LEDGER_MAX_JSON_DEPTH 1000

static void
CheckJsonDepth(int depth)
{
	if (depth > LEDGER_MAX_JSON_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("a json value nested deeper than %d levels cannot be recorded in the ledger",
						LEDGER_MAX_JSON_DEPTH),
				 errhint("Store such documents flatter, or in an unprotected table.")));
	check_stack_depth();
}

static void AppendContainer(StringInfo out, const JsonbContainer *container, int depth);

/* Child `index` of a container, at data offset `offset`, read in place. */
static void
AppendEntry(StringInfo out, const JsonbContainer *container, const char *base,
			int index, uint32 offset, uint32 end, int depth)
{
	JEntry		entry = container->children[index];

	if (JBE_ISSTRING(entry))
		AppendJsonString(out, base + offset, end - offset);
	else if (JBE_ISNUMERIC(entry))
		AppendNumeric(out, PointerGetDatum(base + INTALIGN(offset)));
	else if (JBE_ISBOOL_TRUE(entry))
		Emit(out, "true", 4);
	else if (JBE_ISBOOL_FALSE(entry))
		Emit(out, "false", 5);
	else if (JBE_ISNULL(entry))
		Emit(out, "null", 4);
	else
		AppendContainer(out, (const JsonbContainer *) (base + INTALIGN(offset)), depth + 1);
}

/*
 * The canonical text of a stored jsonb container: what JsonbToCString()
 * writes (", " between members, ": " after keys, a raw scalar bare), read
 * straight from the container rather than through the generic iterator.
 * Children's offsets are found in one forward pass (getJsonbOffset() per
 * child walks back up to JB_OFFSET_STRIDE entries each time).
 */
static void
AppendContainer(StringInfo out, const JsonbContainer *container, int depth)
{
	uint32		count = JsonContainerSize(container);
	bool		object = JsonContainerIsObject(container);
	uint32		nchildren = object ? count * 2 : count;
	const char *base = (const char *) &container->children[nchildren];
	uint32		stack_offsets[65];
	uint32	   *offsets = stack_offsets;
	uint32		offset = 0;

	CheckJsonDepth(depth);
	/* offsets[i] .. offsets[i + 1]: child i's data */
	if (nchildren + 1 > lengthof(stack_offsets))
		offsets = palloc(sizeof(uint32) * (nchildren + 1));
	for (uint32 i = 0; i < nchildren; i++)
	{
		offsets[i] = offset;
		JBE_ADVANCE_OFFSET(offset, container->children[i]);
	}
	offsets[nchildren] = offset;

	if (object)
	{
		EmitChar(out, '{');
		for (uint32 i = 0; i < count; i++)
		{
			if (i > 0)
				Emit(out, ", ", 2);
			AppendEntry(out, container, base, i, offsets[i], offsets[i + 1], depth);
			Emit(out, ": ", 2);
			AppendEntry(out, container, base, i + count,
						offsets[i + count], offsets[i + count + 1], depth);
		}
		EmitChar(out, '}');
	}
	else
	{
		bool		scalar = JsonContainerIsScalar(container);

		if (!scalar)
			EmitChar(out, '[');
		for (uint32 i = 0; i < count; i++)
		{
			if (i > 0)
				Emit(out, ", ", 2);
			AppendEntry(out, container, base, i, offsets[i], offsets[i + 1], depth);
		}
		if (!scalar)
			EmitChar(out, ']');
	}
	if (offsets != stack_offsets)
		pfree(offsets);
}

/*
 * A jsonb value tree as jsonb_out prints it (keys in jsonb's order), depth
 * bounded so that verify can always encode again what capture wrote.
 */
static void
AppendCanonicalJson(StringInfo out, JsonbValue *v, int depth)
{
	CheckJsonDepth(depth);
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
				EmitChar(out, '[');
			for (int i = 0; i < v->val.array.nElems; i++)
			{
				if (i > 0)
					Emit(out, ", ", 2);
				AppendCanonicalJson(out, &v->val.array.elems[i], depth + 1);
			}
			if (!v->val.array.rawScalar)
				EmitChar(out, ']');
			break;
		case jbvObject:
			EmitChar(out, '{');
			for (int i = 0; i < v->val.object.nPairs; i++)
			{
				if (i > 0)
					Emit(out, ", ", 2);
				AppendCanonicalJson(out, &v->val.object.pairs[i].key, depth + 1);
				Emit(out, ": ", 2);
				AppendCanonicalJson(out, &v->val.object.pairs[i].value, depth + 1);
			}
			EmitChar(out, '}');
			break;
		case jbvBinary:
			AppendContainer(out, v->val.binary.data, depth);
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
	AppendCanonicalJson(&out, value, 0);
	out.data[out.len] = '\0';
	return out.data;
}

/* A stored jsonb, framed, its canonical text written in place. */
static void
PutJsonb(StringInfo buf, Datum v)
{
	Jsonb	   *jb = DatumGetJsonbP(v);
	int			length_at;
	uint32		be;

	EmitChar(buf, 1);
	length_at = buf->len;
	PutUint32(buf, 0);
	AppendContainer(buf, &jb->root, 0);
	be = pg_hton32((uint32) (buf->len - length_at - 4));
	memcpy(buf->data + length_at, &be, 4);
	if ((Pointer) jb != DatumGetPointer(v))
		pfree(jb);
}

/* TEXTARRAY: the element count, then each element as NULL or TEXT. */
static void
PutTextArray(StringInfo buf, Datum v)
{
	ArrayType  *arr = DatumGetArrayTypeP(v);
	Datum	   *elems;
	bool	   *elemnulls;
	int			n;

	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &elemnulls, &n);
	EmitChar(buf, 1);
	PutUint32(buf, (uint32) n);
	for (int i = 0; i < n; i++)
	{
		if (elemnulls[i])
			PutNull(buf);
		else
			PutText(buf, elems[i]);
	}
}

/*
 * Entries come in runs from one client: each address is printed once.  The
 * last one is kept in fixed buffers (an inet is at most 18 bytes of data,
 * its text at most INET6_ADDRSTRLEN plus "/128"), so that no error can leave
 * a stale pointer behind.
 */
static void
PutInet(StringInfo buf, Datum v)
{
	static char last_data[sizeof(inet_struct)];
	static int	last_len = -1;
	static char last_text[64];
	inet	   *addr = DatumGetInetPP(v);
	int			len = VARSIZE_ANY_EXHDR(addr);

	if (len != last_len || memcmp(VARDATA_ANY(addr), last_data, len) != 0)
	{
		char	   *text = DatumGetCString(DirectFunctionCall1(inet_out, PointerGetDatum(addr)));

		if (len > (int) sizeof(last_data) || strlen(text) >= sizeof(last_text))
		{
			PutCString(buf, text);	/* not an inet this version knows: no cache */
			return;
		}
		last_len = -1;
		memcpy(last_data, VARDATA_ANY(addr), len);
		strcpy(last_text, text);
		last_len = len;
	}
	PutCString(buf, last_text);
}

void
EntryHash(const Datum *values, const bool *nulls, const char *const *known_text,
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
		if (known_text != NULL && known_text[c] != NULL)
		{
			PutCString(buf, known_text[c]);
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

/*
 * block_hash: SHA-256 of "autora-block" and the covered fields
 * (docs/ledger-format.md, section 4).
 */
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
