package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/slobridge/slobridge"
	adminapi "github.com/slobridge/slobridge/cmd/internal/admin"
	"github.com/slobridge/slobridge/saml"
	"github.com/slobridge/slobridge/store"
	"github.com/slobridge/slobridge/store/bolt"
)

// soapUpstream is an upstream SAML IdP's SOAP SingleLogoutService: it
// verifies the bridge's signed LogoutRequests and answers each with a
// signed Success LogoutResponse, remembering every upstream session it
// was asked to end. It listens on a fixed address, and is down
// (connections refused) until up is called.
type soapUpstream struct {
	t      *testing.T
	addr   string
	signer *saml.Signer
	v      *saml.Validator
	trust  saml.Trust

	mu   sync.Mutex
	told map[string]int // NameID " " SessionIndex → requests
	bad  []string
}

const burstIdPEntity = "https://idp.burst.test/idp"

func newSOAPUpstream(t *testing.T) *soapUpstream {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // down until up
	signer, err := saml.LoadSigner(filepath.Join("..", "..", "saml", "testdata", "idp.crt"), filepath.Join("..", "..", "saml", "testdata", "idp.key"))
	if err != nil {
		t.Fatal(err)
	}
	spSigner, err := saml.LoadSigner(filepath.Join("..", "internal", "app", "testdata", "bridge-sp.crt"), filepath.Join("..", "internal", "app", "testdata", "bridge-sp.key"))
	if err != nil {
		t.Fatal(err)
	}
	db, err := bolt.Open(filepath.Join(t.TempDir(), "idp-replay.db"), bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return &soapUpstream{t: t, addr: addr, signer: signer, v: &saml.Validator{Store: db},
		trust: saml.Trust{EntityID: "http://127.0.0.1:8080/saml/sp/metadata", Certs: []*x509.Certificate{spSigner.Cert}},
		told:  map[string]int{}}
}

// up starts serving on the fixed address.
func (u *soapUpstream) up() {
	u.t.Helper()
	var l net.Listener
	var err error
	for range 50 { // the port was free a moment ago; retry briefly if not yet
		if l, err = net.Listen("tcp", u.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		u.t.Fatalf("upstream cannot listen again on %s: %v", u.addr, err)
	}
	srv := &http.Server{Handler: u, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	u.t.Cleanup(func() { _ = srv.Close() })
}

func (u *soapUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	m, err := saml.DecodeSOAP(r, saml.Limits{})
	if err == nil {
		var req *saml.LogoutRequest
		req, err = u.v.LogoutRequest(context.WithoutCancel(r.Context()), m, u.trust, "http://"+u.addr+"/soap")
		if err == nil {
			u.mu.Lock()
			u.told[req.NameID.Value+" "+strings.Join(req.SessionIndexes, " ")]++
			u.mu.Unlock()
			id, _ := saml.NewID(nil)
			resp := &saml.LogoutResponse{ID: id, InResponseTo: req.ID, IssueInstant: time.Now(), Issuer: burstIdPEntity,
				Status: saml.StatusSuccess}
			signed, serr := u.signer.SignEnveloped(resp.Element())
			if serr == nil {
				_ = saml.WriteSOAP(w, signed)
				return
			}
			err = serr
		}
	}
	u.mu.Lock()
	u.bad = append(u.bad, err.Error())
	u.mu.Unlock()
	saml.WriteSOAPFault(w, http.StatusInternalServerError, "Client", "refused")
}

func (u *soapUpstream) counts() (told int, bad []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.told), append([]string(nil), u.bad...)
}

// metadata is the IdP's metadata: its signing certificate, an SSO
// service and only a SOAP SingleLogoutService.
func (u *soapUpstream) metadata() string {
	cert := base64.StdEncoding.EncodeToString(u.signer.Cert.Raw)
	return `<?xml version="1.0"?>
<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="` + burstIdPEntity + `">
  <md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>` + cert + `</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:SOAP" Location="http://` + u.addr + `/soap"/>
    <md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="http://` + u.addr + `/sso"/>
  </md:IDPSSODescriptor>
</md:EntityDescriptor>`
}

// burstConfig is baseConfig with the SAML upstream.
func burstConfig(t *testing.T, db string, u *soapUpstream) string {
	t.Helper()
	dir := t.TempDir()
	md := filepath.Join(dir, "upstream.xml")
	if err := os.WriteFile(md, []byte(u.metadata()), 0o600); err != nil {
		t.Fatal(err)
	}
	td, err := filepath.Abs(filepath.Join("..", "internal", "app", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	doc := fmt.Sprintf(baseConfig, db)
	doc = strings.Replace(doc, "  type: static\n", "  type: saml\n", 1) + `
saml:
  sp:
    cert_file: ` + filepath.Join(td, "bridge-sp.crt") + `
    key_file: ` + filepath.Join(td, "bridge-sp.key") + `
    upstreams:
      - name: corp
        metadata_file: ` + md + `
`
	path := filepath.Join(dir, "slobridge.yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// seedUpstreamSessions writes n sessions from upstream corp, one user
// each, as logins through the SAML upstream would have.
func seedUpstreamSessions(t *testing.T, db string, n int) []string {
	t.Helper()
	st, err := bolt.Open(db, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	eng, err := slobridge.NewEngine(slobridge.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range n {
		s, err := eng.CreateSession(context.Background(), store.Session{UserID: fmt.Sprintf("user%04d", i), Upstream: "corp",
			NameID:       store.NameID{Value: fmt.Sprintf("user%04d@corp.test", i), Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"},
			SessionIndex: fmt.Sprintf("_si%04d", i), ExpiresAt: time.Now().Add(time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = s.ID
	}
	return ids
}

// adminLogouts logs the sessions out through the admin API, concurrently
// (a burst), and fails the test unless every one is accepted.
func adminLogouts(t *testing.T, base string, sids []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(sids))
	sem := make(chan struct{}, 32)
	for _, sid := range sids {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			body, _ := json.Marshal(adminapi.LogoutRequest{SessionID: sid})
			req, _ := http.NewRequest(http.MethodPost, base+"/admin/v1/logouts", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+adminToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			var out adminapi.LogoutResponse
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || resp.StatusCode != http.StatusCreated || len(out.Logout.SessionIDs) != 1 {
				errs <- fmt.Errorf("logout %s: HTTP %d %+v %v", sid, resp.StatusCode, out, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestAdminLogoutBurstWhileUpstreamDown is the acceptance test of the
// upstream leg (issue 13): 1,000 operator logouts in a burst while the
// upstream IdP's SOAP endpoint refuses connections for 30 s, with the
// bridge SIGKILLed after the first half and restarted for the second:
// once the upstream is back, it receives a valid LogoutRequest for every
// one of the 1,000 upstream sessions (at least once), and every logout's
// upstream leg reads delivered.
func TestAdminLogoutBurstWhileUpstreamDown(t *testing.T) {
	if testing.Short() {
		t.Skip("takes over 30 s (-short)")
	}
	const n, down = 1000, 30 * time.Second
	u := newSOAPUpstream(t)
	db := filepath.Join(t.TempDir(), "bridge.db")
	sids := seedUpstreamSessions(t, db, n)
	cfg := burstConfig(t, db, u)
	wentDown := time.Now()

	p1 := startServe(t, cfg)
	adminLogouts(t, p1.baseURL(t), sids[:n/2])
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := p1.exitWithin(t, waitTimeout); err == nil {
		t.Fatal("the killed bridge exited cleanly")
	}
	if told, _ := u.counts(); told != 0 {
		t.Fatalf("the upstream was reached while down: %d", told)
	}
	p2 := startServe(t, cfg)
	base := p2.baseURL(t)
	adminLogouts(t, base, sids[n/2:])

	time.Sleep(time.Until(wentDown.Add(down)))
	u.up()
	deadline := time.Now().Add(3 * waitTimeout)
	for {
		told, bad := u.counts()
		if len(bad) > 0 {
			t.Fatalf("the upstream refused %d LogoutRequests, first: %s", len(bad), bad[0])
		}
		if told == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream was told about %d of %d sessions:\n%s", told, n, p2.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("all %d upstream sessions told, %s after the upstream came back", n, time.Since(wentDown.Add(down)).Round(time.Millisecond))
}
