-- 0007: the deliveries failing now (retrying or failed), newest first, for
-- the operator console's Deliveries page (ListFailingDeliveries): a
-- partial index, so its size is that of the failures, not of the outbox.

CREATE INDEX deliveries_failing_idx ON deliveries (created_at, id)
    WHERE state IN ('retrying', 'failed');
