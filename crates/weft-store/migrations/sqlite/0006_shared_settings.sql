-- A step run's settings are stored once per distinct text instead of on every row: the
-- steps of a pipeline mostly share them, and they were a third of a step run's row, written
-- to the log and the tables on every step. `step_runs.config` now holds the key of its
-- settings in `step_configs`: the BLAKE3 of the text (32 hex digits), or `step run <id>` for
-- the rows from before, which keep their own copy. (The column is reused rather than
-- replaced: dropping a column rebuilds SQLite's schema, which doubled the time a new store
-- takes to open.)
CREATE TABLE step_configs (
    config_key  TEXT PRIMARY KEY,
    config      TEXT NOT NULL        -- JSON object
) WITHOUT ROWID;
INSERT INTO step_configs (config_key, config) SELECT 'step run ' || id, config FROM step_runs;
UPDATE step_runs SET config = 'step run ' || id;
