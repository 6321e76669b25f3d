package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/oidc/ssf"
	"github.com/slobridge/slobridge/saml/idp"
	"github.com/slobridge/slobridge/store"
)

// The admin routes of the protocol packages: SSF receivers and SAML SPs.
// Receivers registered here join sessions created from then on.

// adminReceiver is a receiver as the admin API shows it: the push
// authorization is a secret and is never returned.
type adminReceiver struct {
	ID               string   `json:"id"`
	Name             string   `json:"name,omitempty"`
	PushURL          string   `json:"push_url"`
	Audience         []string `json:"audience,omitempty"`
	HasAuthorization bool     `json:"has_authorization"`
}

// adminReceiverRequest is the body of PUT /admin/v1/receivers/{id}.
type adminReceiverRequest struct {
	Name          string   `json:"name,omitempty"`
	PushURL       string   `json:"push_url"`
	Audience      []string `json:"audience,omitempty"`
	Authorization string   `json:"authorization,omitempty"`
}

// adminSPRequest is the body of POST /admin/v1/saml/sps. Only a metadata
// URL is accepted: a file path would let the admin API read server files.
type adminSPRequest struct {
	MetadataURL                string   `json:"metadata_url"`
	EntityID                   string   `json:"entity_id,omitempty"`
	Name                       string   `json:"name,omitempty"`
	NameID                     string   `json:"name_id,omitempty"`
	LogoutChannels             []string `json:"logout_channels,omitempty"`
	FrontChannelBinding        string   `json:"front_channel_binding,omitempty"`
	FrontChannelTopLevel       bool     `json:"front_channel_top_level,omitempty"`
	RequireSignedAuthnRequests bool     `json:"require_signed_authn_requests,omitempty"`
	Attributes                 []string `json:"attributes,omitempty"`
}

func toAdminReceiver(r ssf.Receiver) adminReceiver {
	return adminReceiver{ID: r.ID, Name: r.Name, PushURL: r.PushURL, Audience: r.Audience, HasAuthorization: r.Authorization != ""}
}

func (a *API) handleListReceivers(c *gin.Context) {
	rs, err := ssf.ListReceivers(c.Request.Context(), a.opts.Engine.Store())
	if err != nil {
		a.internal(c, "list receivers", err)
		return
	}
	out := make([]adminReceiver, 0, len(rs))
	for _, r := range rs {
		out = append(out, toAdminReceiver(r))
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"receivers": out})
}

func (a *API) handlePutReceiver(c *gin.Context) {
	var req adminReceiverRequest
	if !DecodeJSON(c, &req) {
		return
	}
	r := ssf.Receiver{ID: c.Param("id"), Name: req.Name, PushURL: req.PushURL, Audience: req.Audience, Authorization: req.Authorization}
	err := ssf.PutReceiver(c.Request.Context(), a.opts.Engine.Store(), r, a.opts.ReceiversAllowHTTP, false, a.opts.Engine.Now())
	switch {
	case errors.Is(err, ssf.ErrInvalidReceiver):
		WriteError(c, http.StatusBadRequest, "invalid_request", err.Error())
		return
	case err != nil:
		a.internal(c, "put receiver", err)
		return
	}
	a.opts.Logger.InfoContext(c.Request.Context(), "admin: receiver registered", "receiver", r.ID)
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, toAdminReceiver(r))
}

func (a *API) handleDeleteReceiver(c *gin.Context) {
	id := c.Param("id")
	err := ssf.DeleteReceiver(c.Request.Context(), a.opts.Engine.Store(), id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		WriteError(c, http.StatusNotFound, "not_found", "no such receiver")
		return
	case err != nil:
		a.internal(c, "delete receiver", err)
		return
	}
	a.opts.Logger.InfoContext(c.Request.Context(), "admin: receiver removed", "receiver", id)
	c.Status(http.StatusNoContent)
}

func (a *API) handleRegisterSP(c *gin.Context) {
	var req adminSPRequest
	if !DecodeJSON(c, &req) {
		return
	}
	if req.MetadataURL == "" {
		WriteError(c, http.StatusBadRequest, "invalid_request", "metadata_url is required")
		return
	}
	sp, err := a.opts.SAMLIdP.Register(c.Request.Context(), idp.SPConfig{
		MetadataURL: req.MetadataURL, EntityID: req.EntityID, Name: req.Name, NameID: req.NameID,
		LogoutChannels: req.LogoutChannels, FrontChannelBinding: req.FrontChannelBinding, FrontChannelTopLevel: req.FrontChannelTopLevel,
		RequireSignedAuthnRequests: req.RequireSignedAuthnRequests, Attributes: req.Attributes,
	})
	if err != nil {
		// Metadata that cannot be fetched or parsed is the caller's
		// problem; the message names what is wrong with it.
		WriteError(c, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	c.Header("Cache-Control", "no-store")
	// name_id says which NameID policy the SP got (its registration, else
	// its metadata's first format the bridge issues).
	c.JSON(http.StatusCreated, gin.H{"entity_id": sp.EntityID, "name": sp.Name, "name_id": sp.NameIDPolicy})
}

// Upstream is one upstream identity provider as GET /admin/v1/upstreams
// lists it.
type Upstream struct {
	// Name is the upstream's name in the configuration and in sessions.
	Name string `json:"name"`
	// Type is saml, oidc or static.
	Type string `json:"type"`
	// ID is the SAML IdP's metadata source or the OP's issuer.
	ID string `json:"id,omitempty"`
	// Available is false while the bridge cannot use the upstream
	// (metadata or discovery unreachable); Error then says why.
	Available bool   `json:"available"`
	Error     string `json:"error,omitempty"`
	// Register lists what an operator registers for the bridge at the
	// upstream: the SP metadata URL, or the OP's redirect and logout URIs.
	Register map[string]string `json:"register,omitempty"`
	// MetadataLoadedAt is when the SAML metadata in use, or the OP's
	// discovery document, was read.
	MetadataLoadedAt time.Time `json:"metadata_loaded_at,omitzero"`
	// CertificateNotAfter is when the first of a SAML IdP's signing
	// certificates expires.
	CertificateNotAfter time.Time `json:"certificate_not_after,omitzero"`
	// Warnings are what needs an operator soon: a metadata refresh that
	// keeps failing, a certificate that expires within 30 days.
	Warnings []string `json:"warnings,omitempty"`
}

// CertificateWarnAhead is how long before a certificate expires the
// upstream shows a warning.
const CertificateWarnAhead = 30 * 24 * time.Hour

// Upstreams is the answer of GET /admin/v1/upstreams.
type Upstreams struct {
	Upstreams []Upstream `json:"upstreams"`
}

// LogoutSummary is one logout as GET /admin/v1/logouts lists it: who
// started it, when, how many sessions and participants, and its outcome
// so far (the one decision every answer about a logout uses).
type LogoutSummary struct {
	ID           string          `json:"id"`
	UserID       string          `json:"user_id"`
	Initiator    store.Initiator `json:"initiator"`
	CreatedAt    time.Time       `json:"created_at"`
	Sessions     int             `json:"sessions"`
	Participants int             `json:"participants"`
	// Done is true once every delivery is final; Complete once every leg
	// confirmed; Failed counts the legs that did not (yet).
	Done     bool `json:"done"`
	Complete bool `json:"complete"`
	Failed   int  `json:"failed"`
}

// Logouts is the answer of GET /admin/v1/logouts; Next, when set, is the
// path of the following page.
type Logouts struct {
	Logouts []LogoutSummary `json:"logouts"`
	Next    string          `json:"next,omitempty"`
}
