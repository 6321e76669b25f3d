-- 0002: the change feed. Every logout and every delivery state change
-- writes a row here in its own transaction; DB.Listen reads the rows of
-- finished transactions in windows of transaction IDs (see changes.go),
-- woken by NOTIFY and, when LISTEN is not possible, by a poll.

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

-- One NOTIFY per statement that writes changes, on a channel named after
-- the schema so that two installations sharing a database do not wake
-- each other. NOTIFY is delivered at commit, never for a rollback.
CREATE FUNCTION slobridge_changes_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('slobridge_' || left(md5(TG_TABLE_SCHEMA), 16), '');
    RETURN NULL;
END
$$;
CREATE TRIGGER changes_notify AFTER INSERT ON changes
    FOR EACH STATEMENT EXECUTE FUNCTION slobridge_changes_notify();
