# autora_audit: PGXS build of the extension, plus the project's harness targets.
#   make / make install      build and install against $(PG_CONFIG)
#   make check               fresh machine -> deps, build, throwaway cluster, every test suite
#   make demo                same set-up, then the dealership walkthrough
#   make bench               same set-up, then bench/ (results in bench/RESULTS.md)

EXTENSION    = autora_audit
MODULE_big   = autora_audit
OBJS         = src/autora_audit.o src/objects.o src/context.o src/token.o src/tenants.o src/scope.o src/relinfo.o src/capture.o src/protect.o \
               src/encoding.o src/ledger.o src/writer.o src/vault.o src/chain.o src/verify.o \
               src/guard.o src/database_commands.o src/protected_ddl.o src/registry.o src/restore_state.o src/restore.o src/sealer.o src/summarize.o
DATA         = sql/autora_audit--0.2.sql
PG_CPPFLAGS  = -I$(srcdir)/src
SHLIB_LINK   = -lcrypto

# pg_regress cases, in order (test/sql, test/expected)
REGRESS      = install capture chain guards bad_input
REGRESS_OPTS = --inputdir=test --outputdir=test

PG_CONFIG ?= $(firstword $(wildcard /usr/lib/postgresql/15/bin/pg_config) pg_config)

# The harness goals work on a machine without PostgreSQL yet (they install it),
# so PGXS is only loaded when some other goal is asked for.
HARNESS_GOALS = check demo bench deps
ifneq ($(filter-out $(HARNESS_GOALS),$(or $(MAKECMDGOALS),all)),)
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# PGXS tracks no header dependencies: rebuild every object when a header changes.
$(OBJS): $(wildcard src/*.h)
else
.PHONY: $(HARNESS_GOALS)
$(HARNESS_GOALS):
	@bash tools/harness.sh $@
endif
