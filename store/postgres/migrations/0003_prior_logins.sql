-- 0003: the earlier upstream logins of a session whose user logged in
-- again in the same browser (store.Session.PriorLogins), as a JSON array
-- of store.UpstreamLogin; NULL when there is none. An upstream
-- LogoutRequest naming one of them still matches the session, found
-- through the containment index.

ALTER TABLE sessions ADD COLUMN prior_logins jsonb;
CREATE INDEX sessions_prior_logins_idx ON sessions USING gin (prior_logins jsonb_path_ops)
    WHERE prior_logins IS NOT NULL;
