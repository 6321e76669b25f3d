package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"html"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// SAML routes of the bridge's IdP (saml/idp) the tool uses.
const (
	pathIdPMetadata = "/saml/idp/metadata"
	pathIdPSSO      = "/saml/idp/sso"
)

// selfSigned makes an RSA key and a self-signed certificate for cn.
func selfSigned(cn string) (*rsa.PrivateKey, *x509.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

// writeIdPKey writes a fresh IdP signing key and certificate under dir for
// the in-process bridge's saml.idp section and returns their paths.
func writeIdPKey(dir string) (certFile, keyFile string, err error) {
	key, cert, err := selfSigned("slobload bridge IdP")
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "idp.crt"), filepath.Join(dir, "idp.key")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		return "", "", err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// samlApp is a downstream SAML service provider written with crewjam/saml,
// as third-party SPs are: it signs its AuthnRequests and validates the
// bridge's Response (signature, audience, destination, time, InResponseTo).
type samlApp struct {
	sp  *saml.ServiceProvider
	srv *http.Server
}

// startSAMLApp serves the SP's metadata on 127.0.0.1, registers it with
// the bridge through the admin API and loads the bridge's IdP metadata.
func (r *runner) startSAMLApp(ctx context.Context) (*samlApp, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	key, cert, err := selfSigned("slobload SP")
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	mdURL, _ := url.Parse(base + "/saml/metadata")
	acsURL, _ := url.Parse(base + "/saml/acs")
	sp := &saml.ServiceProvider{
		EntityID: mdURL.String(), Key: key, Certificate: cert, MetadataURL: *mdURL, AcsURL: *acsURL,
		SignatureMethod: dsig.RSASHA256SignatureMethod, AuthnNameIDFormat: saml.PersistentNameIDFormat,
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/saml/metadata", func(w http.ResponseWriter, _ *http.Request) {
		b, err := xml.Marshal(sp.Metadata())
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/samlmetadata+xml")
		_, _ = w.Write(b)
	})
	app := &samlApp{sp: sp, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = app.srv.Serve(ln) }()

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.l.t.BaseURL+pathIdPMetadata, nil)
	if err != nil {
		app.srv.Close()
		return nil, err
	}
	resp, body, err := r.l.newBrowser().do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		app.srv.Close()
		if err == nil {
			err = errSkip(fmt.Sprintf("the bridge serves no SAML IdP metadata (HTTP %d): saml.idp is not enabled", resp.StatusCode))
		}
		return nil, err
	}
	var md saml.EntityDescriptor
	if err := xml.Unmarshal(body, &md); err != nil {
		app.srv.Close()
		return nil, fmt.Errorf("IdP metadata: %w", err)
	}
	sp.IDPMetadata = &md
	reg := map[string]any{"metadata_url": mdURL.String(), "name": "slobload SP"}
	if err := r.l.admin(ctx, http.MethodPost, "/admin/v1/saml/sps", reg, nil, http.StatusCreated); err != nil {
		if err2 := r.l.admin(ctx, http.MethodPost, "/admin/v1/saml/sps", reg, nil, http.StatusOK); err2 != nil {
			app.srv.Close()
			return nil, fmt.Errorf("register the SAML SP: %w", err)
		}
	}
	return app, nil
}

// samlLogin runs SP-initiated Web Browser SSO (SAML Profiles §4.1) in
// browser b: a signed AuthnRequest by HTTP-Redirect, the upstream login
// when b has no bridge session, and the Response by HTTP-POST, which the
// SP validates.
func (app *samlApp) login(ctx context.Context, b *browser) error {
	ar, err := app.sp.MakeAuthenticationRequest(app.sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return err
	}
	next, err := ar.Redirect("", app.sp)
	if err != nil {
		return err
	}
	for hops := 0; hops < 10; hops++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		if err != nil {
			return err
		}
		resp, body, err := b.do(req)
		if err != nil {
			return err
		}
		for resp.StatusCode == http.StatusOK {
			m := formRE.FindSubmatch(body)
			if m == nil {
				return fmt.Errorf("SSO: page without a form at %s: %s", next.Path, trim(body))
			}
			if action, _ := next.Parse(html.UnescapeString(string(m[1]))); action != nil && action.String() == app.sp.AcsURL.String() {
				return app.acs(m[2], ar.ID)
			}
			if resp, body, next, err = b.submitForm(ctx, next, body); err != nil {
				return err
			}
		}
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			return fmt.Errorf("SSO at %s: HTTP %d: %s", next.Path, resp.StatusCode, trim(body))
		}
		if next, err = next.Parse(resp.Header.Get("Location")); err != nil {
			return err
		}
	}
	return fmt.Errorf("SSO: no Response after 10 redirects")
}

// acs validates the Response the bridge posts to the SP's ACS.
func (app *samlApp) acs(form []byte, requestID string) error {
	v := url.Values{}
	for _, in := range inputRE.FindAll(form, -1) {
		attrs := map[string]string{}
		for _, a := range attrRE.FindAllSubmatch(in, -1) {
			attrs[strings.ToLower(string(a[1]))] = html.UnescapeString(string(a[2]))
		}
		v.Set(attrs["name"], attrs["value"])
	}
	req, err := http.NewRequest(http.MethodPost, app.sp.AcsURL.String(), strings.NewReader(v.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := req.ParseForm(); err != nil {
		return err
	}
	a, err := app.sp.ParseResponse(req, []string{requestID})
	if err != nil {
		if ire, ok := err.(*saml.InvalidResponseError); ok {
			err = fmt.Errorf("%w: %v", err, ire.PrivateErr)
		}
		return fmt.Errorf("SP rejected the Response: %w", err)
	}
	if a.Subject == nil || a.Subject.NameID == nil || a.Subject.NameID.Value == "" {
		return fmt.Errorf("assertion without a NameID")
	}
	return nil
}

// samlLogins measures SAML SSO logins per second: "full" with a new
// browser each time (a new bridge session through the upstream login),
// "sso" with browsers that already hold a bridge session.
func (r *runner) samlLogins(ctx context.Context) error {
	app, err := r.startSAMLApp(ctx)
	if err != nil {
		return err
	}
	defer app.srv.Close()
	r.bar.start("saml logins (full)", 100)
	lat, el, err := r.timed(ctx, r.p.Duration, r.p.Concurrency, func(ctx context.Context, _ int) error {
		return app.login(ctx, r.l.newBrowser())
	})
	r.bar.finish()
	if err != nil {
		return fmt.Errorf("full SAML login: %w", err)
	}
	r.rep.add(result{Scenario: "saml-login", Metric: "full login (new session + participant)", Value: float64(len(lat)) / el.Seconds(), Unit: "logins/s", Samples: len(lat),
		Note: fmt.Sprintf("p50 %.1f ms, p99 %.1f ms, SP validates each Response", percentile(lat, 50), percentile(lat, 99))})
	bs := make([]*browser, r.p.Concurrency)
	r.bar.start("saml logins (sso)", 100)
	lat, el, err = r.timed(ctx, r.p.Duration, r.p.Concurrency, func(ctx context.Context, w int) error {
		if bs[w] == nil {
			bs[w] = r.l.newBrowser()
		}
		return app.login(ctx, bs[w])
	})
	r.bar.finish()
	if err != nil {
		return fmt.Errorf("SSO SAML login: %w", err)
	}
	r.rep.add(result{Scenario: "saml-login", Metric: "sso login (bridge session exists)", Value: float64(len(lat)) / el.Seconds(), Unit: "logins/s", Samples: len(lat),
		Note: fmt.Sprintf("p50 %.1f ms, p99 %.1f ms", percentile(lat, 50), percentile(lat, 99))})
	return nil
}
