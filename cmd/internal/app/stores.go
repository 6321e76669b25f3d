package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
	"github.com/slobridge/slobridge/store/postgres"
)

// openBolt opens the embedded bbolt store. A file held by another process
// fails after store.bolt.lock_timeout with an error wrapping
// store.ErrLocked.
func openBolt(c BoltConfig, onReserve func(refusing bool, free int64)) (store.Store, error) {
	// The file lock proves that no other process holds a lease left in the
	// file: a killed process's deliveries are resent at start-up.
	reserve := c.ReserveBytes
	if reserve < 0 {
		reserve = 0 // off
	}
	db, err := bolt.Open(c.Path, bolt.Options{Timeout: c.LockTimeout, ReleaseLeases: true, Reserve: reserve, OnReserve: onReserve,
		VolatileLimit: c.VolatileLimitBytes})
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return nil, fmt.Errorf("app: store.bolt.path: %w (is another slobridge running on this file?)", err)
		}
		return nil, fmt.Errorf("app: store.bolt.path: %w", err)
	}
	return db, nil
}

// pgOptions converts the configuration of the PostgreSQL store.
func pgOptions(c PostgresConfig) postgres.Options {
	return postgres.Options{Schema: c.Schema, MaxConns: c.MaxConns, SkipMigrations: c.SkipMigrations}
}

// openPostgres opens the PostgreSQL store (migrating its schema unless
// store.postgres.skip_migrations is set).
func openPostgres(ctx context.Context, c PostgresConfig) (store.Store, error) {
	db, err := postgres.Open(ctx, c.DSN.Value(), pgOptions(c))
	if err != nil {
		return nil, fmt.Errorf("app: store.postgres: %w", err)
	}
	return db, nil
}

// Migrate brings the PostgreSQL schema to the version this binary expects
// and returns the versions it applied.
func Migrate(ctx context.Context, c PostgresConfig) ([]int, error) {
	applied, err := postgres.Migrate(ctx, c.DSN.Value(), pgOptions(c))
	if err != nil {
		return nil, fmt.Errorf("app: migrate store.postgres: %w", err)
	}
	return applied, nil
}

// listenRetry is how long followChanges waits before it tries again to
// start reading the change feed of an unreachable database.
const listenRetry = 2 * time.Second

// followChanges relays the change feed of the PostgreSQL store to the
// engine's subscribers (Engine.FollowChanges) until ctx ends, so that the
// live status pages and the introspection session cache of this replica
// learn at once of the logouts and deliveries of the other replicas
// sharing the database. With bbolt, used by one process alone, it returns
// at once. While the database is unreachable at the start it tries again
// every listenRetry; after that the feed reconnects by itself.
func (a *App) followChanges(ctx context.Context) {
	db, ok := a.st.(*postgres.DB)
	if !ok {
		return
	}
	for {
		feed, err := db.Listen(ctx, postgres.ListenOptions{Logger: a.log})
		if err == nil {
			changes := make(chan slobridge.Change)
			go func() {
				defer close(changes)
				for c := range feed {
					select {
					case changes <- slobridge.Change{LogoutID: c.LogoutID, DeliveryID: c.DeliveryID, State: c.State}:
					case <-ctx.Done():
						return
					}
				}
			}()
			a.eng.FollowChanges(ctx, changes)
			return
		}
		a.log.WarnContext(ctx, "read the change feed of other replicas; retrying", "err", err, "retry_in", listenRetry)
		t := time.NewTimer(listenRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// reserveReporter logs and exports the bbolt write reserve's state: a
// warning when logins start being refused for want of space, a notice
// when they resume, and the gauge slobridge_store_logins_refused_no_space.
func reserveReporter(log *slog.Logger, reg prometheus.Registerer) func(refusing bool, free int64) {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "slobridge_store_logins_refused_no_space",
		Help: "1 while new logins are refused because the store is keeping its last space for logouts.",
	})
	reg.MustRegister(g)
	return func(refusing bool, free int64) {
		if refusing {
			g.Set(1)
			log.Warn("store out of space: new logins are refused, logouts go on in the reserved space; free disk space to resume",
				"free_bytes", free)
			return
		}
		g.Set(0)
		log.Info("store has space again: logins resume", "free_bytes", free)
	}
}
