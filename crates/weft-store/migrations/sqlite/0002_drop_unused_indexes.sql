-- Indexes no query reads (a version's producer is found from the version's own row, a step
-- run's outputs by the step run), each written on every step: a page of the log per step.
DROP INDEX artifact_versions_by_producer;
DROP INDEX step_run_outputs_by_artifact;
