-- The initial PostgreSQL schema: the SQLite one with BIGINT integers. Migrations are immutable
-- once released: change the schema with a new file. Timestamps are UTC RFC 3339 strings with
-- microseconds, so they sort as text; JSON columns hold canonical JSON text.

CREATE TABLE pipelines (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE snapshots (
    id              TEXT PRIMARY KEY,          -- BLAKE3 of the canonical encoding
    pipeline_id     TEXT NOT NULL REFERENCES pipelines(id),
    format_version  BIGINT NOT NULL,
    spec            TEXT NOT NULL,             -- JSON
    created_at      TEXT NOT NULL
);

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    pipeline_id     TEXT NOT NULL REFERENCES pipelines(id),
    snapshot_id     TEXT REFERENCES snapshots(id),
    invocations     BIGINT NOT NULL,          -- number of invocations in the snapshot
    status          TEXT NOT NULL,
    status_reason   TEXT,
    config          TEXT NOT NULL,             -- JSON: options of this run
    owner           TEXT,                      -- JSON: host, pid and start time of the orchestrator
    resumed_from    TEXT REFERENCES runs(id),  -- the run this one resumes
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    ended_at        TEXT,
    heartbeat_at    TEXT                       -- last sign of life of the orchestrator
);
CREATE INDEX runs_by_pipeline ON runs (pipeline_id, id);
CREATE INDEX runs_by_status ON runs (status);
CREATE INDEX runs_by_name ON runs (name);

CREATE TABLE step_runs (
    id                    TEXT PRIMARY KEY,
    run_id                TEXT NOT NULL REFERENCES runs(id),
    invocation_id         TEXT NOT NULL,
    step_name             TEXT NOT NULL,
    attempt               BIGINT NOT NULL,
    status                TEXT NOT NULL,
    status_reason         TEXT,
    code_hash             TEXT NOT NULL,
    parameters            TEXT NOT NULL,       -- JSON object
    config                TEXT NOT NULL,       -- JSON object
    cache_key             TEXT,
    cache_parts           TEXT,                -- JSON: what the cache key is made of
    cache_expires_at      TEXT,                -- after this, the step run is no cache candidate
    original_step_run_id  TEXT REFERENCES step_runs(id),
    error                 TEXT,                -- JSON: message, chain, kind, backtrace
    created_at            TEXT NOT NULL,
    started_at            TEXT,
    ended_at              TEXT,
    heartbeat_at          TEXT,
    UNIQUE (run_id, invocation_id, attempt)
);
CREATE INDEX step_runs_by_cache_key ON step_runs (cache_key, id) WHERE cache_key IS NOT NULL;

CREATE TABLE artifacts (
    id               TEXT PRIMARY KEY,
    name             TEXT NOT NULL UNIQUE,
    has_custom_name  BIGINT NOT NULL,
    created_at       TEXT NOT NULL
);

CREATE TABLE artifact_versions (
    id                    TEXT PRIMARY KEY,
    artifact_id           TEXT NOT NULL REFERENCES artifacts(id),
    version               TEXT NOT NULL,
    version_number        BIGINT,             -- set for automatic integer versions
    artifact_type         TEXT NOT NULL,
    uri                   TEXT NOT NULL,
    materializer          TEXT NOT NULL,
    materializer_version  BIGINT NOT NULL,
    data_type             TEXT NOT NULL,
    content_hash          TEXT NOT NULL,
    size                  BIGINT NOT NULL,
    files                 TEXT NOT NULL,       -- JSON: [{name, size, blake3}]
    save_type             TEXT NOT NULL,       -- step_output | external | manual
    producer_step_run_id  TEXT REFERENCES step_runs(id),
    created_at            TEXT NOT NULL,
    UNIQUE (artifact_id, version)
);
CREATE INDEX artifact_versions_by_producer ON artifact_versions (producer_step_run_id) WHERE producer_step_run_id IS NOT NULL;

CREATE TABLE step_run_inputs (
    step_run_id          TEXT NOT NULL REFERENCES step_runs(id),
    name                 TEXT NOT NULL,
    position             BIGINT NOT NULL,     -- index inside a fan-in input, 0 otherwise
    artifact_version_id  TEXT NOT NULL REFERENCES artifact_versions(id),
    kind                 TEXT NOT NULL,        -- step_output | external | manual
    PRIMARY KEY (step_run_id, name, position)
);
CREATE INDEX step_run_inputs_by_artifact ON step_run_inputs (artifact_version_id);

CREATE TABLE step_run_outputs (
    step_run_id          TEXT NOT NULL REFERENCES step_runs(id),
    name                 TEXT NOT NULL,
    artifact_version_id  TEXT NOT NULL REFERENCES artifact_versions(id),
    PRIMARY KEY (step_run_id, name)
);
CREATE INDEX step_run_outputs_by_artifact ON step_run_outputs (artifact_version_id);

CREATE TABLE step_run_parents (
    parent_id  TEXT NOT NULL REFERENCES step_runs(id),
    child_id   TEXT NOT NULL REFERENCES step_runs(id),
    PRIMARY KEY (child_id, parent_id)
);
CREATE INDEX step_run_parents_by_parent ON step_run_parents (parent_id);

CREATE TABLE metadata (
    resource_type  TEXT NOT NULL,              -- run | step_run | artifact_version
    resource_id    TEXT NOT NULL,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,              -- JSON
    source         TEXT NOT NULL,              -- system | user
    created_at     TEXT NOT NULL,
    PRIMARY KEY (resource_type, resource_id, key)
);

CREATE TABLE logs (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs(id),
    step_run_id  TEXT REFERENCES step_runs(id),
    uri          TEXT NOT NULL,                -- prefix in the artifact store
    created_at   TEXT NOT NULL
);
CREATE INDEX logs_by_run ON logs (run_id);
CREATE UNIQUE INDEX logs_by_step_run ON logs (step_run_id);

CREATE TABLE tags (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE tag_links (
    tag_id         TEXT NOT NULL REFERENCES tags(id),
    resource_type  TEXT NOT NULL,
    resource_id    TEXT NOT NULL,
    PRIMARY KEY (tag_id, resource_type, resource_id)
);
CREATE INDEX tag_links_by_resource ON tag_links (resource_type, resource_id);
