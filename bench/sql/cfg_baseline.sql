-- bench/sql/cfg_baseline.sql: configuration 1, no audit at all.
SELECT 1 AS baseline;
