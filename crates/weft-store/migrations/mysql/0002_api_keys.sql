-- Keys of `weft server`'s API. Only a hash of each secret is kept: the secret is shown once.
CREATE TABLE api_keys (
    id           VARCHAR(64) PRIMARY KEY,
    name         VARCHAR(512),
    role         VARCHAR(16) NOT NULL,
    secret_hash  VARCHAR(128) NOT NULL,
    created_at   VARCHAR(40) NOT NULL,
    expires_at   VARCHAR(40),
    revoked_at   VARCHAR(40),
    last_used_at VARCHAR(40)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
