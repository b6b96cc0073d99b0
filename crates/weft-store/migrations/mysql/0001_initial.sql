-- The initial MySQL/MariaDB schema: the SQLite one with bounded keys (an InnoDB index key is at
-- most 3072 bytes, 4 bytes per utf8mb4 character) and binary collation, so that names compare
-- exactly, case and accents included, and ids sort as in the other backends. Migrations are
-- immutable once released: change the schema with a new file. Timestamps are UTC RFC 3339
-- strings with microseconds, so they sort as text; JSON columns hold canonical JSON text.

CREATE TABLE pipelines (
    id          VARCHAR(64) PRIMARY KEY,
    name        VARCHAR(512) NOT NULL UNIQUE,
    created_at  VARCHAR(40) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE snapshots (
    id              VARCHAR(64) PRIMARY KEY,
    pipeline_id     VARCHAR(64) NOT NULL,
    format_version  BIGINT NOT NULL,
    spec            LONGTEXT NOT NULL,
    created_at      VARCHAR(40) NOT NULL,
    FOREIGN KEY (pipeline_id) REFERENCES pipelines(id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE runs (
    id              VARCHAR(64) PRIMARY KEY,
    name            VARCHAR(700) NOT NULL,
    pipeline_id     VARCHAR(64) NOT NULL,
    snapshot_id     VARCHAR(64),
    invocations     BIGINT NOT NULL,
    status          VARCHAR(32) NOT NULL,
    status_reason   LONGTEXT,
    config          LONGTEXT NOT NULL,
    owner           LONGTEXT,
    resumed_from    VARCHAR(64),
    created_at      VARCHAR(40) NOT NULL,
    started_at      VARCHAR(40),
    ended_at        VARCHAR(40),
    heartbeat_at    VARCHAR(40),
    FOREIGN KEY (pipeline_id) REFERENCES pipelines(id),
    FOREIGN KEY (snapshot_id) REFERENCES snapshots(id),
    FOREIGN KEY (resumed_from) REFERENCES runs(id),
    INDEX runs_by_pipeline (pipeline_id, id),
    INDEX runs_by_status (status),
    INDEX runs_by_name (name)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE step_runs (
    id                    VARCHAR(64) PRIMARY KEY,
    run_id                VARCHAR(64) NOT NULL,
    invocation_id         VARCHAR(512) NOT NULL,
    step_name             VARCHAR(1024) NOT NULL,
    attempt               BIGINT NOT NULL,
    status                VARCHAR(32) NOT NULL,
    status_reason         LONGTEXT,
    code_hash             VARCHAR(128) NOT NULL,
    parameters            LONGTEXT NOT NULL,
    config                LONGTEXT NOT NULL,
    cache_key             VARCHAR(128),
    cache_parts           LONGTEXT,
    cache_expires_at      VARCHAR(40),
    original_step_run_id  VARCHAR(64),
    error                 LONGTEXT,
    created_at            VARCHAR(40) NOT NULL,
    started_at            VARCHAR(40),
    ended_at              VARCHAR(40),
    heartbeat_at          VARCHAR(40),
    UNIQUE (run_id, invocation_id, attempt),
    FOREIGN KEY (run_id) REFERENCES runs(id),
    FOREIGN KEY (original_step_run_id) REFERENCES step_runs(id),
    INDEX step_runs_by_cache_key (cache_key, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE artifacts (
    id               VARCHAR(64) PRIMARY KEY,
    name             VARCHAR(512) NOT NULL UNIQUE,
    has_custom_name  BIGINT NOT NULL,
    created_at       VARCHAR(40) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE artifact_versions (
    id                    VARCHAR(64) PRIMARY KEY,
    artifact_id           VARCHAR(64) NOT NULL,
    version               VARCHAR(255) NOT NULL,
    version_number        BIGINT,
    artifact_type         VARCHAR(64) NOT NULL,
    uri                   LONGTEXT NOT NULL,
    materializer          VARCHAR(512) NOT NULL,
    materializer_version  BIGINT NOT NULL,
    data_type             LONGTEXT NOT NULL,
    content_hash          VARCHAR(128) NOT NULL,
    size                  BIGINT NOT NULL,
    files                 LONGTEXT NOT NULL,
    save_type             VARCHAR(32) NOT NULL,
    producer_step_run_id  VARCHAR(64),
    created_at            VARCHAR(40) NOT NULL,
    UNIQUE (artifact_id, version),
    FOREIGN KEY (artifact_id) REFERENCES artifacts(id),
    FOREIGN KEY (producer_step_run_id) REFERENCES step_runs(id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE step_run_inputs (
    step_run_id          VARCHAR(64) NOT NULL,
    name                 VARCHAR(255) NOT NULL,
    position             BIGINT NOT NULL,
    artifact_version_id  VARCHAR(64) NOT NULL,
    kind                 VARCHAR(32) NOT NULL,
    PRIMARY KEY (step_run_id, name, position),
    FOREIGN KEY (step_run_id) REFERENCES step_runs(id),
    FOREIGN KEY (artifact_version_id) REFERENCES artifact_versions(id),
    INDEX step_run_inputs_by_artifact (artifact_version_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE step_run_outputs (
    step_run_id          VARCHAR(64) NOT NULL,
    name                 VARCHAR(255) NOT NULL,
    artifact_version_id  VARCHAR(64) NOT NULL,
    PRIMARY KEY (step_run_id, name),
    FOREIGN KEY (step_run_id) REFERENCES step_runs(id),
    FOREIGN KEY (artifact_version_id) REFERENCES artifact_versions(id),
    INDEX step_run_outputs_by_artifact (artifact_version_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE step_run_parents (
    parent_id  VARCHAR(64) NOT NULL,
    child_id   VARCHAR(64) NOT NULL,
    PRIMARY KEY (child_id, parent_id),
    FOREIGN KEY (parent_id) REFERENCES step_runs(id),
    FOREIGN KEY (child_id) REFERENCES step_runs(id),
    INDEX step_run_parents_by_parent (parent_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE metadata (
    resource_type  VARCHAR(32) NOT NULL,
    resource_id    VARCHAR(64) NOT NULL,
    `key`          VARCHAR(512) NOT NULL,
    value          LONGTEXT NOT NULL,
    source         VARCHAR(32) NOT NULL,
    created_at     VARCHAR(40) NOT NULL,
    PRIMARY KEY (resource_type, resource_id, `key`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE logs (
    id           VARCHAR(64) PRIMARY KEY,
    run_id       VARCHAR(64) NOT NULL,
    step_run_id  VARCHAR(64),
    uri          LONGTEXT NOT NULL,
    created_at   VARCHAR(40) NOT NULL,
    FOREIGN KEY (run_id) REFERENCES runs(id),
    FOREIGN KEY (step_run_id) REFERENCES step_runs(id),
    INDEX logs_by_run (run_id),
    UNIQUE INDEX logs_by_step_run (step_run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE tags (
    id          VARCHAR(64) PRIMARY KEY,
    name        VARCHAR(512) NOT NULL UNIQUE,
    created_at  VARCHAR(40) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE tag_links (
    tag_id         VARCHAR(64) NOT NULL,
    resource_type  VARCHAR(32) NOT NULL,
    resource_id    VARCHAR(64) NOT NULL,
    PRIMARY KEY (tag_id, resource_type, resource_id),
    FOREIGN KEY (tag_id) REFERENCES tags(id),
    INDEX tag_links_by_resource (resource_type, resource_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
