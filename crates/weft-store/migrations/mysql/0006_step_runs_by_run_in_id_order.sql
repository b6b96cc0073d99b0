-- A run's step runs are read in creation order (their ids grow with time), a page at a time
-- from a cursor: a page walks this index in order from the cursor, where the run's unique
-- index (by invocation id) would make it sort every step run of the run.
CREATE INDEX step_runs_by_run ON step_runs (run_id, id);
