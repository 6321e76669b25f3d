package slobridge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/slobridge/slobridge/store"
)

// DeliveryIDHeader carries the delivery ID on every back-channel HTTP
// request. It is the same on every attempt of one delivery, so a receiver
// that got the notification but whose answer was lost can de-duplicate.
const DeliveryIDHeader = "Slobridge-Delivery-Id"

// maxReceiverBody caps how much of a receiver's answer is read (and
// discarded) so that the connection can be reused; a larger body is cut
// off and the connection closed.
const maxReceiverBody = 64 << 10

// HTTPNotifier is the generic back-channel notifier (participant Kind
// "http") used by tests and simple receivers. It POSTs a JSON document to
// Participant.BackChannelURL:
//
//	{"delivery_id":"…","logout_id":"…","session_id":"…","participant":"http:app","app_id":"app"}
//
// with Content-Type application/json and the Slobridge-Delivery-Id header.
// No token is sent: a receiver that must authenticate the bridge should use
// a signed protocol (OIDC Back-Channel Logout, SSF push).
//
// Answers: any 2xx acknowledges. 400 Bad Request and 410 Gone are permanent
// failures: the receiver says this notification can never be accepted or
// the endpoint is gone for good, and resending the same bytes cannot change
// that. Every other status is retried until Options.GiveUpAfter, including
// 401/403/404 (usually a receiver being deployed or misconfigured, which an
// operator fixes), 408, 429 and 5xx; so is a 3xx, which is never followed.
type HTTPNotifier struct {
	// Client sends the requests; use NewBackChannelClient. Required.
	Client *http.Client
}

var _ Notifier = (*HTTPNotifier)(nil)

// httpNotification is the JSON document HTTPNotifier sends.
type httpNotification struct {
	DeliveryID  string `json:"delivery_id"`
	LogoutID    string `json:"logout_id"`
	SessionID   string `json:"session_id"`
	Participant string `json:"participant"`
	AppID       string `json:"app_id"`
}

// Notify makes one delivery attempt.
func (n *HTTPNotifier) Notify(ctx context.Context, d store.Delivery) error {
	if n.Client == nil {
		return errors.New("http notifier: no HTTP client configured")
	}
	p := d.Participant
	if p.BackChannelURL == "" {
		return &DeliveryError{Permanent: true, Err: fmt.Errorf("participant %s has no back-channel URL", p.Key)}
	}
	body, err := json.Marshal(httpNotification{
		DeliveryID: d.ID, LogoutID: d.LogoutID, SessionID: p.SessionID, Participant: p.Key, AppID: p.AppID,
	})
	if err != nil {
		return fmt.Errorf("http notifier: encode notification: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.BackChannelURL, bytes.NewReader(body))
	if err != nil {
		return &DeliveryError{Permanent: true, Err: fmt.Errorf("http notifier: build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(DeliveryIDHeader, d.ID)
	resp, err := n.Client.Do(req)
	if err != nil {
		return fmt.Errorf("http notifier: post to %s: %w", ReceiverOf(p.BackChannelURL), err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxReceiverBody))
	return classifyStatus(resp.StatusCode)
}

// classifyStatus maps a receiver's HTTP status to the result of an attempt
// (see HTTPNotifier for the reasons).
func classifyStatus(code int) error {
	switch {
	case code >= 200 && code < 300:
		return nil
	case code == http.StatusBadRequest, code == http.StatusGone:
		return &DeliveryError{StatusCode: code, Permanent: true, Err: errors.New(http.StatusText(code))}
	case code >= 300 && code < 400:
		return &DeliveryError{StatusCode: code, Err: errors.New("redirect not followed")}
	default:
		return &DeliveryError{StatusCode: code, Err: errors.New(http.StatusText(code))}
	}
}
