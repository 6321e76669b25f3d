package ssf

import (
	"context"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/store"
)

// Configuration is the SSF transmitter metadata (SSF 1.0 §7.1), served at
// /.well-known/ssf-configuration. Only what is implemented is advertised:
// push delivery, no stream management endpoints.
type Configuration struct {
	SpecVersion              string   `json:"spec_version"`
	Issuer                   string   `json:"issuer"`
	JWKSURI                  string   `json:"jwks_uri"`
	DeliveryMethodsSupported []string `json:"delivery_methods_supported"`
}

// Transmitter serves the transmitter metadata and joins receivers to new
// sessions.
type Transmitter struct {
	Issuer  string
	JWKSURI string
	Store   store.Store
}

// Metadata returns the transmitter configuration.
func (t *Transmitter) Metadata() Configuration {
	return Configuration{
		SpecVersion: "1_0", Issuer: t.Issuer, JWKSURI: t.JWKSURI,
		DeliveryMethodsSupported: []string{DeliveryPush},
	}
}

// Mount adds GET /.well-known/ssf-configuration.
func (t *Transmitter) Mount(r gin.IRouter) {
	r.GET("/.well-known/ssf-configuration", func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=300")
		c.JSON(http.StatusOK, t.Metadata())
	})
}

// ParticipantAdder is what JoinSession needs of the engine.
type ParticipantAdder interface {
	AddParticipant(ctx context.Context, p store.Participant) (bool, error)
}

// JoinSession makes every registered receiver a participant of a new
// session, so that its logout reaches them through the durable outbox.
// Receivers registered later hear about sessions created after that.
func (t *Transmitter) JoinSession(ctx context.Context, eng ParticipantAdder, s store.Session) error {
	rs, err := ListReceivers(ctx, t.Store)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if _, err := eng.AddParticipant(ctx, r.Participant(s.ID)); err != nil {
			return fmt.Errorf("ssf: join receiver %s to session: %w", r.ID, err)
		}
	}
	return nil
}
