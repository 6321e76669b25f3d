package idp

// The SOAP back-channel SP of the tests, and the independent tools
// (xmlsec1, openssl) that check the bridge's signatures.

import (
	"bytes"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/beevik/etree"

	"github.com/slobridge/slobridge"
	bsaml "github.com/slobridge/slobridge/saml"
)

// soapSP is the SOAP SingleLogoutService of SP3. It checks every
// LogoutRequest's signature with `xmlsec1 --verify` and answers as told.
type soapSP struct {
	t      *testing.T
	xmlsec string
	signer *bsaml.Signer
	issuer func() string
	// mode: "ok" answers Success, "fail" answers Responder, "hang" never
	// answers (until the client gives up).
	mode     atomic.Value
	requests atomic.Int32
	mu       sync.Mutex
	got      []gotLogout
}

func newSOAPSP(t *testing.T, xmlsec string) *soapSP {
	s := &soapSP{t: t, xmlsec: xmlsec, signer: testSigner(t, "sp3")}
	s.mode.Store("ok")
	return s
}

var xmlsecOK = regexp.MustCompile(`(?m)^OK$`)

func (s *soapSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	got := gotLogout{Verified: s.xmlsecVerify(body), DeliveryID: r.Header.Get(slobridge.DeliveryIDHeader)}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	lr := doc.FindElement("//LogoutRequest")
	if lr == nil {
		http.Error(w, "no LogoutRequest", http.StatusBadRequest)
		return
	}
	got.ID = lr.SelectAttrValue("ID", "")
	got.Destination = lr.SelectAttrValue("Destination", "")
	if e := lr.FindElement("Issuer"); e != nil {
		got.Issuer = e.Text()
	}
	if e := lr.FindElement("NameID"); e != nil {
		got.NameID, got.Format = e.Text(), e.SelectAttrValue("Format", "")
	}
	if e := lr.FindElement("SessionIndex"); e != nil {
		got.SessionIndex = e.Text()
	}
	s.mu.Lock()
	s.got = append(s.got, got)
	s.mu.Unlock()
	status := bsaml.StatusSuccess
	switch s.mode.Load().(string) {
	case "hang":
		<-r.Context().Done()
		return
	case "fail":
		status = bsaml.StatusResponder
	}
	id, _ := bsaml.NewID(nil)
	resp := &bsaml.LogoutResponse{ID: id, InResponseTo: got.ID, IssueInstant: timeNow(), Issuer: s.issuer(), Status: status}
	signed, err := s.signer.SignEnveloped(resp.Element())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	_ = bsaml.WriteSOAP(w, signed)
}

// xmlsecVerify checks the enveloped signature of the SOAP body's
// LogoutRequest with xmlsec1 and the bridge's certificate.
func (s *soapSP) xmlsecVerify(body []byte) error {
	dir := s.t.TempDir()
	f := filepath.Join(dir, "req.xml")
	if err := os.WriteFile(f, body, 0o600); err != nil {
		return err
	}
	out, err := exec.Command(s.xmlsec, "--verify", "--pubkey-cert-pem", filepath.Join("testdata", "idp.crt"),
		"--id-attr:ID", "urn:oasis:names:tc:SAML:2.0:protocol:LogoutRequest", f).CombinedOutput()
	if err != nil || !xmlsecOK.Match(out) {
		return fmt.Errorf("xmlsec1 --verify: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// formPost extracts an auto-submitting form's action and fields.
var (
	formAction = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	formInput  = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

func parseForm(page string) (string, url.Values, error) {
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		return "", nil, fmt.Errorf("no form in page: %.300s", page)
	}
	v := url.Values{}
	for _, in := range formInput.FindAllStringSubmatch(page, -1) {
		v.Set(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	return html.UnescapeString(m[1]), v, nil
}

// opensslVerify checks an RSA-SHA256 signature over data with the bridge's
// certificate, using the openssl binary.
func opensslVerify(t *testing.T, openssl string, data, sig []byte) error {
	dir := t.TempDir()
	pub, err := exec.Command(openssl, "x509", "-pubkey", "-noout", "-in", filepath.Join("testdata", "idp.crt")).Output()
	if err != nil {
		return fmt.Errorf("openssl x509: %w", err)
	}
	files := map[string][]byte{"pub.pem": pub, "data": data, "sig": sig}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return err
		}
	}
	out, err := exec.Command(openssl, "dgst", "-sha256", "-verify", filepath.Join(dir, "pub.pem"),
		"-signature", filepath.Join(dir, "sig"), filepath.Join(dir, "data")).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Verified OK") {
		return fmt.Errorf("openssl dgst -verify: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
