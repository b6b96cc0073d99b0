-- A page of the runs with one status, newest first, reads the index in order instead of
-- sorting every run with that status.
DROP INDEX runs_by_status;
CREATE INDEX runs_by_status ON runs (status, id);
