package slobridge

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/slobridge/slobridge/store"
)

func TestHTTPNotifier(t *testing.T) {
	tests := []struct {
		status    int
		ok        bool
		permanent bool
	}{
		{200, true, false},
		{204, true, false},
		{302, false, false},
		{400, false, true},
		{401, false, false},
		{404, false, false},
		{408, false, false},
		{410, false, true},
		{429, false, false},
		{500, false, false},
		{503, false, false},
	}
	for _, tt := range tests {
		var got httpNotification
		var header http.Header
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			header = r.Header.Clone()
			body, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(body, &got); err != nil {
				t.Errorf("receiver: bad JSON %q: %v", body, err)
			}
			if tt.status == 302 {
				w.Header().Set("Location", "/elsewhere")
			}
			w.WriteHeader(tt.status)
		}))
		n := &HTTPNotifier{Client: NewBackChannelClient(ClientOptions{AllowLoopback: true})}
		d := store.Delivery{ID: "d-1", LogoutID: "lo-1", Participant: store.Participant{
			SessionID: "s-1", Key: "http:app", Kind: "http", AppID: "app", BackChannelURL: srv.URL + "/logout",
		}}
		err := n.Notify(context.Background(), d)
		srv.Close()
		want := httpNotification{DeliveryID: "d-1", LogoutID: "lo-1", SessionID: "s-1", Participant: "http:app", AppID: "app"}
		if got != want {
			t.Errorf("status %d: receiver got %+v, want %+v", tt.status, got, want)
		}
		if header.Get(DeliveryIDHeader) != "d-1" || header.Get("Content-Type") != "application/json" {
			t.Errorf("status %d: headers %v", tt.status, header)
		}
		if tt.ok {
			if err != nil {
				t.Errorf("status %d: err = %v, want nil", tt.status, err)
			}
			continue
		}
		var de *DeliveryError
		if !errors.As(err, &de) || de.StatusCode != tt.status || de.Permanent != tt.permanent {
			t.Errorf("status %d: err = %#v, want DeliveryError{StatusCode: %d, Permanent: %v}", tt.status, err, tt.status, tt.permanent)
		}
	}
}

func TestHTTPNotifierTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	n := &HTTPNotifier{Client: NewBackChannelClient(ClientOptions{AllowLoopback: true})}
	err := n.Notify(context.Background(), store.Delivery{ID: "d", Participant: store.Participant{Key: "http:a", BackChannelURL: url}})
	if err == nil || permanent(err) || statusOf(err) != 0 {
		t.Fatalf("Notify to a closed port = %v, want a retryable error without status", err)
	}
	err = n.Notify(context.Background(), store.Delivery{ID: "d", Participant: store.Participant{Key: "http:a"}})
	if !permanent(err) {
		t.Fatalf("Notify without URL = %v, want a permanent error", err)
	}
}
