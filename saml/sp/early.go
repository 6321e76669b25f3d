package sp

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	crewjam "github.com/crewjam/saml"

	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// nsEarlyLogout holds upstream LogoutRequests that matched no session: the
// Response of a login they end may still be on its way (SAML Core
// §3.7.3.1), and must not then create a live session.
const nsEarlyLogout = "saml-sp-early-logout"

// earlyLogoutKeep is how long such a LogoutRequest is remembered: longer
// than any Response in flight may take (the ACS refuses an IssueInstant
// older than saml.DefaultMaxAge plus the clock skew).
const earlyLogoutKeep = 30 * time.Minute

// errLoggedOutEarly refuses a login that the upstream logged out before
// its Response arrived.
var errLoggedOutEarly = errors.New("the identity provider ended this session before the login completed")

// earlyKey names an early LogoutRequest for (upstream, NameID value,
// SessionIndex); "" stands for a request without SessionIndex, which means
// every session of the principal (Core §3.7.1).
func earlyKey(upstream, nameID, sessionIndex string) string {
	h := sha256.Sum256([]byte(upstream + "\x00" + nameID + "\x00" + sessionIndex))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// rememberEarlyLogout records a LogoutRequest that matched no session, with
// its IssueInstant: a Response issued before it, for the same NameID (and
// SessionIndex, when the request named some), arrives too late to log in.
func (sp *SP) rememberEarlyLogout(ctx context.Context, up string, req *saml.LogoutRequest) error {
	indexes := req.SessionIndexes
	if len(indexes) == 0 {
		indexes = []string{""}
	}
	at, err := req.IssueInstant.MarshalText()
	if err != nil {
		return err
	}
	for _, idx := range indexes {
		err := sp.opts.Engine.Store().PutRecord(ctx, store.Record{Namespace: nsEarlyLogout,
			Key: earlyKey(up, req.NameID.Value, idx), Value: at, ExpiresAt: sp.opts.Now().Add(earlyLogoutKeep)})
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return fmt.Errorf("sp: remember early LogoutRequest: %w", err)
		}
	}
	return nil
}

// checkEarlyLogout refuses an assertion that an earlier LogoutRequest
// already ended: one naming its SessionIndex, or one without SessionIndex
// for its NameID issued after the assertion.
func (sp *SP) checkEarlyLogout(ctx context.Context, up string, a *crewjam.Assertion) error {
	if a.Subject == nil || a.Subject.NameID == nil || len(a.AuthnStatements) == 0 {
		return nil
	}
	nid, idx := a.Subject.NameID.Value, a.AuthnStatements[0].SessionIndex
	now := sp.opts.Now()
	keys := []string{""}
	if idx != "" {
		keys = []string{idx, ""}
	}
	for _, k := range keys {
		rec, err := sp.opts.Engine.Store().GetRecord(ctx, nsEarlyLogout, earlyKey(up, nid, k), now)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sp: early LogoutRequests: %w", err)
		}
		var at time.Time
		if err := at.UnmarshalText(rec.Value); err != nil {
			return fmt.Errorf("sp: early LogoutRequest record: %w", err)
		}
		if k != "" || !a.IssueInstant.After(at) {
			return errLoggedOutEarly
		}
	}
	return nil
}
