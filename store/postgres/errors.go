package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/slobridge/slobridge/store"
)

// SQLSTATE codes the backend branches on (PostgreSQL Appendix A).
const (
	codeUniqueViolation = "23505"
	codeUndefinedTable  = "42P01"
	codeUntranslatable  = "22P05"
	codeNotInRepertoire = "22021"
	// A transaction that PostgreSQL aborted and that may simply be run
	// again: serialization failure and deadlock detected.
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	// Classes that mean "the server cannot serve us now": connection
	// exception (08), insufficient resources (53, too many connections),
	// operator intervention (57: admin shutdown, crash shutdown, cannot
	// connect now).
	classConnection   = "08"
	classResources    = "53"
	classIntervention = "57"
	codeQueryCanceled = "57014" // class 57, but a statement timeout
	// Writes refused: disk full, and a read-only server or transaction
	// (a hot standby, default_transaction_read_only).
	codeDiskFull    = "53100"
	codeReadOnlySQL = "25006"
)

// dbError classifies an error from pgx: unique violations wrap
// store.ErrAlreadyExists, and errors that mean the server is unreachable
// wrap store.ErrUnavailable. Other errors are returned as they are.
func dbError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrUnavailable) {
		return err
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case codeUniqueViolation:
			return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
		case codeUntranslatable, codeNotInRepertoire:
			// A value PostgreSQL text or jsonb cannot hold (a NUL
			// character inside attributes or participant data).
			return fmt.Errorf("%w: %w", store.ErrInvalid, err)
		}
		switch pgErr.Code {
		case codeDiskFull:
			return fmt.Errorf("%w: %w", store.ErrNoSpace, err)
		case codeReadOnlySQL:
			return fmt.Errorf("%w: the server accepts no writes: %w", store.ErrUnavailable, err)
		}
		if serverUnavailable(pgErr.Code) && !isAuthOrConfig(pgErr.Code) {
			return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
		}
		return err
	}
	if connectionError(err) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	return err
}

// serverUnavailable reports whether a SQLSTATE says the server cannot serve
// requests right now.
func serverUnavailable(code string) bool {
	if code == codeQueryCanceled {
		return false
	}
	return strings.HasPrefix(code, classConnection) ||
		strings.HasPrefix(code, classResources) ||
		strings.HasPrefix(code, classIntervention)
}

// isAuthOrConfig reports SQLSTATEs that are configuration mistakes rather
// than an outage: invalid authorization (28) and unknown database (3D).
func isAuthOrConfig(code string) bool {
	return strings.HasPrefix(code, "28") || strings.HasPrefix(code, "3D")
}

// connectionError reports whether err (not an SQL error) comes from failing
// to reach the server or losing the connection: a failed connect (refused,
// timed out, even by the caller's deadline), a network error, an unexpected EOF, a closed pool or
// connection, or any error pgconn marks safe to retry.
func connectionError(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	// The caller's own cancellation or deadline during a query is the
	// caller's business, not an outage.
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var netErr net.Error
	switch {
	case pgconn.SafeToRetry(err),
		errors.As(err, &netErr),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, pgconn.ErrConnClosed):
		return true
	}
	// A closed pool (DB.Close) cannot serve either.
	return errors.Is(err, puddle.ErrClosedPool)
}

// retryable reports whether err is a transaction abort that running the
// transaction again may cure (a serialization failure or a deadlock).
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) &&
		(pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected)
}
