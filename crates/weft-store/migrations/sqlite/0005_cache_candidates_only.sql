-- The cache index holds completed step runs only: a lookup read every step run that shared
-- the key, the cached reruns of it too, newest first, until it reached a completed one, so
-- each rerun made the next lookup longer. A step run enters it when it completes.
DROP INDEX step_runs_by_cache_key;
CREATE INDEX step_runs_by_cache_key ON step_runs (cache_key, id)
    WHERE cache_key IS NOT NULL AND status = 'completed';
