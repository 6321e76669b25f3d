-- 0001: the tables of store.Store. Identifiers use the "C" collation so
-- that ORDER BY id is byte order, as in the bbolt backend. Times are
-- timestamptz; NULL stands for the zero time.

CREATE TABLE sessions (
    id                   text COLLATE "C" PRIMARY KEY,
    user_id              text COLLATE "C" NOT NULL,
    upstream             text COLLATE "C" NOT NULL DEFAULT '',
    name_id_value        text COLLATE "C" NOT NULL DEFAULT '',
    name_id_format       text NOT NULL DEFAULT '',
    name_qualifier       text NOT NULL DEFAULT '',
    sp_name_qualifier    text NOT NULL DEFAULT '',
    session_index        text COLLATE "C" NOT NULL DEFAULT '',
    attributes           jsonb,
    auth_time            timestamptz,
    created_at           timestamptz,
    expires_at           timestamptz,
    ended_at             timestamptz,
    logout_id            text COLLATE "C"
);
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at, id);
CREATE INDEX sessions_name_id_idx ON sessions (upstream, name_id_value, session_index)
    WHERE name_id_value <> '';
CREATE INDEX sessions_active_expiry_idx ON sessions (expires_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_ended_idx ON sessions (ended_at) WHERE ended_at IS NOT NULL;

CREATE TABLE participants (
    session_id           text COLLATE "C" NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    key                  text COLLATE "C" NOT NULL,
    -- join order: a sequence, so concurrent joins are ordered by commit
    -- of their insert, never by a client clock.
    seq                  bigint GENERATED ALWAYS AS IDENTITY,
    kind                 text NOT NULL DEFAULT '',
    app_id               text NOT NULL DEFAULT '',
    name                 text NOT NULL DEFAULT '',
    channels             smallint NOT NULL DEFAULT 0,
    back_channel_url     text NOT NULL DEFAULT '',
    front_channel_url    text NOT NULL DEFAULT '',
    data                 jsonb,
    joined_at            timestamptz,
    PRIMARY KEY (session_id, key)
);
CREATE INDEX participants_order_idx ON participants (session_id, seq);

CREATE TABLE logouts (
    id                   text COLLATE "C" PRIMARY KEY,
    user_id              text COLLATE "C" NOT NULL DEFAULT '',
    session_ids          text[] NOT NULL,
    initiator_kind       text NOT NULL DEFAULT '',
    initiator_id         text NOT NULL DEFAULT '',
    exclude_key          text NOT NULL DEFAULT '',
    created_at           timestamptz,
    -- the participants of the ended sessions at the moment of logout, as
    -- a JSON array of store.Participant.
    participants         jsonb NOT NULL
);
CREATE INDEX logouts_user_idx ON logouts (user_id, created_at, id);
CREATE INDEX logouts_created_idx ON logouts (created_at);

CREATE TABLE deliveries (
    id                   text COLLATE "C" PRIMARY KEY,
    logout_id            text COLLATE "C" NOT NULL REFERENCES logouts (id) ON DELETE CASCADE,
    ord                  integer NOT NULL,
    participant          jsonb NOT NULL,
    state                text NOT NULL CHECK (state IN ('pending', 'retrying', 'delivered', 'failed')),
    created_at           timestamptz,
    next_attempt_at      timestamptz,
    lease_owner          text,
    lease_until          timestamptz,
    attempts             jsonb NOT NULL DEFAULT '[]',
    last_error           text NOT NULL DEFAULT '',
    done_at              timestamptz,
    UNIQUE (logout_id, ord),
    -- a due delivery always has a due time (the zero time is year 1), so
    -- claims can walk deliveries_due_idx and stop at "now".
    CHECK (state NOT IN ('pending', 'retrying') OR next_attempt_at IS NOT NULL)
);
CREATE INDEX deliveries_due_idx ON deliveries (next_attempt_at, id)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX deliveries_state_idx ON deliveries (state);

CREATE TABLE clients (
    id                   text COLLATE "C" PRIMARY KEY,
    kind                 text NOT NULL DEFAULT '',
    name                 text NOT NULL DEFAULT '',
    static               boolean NOT NULL DEFAULT false,
    metadata             bytea,
    created_at           timestamptz,
    updated_at           timestamptz
);
CREATE INDEX clients_kind_idx ON clients (kind, id);

CREATE TABLE records (
    namespace            text COLLATE "C" NOT NULL,
    key                  text COLLATE "C" NOT NULL,
    value                bytea,
    expires_at           timestamptz,
    PRIMARY KEY (namespace, key)
);
CREATE INDEX records_expiry_idx ON records (expires_at);

CREATE TABLE replay (
    namespace            text COLLATE "C" NOT NULL,
    id                   text COLLATE "C" NOT NULL,
    expires_at           timestamptz,
    PRIMARY KEY (namespace, id)
);
CREATE INDEX replay_expiry_idx ON replay (expires_at);

CREATE TABLE signing_keys (
    id                   text COLLATE "C" PRIMARY KEY,
    use                  text NOT NULL DEFAULT '',
    algorithm            text NOT NULL DEFAULT '',
    private_pem          bytea,
    created_at           timestamptz,
    not_before           timestamptz,
    not_after            timestamptz,
    retire_at            timestamptz
);
CREATE INDEX signing_keys_use_idx ON signing_keys (use, created_at, id);
