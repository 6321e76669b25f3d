package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// Revoke revokes a token on behalf of the client it was issued to
// (RFC 7009 §2.1):
//
//   - a refresh token revokes its whole family: the live refresh token of
//     the family (when the presented one was already rotated, every
//     rotation after it) and the family's access tokens that have not
//     expired;
//   - an access token has its jti recorded as revoked until its exp, so
//     introspection and userinfo refuse it at once (resource servers that
//     verify tokens locally learn it only through introspection).
//
// An unknown, malformed, expired or already revoked token, and a token
// issued to another client, change nothing and are not reported: the
// endpoint answers 200 either way (RFC 7009 §2.2), so it cannot be used to
// find out whether some token exists or whose it is.
func (p *Provider) Revoke(ctx context.Context, caller Client, r IntrospectionRequest) error {
	now := p.now()
	if looksLikeJWS(r.Token) {
		c, ok := p.verifyAccessJWT(ctx, r.Token)
		if !ok || c.ClientID != caller.ID || now.Unix() >= c.Expiry {
			return nil
		}
		err := p.st.PutRecord(ctx, store.Record{Namespace: nsRevokedToken, Key: c.JTI, ExpiresAt: time.Unix(c.Expiry, 0)})
		if err != nil && !errors.Is(err, store.ErrAlreadyExists) {
			return serverErr(fmt.Errorf("oidc: revoke access token: %w", err))
		}
		p.log.InfoContext(ctx, "access token revoked", "client_id", caller.ID, "sid", c.SID)
		return nil
	}
	key := hashKey(r.Token)
	rec, err := p.st.GetRecord(ctx, nsRefresh, key, now)
	switch {
	case err == nil:
		var g grant
		if err := json.Unmarshal(rec.Value, &g); err != nil {
			return serverErr(fmt.Errorf("oidc: decode refresh token: %w", err))
		}
		if g.ClientID != caller.ID {
			return nil
		}
		p.revokeRefresh(ctx, key, now)
		p.log.InfoContext(ctx, "refresh token family revoked", "client_id", caller.ID, "sid", g.SessionID)
		return nil
	case !errors.Is(err, store.ErrNotFound):
		return serverErr(err)
	}
	// A rotated refresh token: revoke what it led to. TakeGrant on a used
	// grant only reads it.
	u, err := p.st.TakeGrant(ctx, nsRefresh, key, nil, time.Time{}, now)
	if errors.Is(err, store.ErrNotFound) || (err == nil && u.First) {
		return nil
	}
	if err != nil {
		return serverErr(err)
	}
	var iss issued
	if err := json.Unmarshal(u.Issued, &iss); err != nil || iss.ClientID != caller.ID {
		return nil
	}
	p.revokeFamily(ctx, u.Issued, now)
	return nil
}

func (p *Provider) handleRevoke(c *gin.Context) {
	caller, r, ok := p.tokenRequest(c)
	if !ok {
		return
	}
	if err := p.Revoke(c.Request.Context(), caller, r); err != nil {
		p.renderJSONError(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.Status(http.StatusOK)
}
