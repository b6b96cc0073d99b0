-- A step run's settings are stored once per distinct text instead of on every row: the
-- steps of a pipeline mostly share them, and they were a third of a step run's row, written
-- to the log and the tables on every step. `step_runs.config` now holds the key of its
-- settings in `step_configs`: the BLAKE3 of the text (32 hex digits), or `step run <id>` for
-- the rows from before, which keep their own copy. (The column is reused rather than
-- replaced: dropping a column rebuilds SQLite's schema, which doubled the time a new store
-- takes to open.)
CREATE TABLE step_configs (
    config_key  VARCHAR(80) PRIMARY KEY,
    config      LONGTEXT NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
INSERT INTO step_configs (config_key, config) SELECT CONCAT('step run ', id), config FROM step_runs;
UPDATE step_runs SET config = CONCAT('step run ', id);
