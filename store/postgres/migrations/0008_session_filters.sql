-- 0008: page through the sessions of an upstream, or of an app that
-- joined them (ListSessions, the operator console's session searches).

CREATE INDEX sessions_upstream_idx ON sessions (upstream, created_at, id);
CREATE INDEX participants_app_idx ON participants (app_id, session_id);
