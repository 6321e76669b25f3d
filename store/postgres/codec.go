package postgres

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/slobridge/slobridge/store"
)

// tz returns t for a timestamptz parameter, or nil (NULL) for the zero
// time.
func tz(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// fromTZ returns a scanned timestamptz in UTC, the zero time for NULL.
func fromTZ(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// nullJSON encodes v as JSON for a jsonb parameter, or returns nil (NULL)
// when empty is true, so that an empty map or slice reads back as nil.
func nullJSON(v any, empty bool) (any, error) {
	if empty {
		return nil, nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return string(raw), nil
}

// decodeJSON decodes a scanned jsonb column (nil for NULL) into v.
func decodeJSON(raw []byte, v any, what string) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode stored %s: %w", what, err)
	}
	return nil
}

// checkIDs returns store.ErrInvalid naming the first empty field, or one
// that contains a NUL byte (which PostgreSQL text cannot hold).
func checkIDs(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if fields[i+1] == "" || strings.ContainsRune(fields[i+1], 0) {
			return fmt.Errorf("%w: %s is empty or contains a NUL byte", store.ErrInvalid, fields[i])
		}
	}
	return nil
}

// checkText returns store.ErrInvalid when a text value contains a NUL
// byte, which PostgreSQL text cannot hold.
func checkText(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if strings.ContainsRune(fields[i+1], 0) {
			return fmt.Errorf("%w: %s contains a NUL byte", store.ErrInvalid, fields[i])
		}
	}
	return nil
}
