-- 0002: the change feed. Every logout and every delivery state change
-- writes a row here in its own transaction; DB.Listen reads the rows of
-- finished transactions in windows of transaction IDs (see changes.go),
-- woken by a NOTIFY the writer sends after it commits and, when LISTEN is
-- not possible or a NOTIFY was lost, by a poll. (A trigger sending NOTIFY
-- inside the writing transaction would serialise every commit on the
-- notification queue lock, fsync included.)

CREATE TABLE changes (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the writing transaction: readers take every row whose xid lies
    -- below the oldest transaction still running, so a row is never
    -- skipped because a later one committed first.
    xid          xid8 NOT NULL DEFAULT pg_current_xact_id(),
    at           timestamptz NOT NULL DEFAULT now(),
    logout_id    text COLLATE "C" NOT NULL,
    delivery_id  text COLLATE "C" NOT NULL DEFAULT '',
    state        text NOT NULL DEFAULT ''
);
CREATE INDEX changes_xid_idx ON changes (xid);
CREATE INDEX changes_at_idx ON changes (at);
