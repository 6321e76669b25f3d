package sp

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Store record namespaces of the SP. Every key is an unguessable value the
// bridge made (Engine.NewID) or a logout ID.
const (
	// nsLogin: RelayState of an AuthnRequest → loginState.
	nsLogin = store.VolatilePrefix + "saml-sp-login"
	// nsLogout: RelayState of our LogoutRequest to an upstream →
	// logoutState.
	nsLogout = "saml-sp-logout"
	// nsAnswer: logout ID → the upstream LogoutRequest to answer after
	// the logout page (answerState).
	nsAnswer = "saml-sp-answer"
	// nsAssertion: replay cache of assertion IDs.
	nsAssertion = "saml-sp-assertion-id"
)

// stateTTL bounds how long a browser round trip to an IdP may take.
const stateTTL = 15 * time.Minute

// loginState is what the bridge remembers of an AuthnRequest it sent.
type loginState struct {
	Upstream  string `json:"upstream"`
	RequestID string `json:"request_id"`
	ReturnTo  string `json:"return_to"`
	// SessionID is the active bridge session the browser held when the
	// login started (a re-authentication), "" for none. The ACS is reached
	// by a cross-site POST that carries no SameSite=Lax session cookie, so
	// the session to keep is remembered here.
	SessionID string `json:"session_id,omitempty"`
}

// logoutState is what the bridge remembers of a LogoutRequest it sent to
// an upstream by the front channel.
type logoutState struct {
	Upstream  string `json:"upstream"`
	RequestID string `json:"request_id"`
	LogoutID  string `json:"logout_id"`
	ReturnTo  string `json:"return_to"`
	// Sent lists the upstream sessions (upstreamKey) already sent a
	// LogoutRequest in this chain, this one included: each upstream
	// session is asked once (Core §3.7.3.2).
	Sent []string `json:"sent,omitempty"`
	// Failed says why earlier requests of the chain failed, if any did.
	Failed string `json:"failed,omitempty"`
}

// answerState is an upstream's front-channel LogoutRequest waiting for the
// logout page to finish before it is answered.
type answerState struct {
	Upstream     string `json:"upstream"`
	InResponseTo string `json:"in_response_to"`
	RelayState   string `json:"relay_state,omitempty"`
	Binding      string `json:"binding"`
}

func (sp *SP) putState(ctx context.Context, ns, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	err = sp.opts.Engine.Store().PutRecord(ctx, store.Record{Namespace: ns, Key: key, Value: b,
		ExpiresAt: sp.opts.Now().Add(stateTTL)})
	if err != nil {
		return fmt.Errorf("sp: store %s state: %w", ns, err)
	}
	return nil
}

func (sp *SP) getState(ctx context.Context, ns, key string, v any) error {
	if key == "" {
		return store.ErrNotFound
	}
	rec, err := sp.opts.Engine.Store().GetRecord(ctx, ns, key, sp.opts.Now())
	if err != nil {
		return err
	}
	return json.Unmarshal(rec.Value, v)
}

func (sp *SP) takeState(ctx context.Context, ns, key string, v any) error {
	if key == "" {
		return store.ErrNotFound
	}
	rec, err := sp.opts.Engine.Store().TakeRecord(ctx, ns, key, sp.opts.Now())
	if err != nil {
		return err
	}
	return json.Unmarshal(rec.Value, v)
}
