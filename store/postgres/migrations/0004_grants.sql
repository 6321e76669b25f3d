-- 0004: one-time grants (store.Store.TakeGrant). A record used as a grant
-- (an authorization code, a refresh token) is marked used in the same
-- transaction that decides between concurrent uses, and keeps what its
-- first use issued, so that a later use can revoke that family. A used
-- record is not live for GetRecord and TakeRecord.

ALTER TABLE records ADD COLUMN used boolean NOT NULL DEFAULT false;
ALTER TABLE records ADD COLUMN issued bytea;
