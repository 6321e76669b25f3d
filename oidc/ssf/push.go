package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/slobridge/slobridge"
	"github.com/slobridge/slobridge/store"
)

// maxErrorBody caps how much of a receiver's error answer is read.
const maxErrorBody = 4 << 10

// Pusher is the engine Notifier for event receivers (participant kind
// "ssf"): it signs a session-revoked SET and pushes it per RFC 8935.
type Pusher struct {
	// Issuer is the SET `iss`: the bridge's issuer URL.
	Issuer string
	// Store reads the receiver registration, the session and the logout.
	Store store.Store
	// Signer signs the SET with the bridge key.
	Signer Signer
	// Client sends the push; it must refuse redirects
	// (slobridge.NewBackChannelClient).
	Client *http.Client
	// Now is the clock; default time.Now.
	Now func() time.Time
}

var _ slobridge.Notifier = (*Pusher)(nil)

// pushError is the RFC 8935 §2.3 error answer.
type pushError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

// permanentErrs are receiver verdicts about the SET itself that a retry of
// the same SET cannot change (RFC 8935 §2.4).
var permanentErrs = map[string]bool{
	"invalid_request": true, "invalid_key": true, "invalid_issuer": true, "invalid_audience": true,
}

// Notify builds, signs and pushes the SET for one delivery. The SET's jti
// is the delivery ID, so retries carry the same jti and the receiver can
// de-duplicate them.
func (p *Pusher) Notify(ctx context.Context, d store.Delivery) error {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	rcv, err := GetReceiver(ctx, p.Store, d.Participant.AppID)
	if err != nil {
		return err
	}
	sess, err := p.Store.GetSession(ctx, d.Participant.SessionID)
	if err != nil {
		return fmt.Errorf("ssf: session of delivery %s: %w", d.ID, err)
	}
	lo, err := p.Store.GetLogout(ctx, d.LogoutID)
	if err != nil {
		return fmt.Errorf("ssf: logout of delivery %s: %w", d.ID, err)
	}
	claims := NewSessionRevoked(p.Issuer, rcv.audience(), d.ID, sess, lo, now())
	set, err := p.Signer.SignJWT(ctx, TokenType, claims)
	if err != nil {
		return fmt.Errorf("ssf: sign SET: %w", err)
	}
	target := d.Participant.BackChannelURL
	if target == "" {
		target = rcv.PushURL
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(set))
	if err != nil {
		return &slobridge.DeliveryError{Permanent: true, Err: fmt.Errorf("ssf: push request: %w", err)}
	}
	req.Header.Set("Content-Type", ContentType)
	req.Header.Set("Accept", "application/json")
	req.Header.Set(slobridge.DeliveryIDHeader, d.ID)
	if rcv.Authorization != "" {
		req.Header.Set("Authorization", rcv.Authorization)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return fmt.Errorf("ssf: push to %s: %w", rcv.ID, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	return pushOutcome(resp.StatusCode, body)
}

// pushOutcome interprets the receiver's answer (RFC 8935 §2.2-2.4): 202
// Accepted is success (other 2xx are accepted too: the receiver has the
// SET); a 400 whose err says the SET itself is bad is permanent; anything
// else is retried.
func pushOutcome(status int, body []byte) error {
	if status >= 200 && status < 300 {
		return nil
	}
	if status == http.StatusBadRequest {
		var pe pushError
		if json.Unmarshal(body, &pe) == nil && pe.Err != "" {
			return &slobridge.DeliveryError{StatusCode: status, Permanent: permanentErrs[pe.Err],
				Err: fmt.Errorf("ssf: receiver refused the SET: %s: %s", pe.Err, trim(pe.Description))}
		}
	}
	return &slobridge.DeliveryError{StatusCode: status, Err: errors.New("ssf: push not accepted")}
}

func trim(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}
