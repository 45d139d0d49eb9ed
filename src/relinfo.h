/*-------------------------------------------------------------------------
 * relinfo.h
 *	  Per-relation capture metadata, cached and invalidated with the relcache.
 *-------------------------------------------------------------------------
 */
#ifndef AUTORA_RELINFO_H
#define AUTORA_RELINFO_H

#include "access/attnum.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/jsonb.h"
#include "utils/rel.h"

/* how a column's value becomes a jsonb value */
typedef enum ColumnJsonKind
{
	COLJSON_STRING,				/* output function text */
	COLJSON_BOOL,
	COLJSON_INTEGER,			/* int2, int4, int8 */
	COLJSON_NUMERIC,
	COLJSON_FLOAT,				/* float4, float8: via their text form */
	COLJSON_DATETIME,			/* date, timestamp, timestamptz: ISO 8601 */
	COLJSON_JSON,
	COLJSON_JSONB,
	COLJSON_GENERIC				/* arrays, composites: to_jsonb() */
} ColumnJsonKind;

typedef struct CapturedColumn
{
	AttrNumber	attnum;
	char	   *name;
	Oid			typid;			/* base type (domains resolved) */
	int16		typlen;
	bool		typbyval;
	ColumnJsonKind kind;
	bool		pii;
	bool		holds_json;		/* json inside: \u0000 cannot become jsonb */
	FmgrInfo	output;			/* type output function */
	FmgrInfo	to_jsonb;		/* COLJSON_GENERIC only */
} CapturedColumn;

typedef struct RelInfo
{
	Oid			relid;
	bool		valid;
	MemoryContext mcxt;
	char	   *relname;		/* the relation's own name, for messages */
	/* the registered (root) table: entries of its members are named after it */
	char	   *root_schema;
	char	   *root_name;
	/* a partition or inheritance child: {"schema": ..., "name": ...} of itself */
	Jsonb	   *partition;
	/* and its entries' metadata, {"partition": {...}}; both NULL for the root */
	Jsonb	   *row_metadata;
	/* captured columns (not dropped, not excluded), in attnum order */
	int			ncolumns;
	CapturedColumn *columns;
	/* the same, as indexes into columns[], in jsonb key order (see relinfo.c) */
	int		   *json_order;
	/* primary key columns, as indexes into columns[], in jsonb key order */
	int			npk;
	int		   *pk;
	/* tenant column; InvalidAttrNumber for a platform table */
	AttrNumber	tenant_attnum;
	Oid			tenant_typid;
	FmgrInfo	tenant_output;
	FmgrInfo	tenant_input;
	Oid			tenant_ioparam;
	int32		tenant_typmod;
} RelInfo;

extern void RelInfoInit(void);

/*
 * Metadata for the relation a capture or stamp trigger fired on, from the
 * registry (autora.protected); 42501 when the relation is not protected.
 */
extern RelInfo *RelInfoGet(Relation rel);

#endif							/* AUTORA_RELINFO_H */
