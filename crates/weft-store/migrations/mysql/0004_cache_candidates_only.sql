-- A cache lookup reads the completed step runs of a key only, newest first, instead of every
-- step run that shared the key (the cached reruns of it too), which made each rerun's lookup
-- longer than the last.
ALTER TABLE step_runs DROP INDEX step_runs_by_cache_key,
    ADD INDEX step_runs_by_cache_key (cache_key, status, id);
