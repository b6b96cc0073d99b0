-- Keys of `weft server`'s API. Only a hash of each secret is kept: the secret is shown once.
CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,          -- the public part of the key, used to find it
    name         TEXT,
    role         TEXT NOT NULL,             -- viewer | editor
    secret_hash  TEXT NOT NULL,             -- BLAKE3 of the secret part, hex
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    last_used_at TEXT
);
