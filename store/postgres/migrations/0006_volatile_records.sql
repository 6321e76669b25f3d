-- 0006: volatile records (store.IsVolatile namespaces: a login in
-- progress) live in an UNLOGGED table: their writes skip the WAL and its
-- flush, and the server empties the table in crash recovery — which the
-- store's contract allows for them and for nothing else.

CREATE UNLOGGED TABLE volatile_records (
    namespace            text COLLATE "C" NOT NULL,
    key                  text COLLATE "C" NOT NULL,
    value                bytea,
    expires_at           timestamptz,
    used                 boolean NOT NULL DEFAULT false,
    issued               bytea,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX volatile_records_expiry_idx ON volatile_records (expires_at);
