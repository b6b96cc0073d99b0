-- A page of the runs with one status, newest first, reads the index in order instead of
-- sorting every run with that status.
ALTER TABLE runs DROP INDEX runs_by_status, ADD INDEX runs_by_status (status, id);
