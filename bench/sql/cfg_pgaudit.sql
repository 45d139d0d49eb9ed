-- bench/sql/cfg_pgaudit.sql: configuration 5, pgaudit session logging of
-- writes.  run.sh sets pgaudit.log = 'write' on this database (ALTER
-- DATABASE ... SET, superuser); the library is preloaded by the harness.

CREATE EXTENSION pgaudit;
