-- 0005: find sessions by the "email" attribute (the admin API looks users
-- up by it) through an index: the attributes are a JSON object of string
-- arrays, and `attributes->'email' ? $1` asks whether the array holds the
-- address.

CREATE INDEX sessions_email_idx ON sessions USING gin ((attributes->'email'));
