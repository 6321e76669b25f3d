package idp

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
)

// authnParkTTL is how long an AuthnRequest waits for the upstream login.
const authnParkTTL = 15 * time.Minute

// limits caps what the decoders read.
var limits = bsaml.Limits{MaxBody: maxBodyBytes}

// handleSSO serves the SSO endpoint in the HTTP-Redirect (GET) and
// HTTP-POST (POST) bindings.
func (idp *IdP) handleSSO(c *gin.Context) {
	var m *bsaml.Message
	var err error
	switch c.Request.Method {
	case http.MethodGet:
		m, err = bsaml.DecodeRedirect(c.Request.URL.RawQuery, limits)
	default:
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, maxBodyBytes)
		m, err = bsaml.DecodePOST(c.Request, limits)
	}
	if err != nil {
		idp.renderError(c, err)
		return
	}
	req, sp, err := idp.ValidateAuthnRequest(c.Request.Context(), m)
	if err != nil {
		var se *bsaml.Error
		if errors.As(err, &se) && req.ACS != "" {
			idp.sendError(c, req, se.Status, se.SubStatus, err)
			return
		}
		idp.renderError(c, err)
		return
	}
	idp.sso(c, req, sp)
}

// sso answers a validated AuthnRequest: an assertion when the browser has
// a bridge session (a fresh enough one for ForceAuthn), otherwise an
// upstream login that comes back to the resume endpoint.
func (idp *IdP) sso(c *gin.Context, req AuthnRequest, sp *SP) {
	ctx := c.Request.Context()
	s, err := idp.eng.ActiveSession(ctx, idp.opts.Cookies, c.Request)
	if err != nil && !errors.Is(err, slobridge.ErrNoSession) {
		idp.renderError(c, err)
		return
	}
	needLogin := err != nil || (req.ForceAuthn && s.AuthTime.Before(req.ReceivedAt))
	if needLogin {
		switch {
		case req.IsPassive:
			idp.sendError(c, req, bsaml.StatusResponder, statusNoPassive, errors.New("no session and IsPassive"))
		case req.Resumed:
			idp.sendError(c, req, bsaml.StatusResponder, statusAuthnFailed, errors.New("the upstream login did not yield a session"))
		default:
			idp.startLogin(c, req)
		}
		return
	}
	iss, err := idp.join(ctx, sp, req.NameID, s)
	if err != nil {
		var se *bsaml.Error
		if errors.As(err, &se) {
			idp.sendError(c, req, se.Status, se.SubStatus, err)
			return
		}
		if errors.Is(err, store.ErrSessionEnded) && !req.Resumed {
			idp.startLogin(c, req)
			return
		}
		idp.renderError(c, err)
		return
	}
	resp, err := idp.BuildResponse(Assertion{SP: sp, Request: req, Session: s, Issued: iss})
	if err != nil {
		idp.renderError(c, err)
		return
	}
	idp.log.InfoContext(ctx, "saml sso", "sid", s.ID, "sp", sp.EntityID)
	if err := bsaml.WritePOSTForm(c.Writer, req.ACS, bsaml.ParamResponse, resp, req.RelayState); err != nil {
		idp.log.ErrorContext(ctx, "write saml response form", "sp", sp.EntityID, "error", err)
	}
}

// startLogin parks the request and hands the browser to the upstream
// authenticator, which returns it to the resume endpoint.
func (idp *IdP) startLogin(c *gin.Context, req AuthnRequest) {
	ctx := c.Request.Context()
	req.Resumed = true
	id, err := idp.token(16)
	if err == nil {
		var val []byte
		if val, err = json.Marshal(req); err == nil {
			err = idp.st.PutRecord(ctx, store.Record{Namespace: nsAuthn, Key: id, Value: val,
				ExpiresAt: idp.now().Add(authnParkTTL)})
		}
	}
	if err != nil {
		idp.renderError(c, fmt.Errorf("saml idp: park AuthnRequest: %w", err))
		return
	}
	returnTo := idp.localPath(PathResume) + "?id=" + url.QueryEscape(id)
	if err := idp.opts.Authenticator.StartLogin(c.Writer, c.Request, returnTo); err != nil {
		idp.renderError(c, fmt.Errorf("saml idp: start upstream login: %w", err))
	}
}

// handleResume continues an AuthnRequest after the upstream login. The
// parked request is taken (one use) and the SP looked up again, so a
// registration removed meanwhile is honoured.
func (idp *IdP) handleResume(c *gin.Context) {
	ctx := c.Request.Context()
	rec, err := idp.st.TakeRecord(ctx, nsAuthn, c.Query("id"), idp.now())
	if errors.Is(err, store.ErrNotFound) {
		idp.renderPage(c, http.StatusBadRequest, "This sign-in request has expired; start again from the application.")
		return
	}
	if err != nil {
		idp.renderError(c, err)
		return
	}
	var req AuthnRequest
	if err := json.Unmarshal(rec.Value, &req); err != nil {
		idp.renderError(c, fmt.Errorf("saml idp: decode parked AuthnRequest: %w", err))
		return
	}
	sp, err := idp.ServiceProvider(ctx, req.SP)
	if err == nil && sp.Disabled {
		err = fmt.Errorf("%w: %s", ErrDisabledSP, sp.EntityID)
	}
	if err != nil {
		idp.renderError(c, err)
		return
	}
	idp.sso(c, req, sp)
}

// sendError answers the SP with a signed error Response at its ACS.
func (idp *IdP) sendError(c *gin.Context, req AuthnRequest, status, sub string, cause error) {
	ctx := c.Request.Context()
	idp.log.WarnContext(ctx, "saml sso refused", "sp", req.SP, "status", status, "sub_status", sub, "error", cause)
	resp, err := idp.BuildErrorResponse(req, status, sub)
	if err != nil {
		idp.renderError(c, err)
		return
	}
	if err := bsaml.WritePOSTForm(c.Writer, req.ACS, bsaml.ParamResponse, resp, req.RelayState); err != nil {
		idp.log.ErrorContext(ctx, "write saml error response form", "sp", req.SP, "error", err)
	}
}
