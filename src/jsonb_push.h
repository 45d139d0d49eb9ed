/*-------------------------------------------------------------------------
 * jsonb_push.h
 *	  Building jsonb values piece by piece: the capture path assembles row
 *	  images, metadata and vault objects with these.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_JSONB_PUSH_H
#define AUTORA_JSONB_PUSH_H

#include "utils/jsonb.h"
#include "utils/numeric.h"

/* A string as an object key (WJB_KEY) or a value (WJB_VALUE, WJB_ELEM). */
static inline void
PushString(JsonbParseState **state, JsonbIteratorToken seq, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	pushJsonbValue(state, seq, &v);
}

/* A whole jsonb value as the next object member's value. */
static inline void
PushJsonb(JsonbParseState **state, Jsonb *jb)
{
	JsonbValue	v;

	v.type = jbvBinary;
	v.val.binary.data = &jb->root;
	v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	pushJsonbValue(state, WJB_VALUE, &v);
}

static inline void
PushNumeric(JsonbParseState **state, Numeric n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = n;
	pushJsonbValue(state, WJB_VALUE, &v);
}

#endif							/* AUTORA_JSONB_PUSH_H */
