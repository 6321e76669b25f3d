package ssf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/slobridge/slobridge/store"
)

// Receiver is a registered event receiver: a resource server that wants to
// hear about revoked sessions. It is stored as a store.Client of kind "ssf"
// whose metadata is the JSON of this struct.
type Receiver struct {
	// ID names the receiver (the store client ID).
	ID string `json:"id"`
	// Name is shown on the logout status page.
	Name string `json:"name,omitempty"`
	// PushURL is the receiver's RFC 8935 push endpoint.
	PushURL string `json:"push_url"`
	// Audience is the SET `aud`; default [ID].
	Audience []string `json:"audience,omitempty"`
	// Authorization, when set, is sent as the HTTP Authorization header of
	// every push (RFC 8935 §4: the receiver authenticates the transmitter).
	// Never logged.
	Authorization string `json:"authorization,omitempty"`
}

// ErrInvalidReceiver reports a registration that fails validation.
var ErrInvalidReceiver = errors.New("ssf: invalid receiver")

// Validate checks the registration; allowHTTP permits plain-http push URLs
// (for loopback deployments and tests).
func (r Receiver) Validate(allowHTTP bool) error {
	if r.ID == "" {
		return fmt.Errorf("%w: id is required", ErrInvalidReceiver)
	}
	u, err := url.Parse(r.PushURL)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%w: push_url %q is not an absolute URL", ErrInvalidReceiver, r.PushURL)
	}
	if u.Fragment != "" {
		return fmt.Errorf("%w: push_url must not have a fragment", ErrInvalidReceiver)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	default:
		return fmt.Errorf("%w: push_url must use https", ErrInvalidReceiver)
	}
	return nil
}

func (r Receiver) audience() []string {
	if len(r.Audience) > 0 {
		return r.Audience
	}
	return []string{r.ID}
}

// PutReceiver validates and stores a receiver registration.
func PutReceiver(ctx context.Context, st store.Store, r Receiver, allowHTTP bool, static bool, now time.Time) error {
	if err := r.Validate(allowHTTP); err != nil {
		return err
	}
	md, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("ssf: encode receiver: %w", err)
	}
	c := store.Client{ID: clientID(r.ID), Kind: Kind, Name: r.Name, Static: static, Metadata: md, CreatedAt: now, UpdatedAt: now}
	if old, err := st.GetClient(ctx, c.ID); err == nil {
		c.CreatedAt = old.CreatedAt
	}
	if err := st.PutClient(ctx, c); err != nil {
		return fmt.Errorf("ssf: store receiver %s: %w", r.ID, err)
	}
	return nil
}

// GetReceiver loads one receiver.
func GetReceiver(ctx context.Context, st store.Store, id string) (Receiver, error) {
	c, err := st.GetClient(ctx, clientID(id))
	if err != nil {
		return Receiver{}, fmt.Errorf("ssf: receiver %s: %w", id, err)
	}
	return decodeReceiver(c)
}

// ListReceivers loads every receiver.
func ListReceivers(ctx context.Context, st store.Store) ([]Receiver, error) {
	cs, err := st.ListClients(ctx, Kind)
	if err != nil {
		return nil, fmt.Errorf("ssf: list receivers: %w", err)
	}
	out := make([]Receiver, 0, len(cs))
	for _, c := range cs {
		r, err := decodeReceiver(c)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// DeleteReceiver removes a receiver registration.
func DeleteReceiver(ctx context.Context, st store.Store, id string) error {
	if err := st.DeleteClient(ctx, clientID(id)); err != nil {
		return fmt.Errorf("ssf: delete receiver %s: %w", id, err)
	}
	return nil
}

// clientID namespaces receiver IDs among the store's clients, which OIDC
// clients and SAML SPs share.
func clientID(id string) string { return "ssf:" + id }

func decodeReceiver(c store.Client) (Receiver, error) {
	var r Receiver
	if err := json.Unmarshal(c.Metadata, &r); err != nil {
		return Receiver{}, fmt.Errorf("ssf: decode receiver %s: %w", c.ID, err)
	}
	return r, nil
}

// Participant returns the session participant that routes a logout of
// sessionID to r through the outbox.
func (r Receiver) Participant(sessionID string) store.Participant {
	name := r.Name
	if name == "" {
		name = r.ID
	}
	return store.Participant{
		SessionID: sessionID, Key: Kind + ":" + r.ID, Kind: Kind, AppID: r.ID, Name: name,
		Channels: store.ChannelBack, BackChannelURL: r.PushURL,
	}
}
