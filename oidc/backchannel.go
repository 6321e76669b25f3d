package oidc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// Back-Channel Logout 1.0 constants. The notifier lives in the oidc
// package, not the engine, because the logout token is an OIDC artefact
// signed with the provider's keys; the engine only knows it must call a
// Notifier for participants of Kind "oidc".
const (
	// BackchannelLogoutEvent is the event member of a logout token (§2.4).
	BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"
	// logoutTokenTTL is the life of a logout token: §2.4 recommends a
	// short exp, "about two minutes".
	logoutTokenTTL = 2 * time.Minute
	// maxResponseBody caps how much of an RP's answer is read.
	maxResponseBody = 4 << 10
	// DeliveryIDHeader carries the stable delivery ID so receivers can
	// de-duplicate retries (the jti is fresh per attempt).
	DeliveryIDHeader = "Slobridge-Delivery-Id"
)

// LogoutTokenClaims are the claims of a logout token (Back-Channel Logout
// 1.0 §2.4). There is deliberately no nonce: a logout token must never be
// mistaken for an ID token.
type LogoutTokenClaims struct {
	Issuer   string                    `json:"iss"`
	Audience []string                  `json:"aud"`
	IssuedAt int64                     `json:"iat"`
	Expiry   int64                     `json:"exp"`
	JTI      string                    `json:"jti"`
	Subject  string                    `json:"sub,omitempty"`
	SID      string                    `json:"sid,omitempty"`
	Events   map[string]map[string]any `json:"events"`
}

// BackChannelNotifier is the slobridge.Notifier for OIDC participants: it
// POSTs a fresh logout token to the client's backchannel_logout_uri.
type BackChannelNotifier struct {
	p      *Provider
	client *http.Client
}

var _ slobridge.Notifier = (*BackChannelNotifier)(nil)

// BackChannelNotifier returns the notifier to register on the engine for
// ParticipantKind. client must refuse redirects and check the dialled
// address (slobridge.NewBackChannelClient); nil gets a client that refuses
// redirects only, for tests.
func (p *Provider) BackChannelNotifier(client *http.Client) *BackChannelNotifier {
	if client == nil {
		client = &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &BackChannelNotifier{p: p, client: client}
}

// MintLogoutToken signs a logout token for a participant, with sub always
// and sid always (§2.4 allows both; ID tokens carry sid, so RPs that key on
// either find it).
func (p *Provider) MintLogoutToken(ctx context.Context, part store.Participant) (string, error) {
	jti, err := p.newToken(16)
	if err != nil {
		return "", err
	}
	now := p.now()
	c := LogoutTokenClaims{
		Issuer: p.opts.Issuer, Audience: []string{part.AppID},
		IssuedAt: now.Unix(), Expiry: now.Add(logoutTokenTTL).Unix(), JTI: jti,
		Subject: part.Data[DataSubject], SID: part.SessionID,
		Events: map[string]map[string]any{BackchannelLogoutEvent: {}},
	}
	if c.Subject == "" && c.SID == "" {
		return "", errors.New("oidc: logout token needs sub or sid")
	}
	alg := p.idTokenAlg(part.Data[DataAlg])
	return p.keys.sign(ctx, alg, typLogout, c)
}

// Notify implements slobridge.Notifier: one attempt to deliver a logout
// token. 200 and 204 are success; anything else is a failure the engine
// retries with a fresh token. That includes 400, the answer Back-Channel
// Logout §2.8 gives an RP for every failed logout: the cause may be on the
// RP's side and pass (its session store was down, its clock was behind
// our iat), and the engine gives up after Options.GiveUpAfter anyway.
func (n *BackChannelNotifier) Notify(ctx context.Context, d store.Delivery) error {
	part := d.Participant
	if part.BackChannelURL == "" {
		return &slobridge.DeliveryError{Permanent: true, Err: errors.New("oidc: participant has no backchannel_logout_uri")}
	}
	tok, err := n.p.MintLogoutToken(ctx, part)
	if err != nil {
		return fmt.Errorf("oidc: mint logout token for %s: %w", part.AppID, err)
	}
	body := url.Values{"logout_token": {tok}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, part.BackChannelURL, strings.NewReader(body))
	if err != nil {
		return &slobridge.DeliveryError{Permanent: true, Err: fmt.Errorf("oidc: build back-channel request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cache-Control", "no-store")
	req.Header.Set(DeliveryIDHeader, d.ID)
	resp, err := n.client.Do(req)
	if err != nil {
		return &slobridge.DeliveryError{Err: fmt.Errorf("oidc: back-channel POST to %s: %w", part.AppID, err)}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBody))
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusBadRequest:
		return &slobridge.DeliveryError{StatusCode: resp.StatusCode,
			Err: errors.New("oidc: the RP rejected the logout token")}
	default:
		return &slobridge.DeliveryError{StatusCode: resp.StatusCode,
			Err: errors.New("oidc: unexpected back-channel logout response")}
	}
}
