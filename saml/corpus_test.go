package saml

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

var update = flag.Bool("update", false, "regenerate the negative corpus and fuzz seeds in testdata/")

// Corpus is the manifest of the negative corpus in testdata/corpus: attack
// and broken messages sent by the IdP idpEntity (key testdata/idp.key) to
// the bridge's SP single-logout endpoints, at clock t0. saml/sp replays it
// against its handlers; this package against the validator.
type Corpus struct {
	// Clock is the time the messages are valid at.
	Clock time.Time `json:"clock"`
	// IdP and SLO, SOAP are the sender and the endpoints (Destination).
	IdP  string       `json:"idp"`
	SLO  string       `json:"slo"`
	SOAP string       `json:"soap"`
	Case []CorpusCase `json:"cases"`
}

// CorpusCase is one message of the corpus.
type CorpusCase struct {
	Name string `json:"name"`
	// Binding is BindingRedirect (File holds the raw query), BindingPOST
	// (a form body) or BindingSOAP (an envelope).
	Binding string `json:"binding"`
	File    string `json:"file"`
	// Codec is what the validator reports: "malformed", "signature",
	// "status" (an *Error with Status/SubStatus) or "valid".
	Codec string `json:"codec"`
	// HTTP400 says a browser endpoint answers HTTP 400 (no SAML
	// response); otherwise it answers a LogoutResponse with
	// Status/SubStatus. On a SOAP endpoint an HTTP400 case is answered,
	// instead, by a SOAP fault with HTTP 500 (Codec "malformed": SOAP 1.1
	// §6.2) or, when only the signature failed and the sender and request
	// ID are known (Codec "signature"), by a Requester/RequestDenied
	// LogoutResponse in a 200 envelope.
	HTTP400   bool   `json:"http400"`
	Status    string `json:"status,omitempty"`
	SubStatus string `json:"sub_status,omitempty"`
	// SendTwice marks the replay case: the first delivery succeeds, the
	// second is the one judged.
	SendTwice bool `json:"send_twice,omitempty"`
	// PendingRequestID is, for LogoutResponse cases, the ID of the
	// bridge's request the response must answer.
	PendingRequestID string `json:"pending_request_id,omitempty"`
}

const (
	corpusDir   = "testdata/corpus"
	corpusSOAP  = "https://bridge.example.test/saml/sp/slo/soap"
	corpusRelay = "corpus-relay-1"
	// CorpusPendingID is the request ID LogoutResponse cases answer.
	corpusPendingID = "_pending1"
)

func corpusRequest(id, nameID string) *LogoutRequest {
	return &LogoutRequest{
		ID: id, IssueInstant: t0, Destination: spSLO, Issuer: idpEntity,
		NameID: NameID{Value: nameID, Format: "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
			NameQualifier: idpEntity, SPNameQualifier: spEntity},
		SessionIndexes: []string{"_s1"},
	}
}

type corpusGen struct {
	t     *testing.T
	files map[string][]byte
	cases []CorpusCase
}

func (g *corpusGen) sign(el *etree.Element, key string) *etree.Element {
	g.t.Helper()
	out, err := testSigner(g.t, key).SignEnveloped(el)
	if err != nil {
		g.t.Fatal(err)
	}
	return out
}

func xmlBytes(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func postBody(param string, xmlData []byte, relay string) []byte {
	v := url.Values{param: {base64.StdEncoding.EncodeToString(xmlData)}}
	if relay != "" {
		v.Set(ParamRelayState, relay)
	}
	return []byte(v.Encode())
}

func (g *corpusGen) add(c CorpusCase, data []byte) {
	ext := map[string]string{BindingRedirect: ".query", BindingPOST: ".form", BindingSOAP: ".soap.xml"}[c.Binding]
	c.File = c.Name + ext
	g.files[c.File] = data
	g.cases = append(g.cases, c)
}

func (g *corpusGen) redirect(el *etree.Element, param, relay, key string) []byte {
	g.t.Helper()
	var s *Signer
	if key != "" {
		s = testSigner(g.t, key)
	}
	u, err := RedirectURL(spSLO, param, el, relay, s)
	if err != nil {
		g.t.Fatal(err)
	}
	p, _ := url.Parse(u)
	return []byte(p.RawQuery)
}

func (g *corpusGen) soap(el *etree.Element) []byte {
	b, err := SOAPEnvelope(el)
	if err != nil {
		g.t.Fatal(err)
	}
	return b
}

func deflateRaw(data []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	_, _ = w.Write(data)
	_ = w.Close()
	return b.Bytes()
}

// signSHA1 signs el with RSA-SHA1 and a SHA-1 digest, which must be refused.
func (g *corpusGen) signSHA1(el *etree.Element) *etree.Element {
	s := testSigner(g.t, "idp")
	ctx, err := dsig.NewSigningContext(s.Key, [][]byte{s.Cert.Raw})
	if err != nil {
		g.t.Fatal(err)
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA1SignatureMethod); err != nil {
		g.t.Fatal(err)
	}
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		g.t.Fatal(err)
	}
	out := el.Copy()
	out.InsertChildAt(1, sig)
	return out
}

func (g *corpusGen) generate() {
	t := g.t
	malf := func(name, binding string, data []byte) {
		g.add(CorpusCase{Name: name, Binding: binding, Codec: "malformed", HTTP400: true}, data)
	}
	unauth := func(name, binding string, data []byte) {
		g.add(CorpusCase{Name: name, Binding: binding, Codec: "signature", HTTP400: true}, data)
	}
	denied := func(name, binding string, data []byte) {
		g.add(CorpusCase{Name: name, Binding: binding, Codec: "status", Status: StatusRequester, SubStatus: StatusRequestDenied}, data)
	}
	alice := func(id string) *LogoutRequest { return corpusRequest(id, "alice@example.com") }

	// Unsigned, and signed by a key not in the IdP's metadata.
	unauth("unsigned-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, alice("_c_unsigned_post").Element()), ""))
	unauth("unsigned-redirect", BindingRedirect, g.redirect(alice("_c_unsigned_redir").Element(), ParamRequest, "", ""))
	soapAlice := func(id string) *LogoutRequest {
		r := alice(id)
		r.Destination = corpusSOAP
		return r
	}
	unauth("unsigned-soap", BindingSOAP, g.soap(soapAlice("_c_unsigned_soap").Element()))
	unauth("other-key-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, g.sign(alice("_c_other_post").Element(), "other")), ""))
	unauth("other-key-redirect", BindingRedirect, g.redirect(alice("_c_other_redir").Element(), ParamRequest, "", "other"))
	unauth("other-key-soap", BindingSOAP, g.soap(g.sign(soapAlice("_c_other_soap").Element(), "other")))

	// Signature wrapping. A genuine signed request for carol's session
	// is the raw material; each attack tries to make alice's session end.
	genuine := g.sign(corpusRequest("_c_genuine", "carol@example.com").Element(), "idp")
	{ // moved: an unsigned request for alice whose Extensions hold the signed one.
		evil := alice("_c_wrap_moved").Element()
		ext := etree.NewElement("samlp:Extensions")
		ext.AddChild(genuine.Copy())
		evil.InsertChildAt(1, ext)
		unauth("wrap-moved-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, evil), ""))
	}
	{ // same ID: an unsigned root reusing the genuine ID, the original inside.
		evil := corpusRequest("_c_genuine", "alice@example.com").Element()
		ext := etree.NewElement("samlp:Extensions")
		ext.AddChild(genuine.Copy())
		evil.InsertChildAt(1, ext)
		unauth("wrap-same-id-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, evil), ""))
	}
	{ // the genuine signature copied onto a modified message.
		evil := corpusRequest("_c_genuine", "alice@example.com").Element()
		evil.InsertChildAt(1, genuine.ChildElements()[1].Copy())
		unauth("wrap-modified-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, evil), ""))
	}
	{ // duplicated signature element.
		dup := genuine.Copy()
		dup.InsertChildAt(2, genuine.ChildElements()[1].Copy())
		unauth("wrap-duplicated-signature-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, dup), ""))
	}
	{ // a second, unsigned LogoutRequest beside the signed one in the SOAP Body.
		env := etree.NewDocument()
		if err := env.ReadFromBytes(g.soap(genuine)); err != nil {
			t.Fatal(err)
		}
		body := env.Root().ChildElements()[0]
		body.AddChild(alice("_c_wrap_beside").Element())
		b, _ := env.WriteToBytes()
		malf("wrap-second-beside-soap", BindingSOAP, b)
	}
	{ // the same beside the signed one in a POST document (two roots).
		b := append(xmlBytes(t, alice("_c_wrap_beside2").Element()), xmlBytes(t, genuine)...)
		malf("wrap-second-beside-post", BindingPOST, postBody(ParamRequest, b, ""))
	}

	// Authenticated but invalid: answered with a SAML status.
	{
		r := alice("_c_wrong_dest")
		r.Destination = "https://evil.example.test/slo"
		denied("wrong-destination-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, g.sign(r.Element(), "idp")), ""))
		r = alice("_c_expired")
		r.IssueInstant = t0.Add(-2 * time.Hour)
		denied("expired-issueinstant-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, g.sign(r.Element(), "idp")), ""))
		r = alice("_c_future")
		r.IssueInstant = t0.Add(time.Hour)
		denied("future-issueinstant-redirect", BindingRedirect, g.redirect(r.Element(), ParamRequest, "", "idp"))
		r = alice("_c_notonorafter")
		r.Destination = corpusSOAP
		r.NotOnOrAfter = t0.Add(-5 * time.Minute)
		denied("notonorafter-passed-soap", BindingSOAP, g.soap(g.sign(r.Element(), "idp")))
		r = corpusRequest("_c_replay", "carol@example.com")
		g.add(CorpusCase{Name: "replayed-id-post", Binding: BindingPOST, Codec: "status", SendTwice: true,
			Status: StatusRequester, SubStatus: StatusRequestDenied},
			postBody(ParamRequest, xmlBytes(t, g.sign(r.Element(), "idp")), ""))
		// What widely deployed peers get wrong or differ in: a Destination
		// that only looks like ours, an Issuer that is not an entity.
		r = alice("_c_dest_port")
		r.Destination = "https://bridge.example.test:8443/saml/sp/slo"
		denied("destination-other-port-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, g.sign(r.Element(), "idp")), ""))
		r = alice("_c_dest_scheme")
		r.Destination = "http://bridge.example.test/saml/sp/slo"
		denied("destination-other-scheme-redirect", BindingRedirect, g.redirect(r.Element(), ParamRequest, "", "idp"))
		{
			el := alice("_c_issuer_format").Element()
			el.SelectElement("saml:Issuer").CreateAttr("Format", "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
			denied("issuer-format-not-entity-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, g.sign(el, "idp")), ""))
		}
		r = corpusRequest("_c_unknown", "mallory@example.com")
		g.add(CorpusCase{Name: "unknown-nameid-post", Binding: BindingPOST, Codec: "valid",
			Status: StatusRequester, SubStatus: StatusUnknownPrincipal},
			postBody(ParamRequest, xmlBytes(t, g.sign(r.Element(), "idp")), ""))
	}

	// XML that must never be parsed.
	signedAlice := xmlBytes(t, g.sign(alice("_c_dtd").Element(), "idp"))
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>`
	malf("dtd-entity-expansion-post", BindingPOST, postBody(ParamRequest,
		[]byte(laughs+strings.Replace(string(signedAlice), "alice@example.com", "&lol3;", 1)), ""))
	malf("dtd-external-entity-post", BindingPOST, postBody(ParamRequest,
		[]byte(`<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>`+strings.Replace(string(signedAlice), "alice@example.com", "&x;", 1)), ""))
	malf("dtd-soap", BindingSOAP, []byte(`<!DOCTYPE e [<!ENTITY a "b">]>`+string(g.soap(genuine))))

	// Size caps.
	malf("oversized-body-post", BindingPOST, postBody(ParamRequest, append(bytes.Repeat([]byte(" "), 300<<10), signedAlice...), ""))
	bomb := deflateRaw(append(bytes.Repeat([]byte(" "), 8<<20), xmlBytes(t, alice("_c_bomb").Element())...))
	malf("inflation-bomb-redirect", BindingRedirect, []byte(ParamRequest+"="+url.QueryEscape(base64.StdEncoding.EncodeToString(bomb))))

	// SHA-1 refused by default.
	unauth("sha1-post", BindingPOST, postBody(ParamRequest, xmlBytes(t, g.signSHA1(alice("_c_sha1_post").Element())), ""))
	{
		q := string(g.redirect(alice("_c_sha1_redir").Element(), ParamRequest, "", ""))
		q += "&SigAlg=" + url.QueryEscape(SigAlgRSASHA1)
		s := testSigner(t, "idp")
		sig, err := s.Key.Sign(nil, sha1Sum([]byte(q)), cryptoSHA1)
		if err != nil {
			t.Fatal(err)
		}
		unauth("sha1-redirect", BindingRedirect, []byte(q+"&Signature="+url.QueryEscape(base64.StdEncoding.EncodeToString(sig))))
	}

	// An unknown signature algorithm.
	{
		q := string(g.redirect(alice("_c_md5_redir").Element(), ParamRequest, "", ""))
		q += "&SigAlg=" + url.QueryEscape("http://www.w3.org/2001/04/xmldsig-more#rsa-md5")
		unauth("unknown-sigalg-redirect", BindingRedirect, []byte(q+"&Signature="+url.QueryEscape(base64.StdEncoding.EncodeToString([]byte("not a signature")))))
	}

	// Broken encodings.
	malf("bad-base64-redirect", BindingRedirect, []byte("SAMLRequest=%21%21not-base64%21%21&SigAlg=x&Signature=AAAA"))
	malf("bad-base64-post", BindingPOST, []byte("SAMLRequest=%21%21not-base64%21%21"))
	malf("bad-deflate-redirect", BindingRedirect, []byte(ParamRequest+"="+url.QueryEscape(base64.StdEncoding.EncodeToString(signedAlice))))

	// LogoutResponses to the bridge's pending request corpusPendingID.
	resp := func(id string) *LogoutResponse {
		return &LogoutResponse{ID: id, InResponseTo: corpusPendingID, IssueInstant: t0, Destination: spSLO,
			Issuer: idpEntity, Status: StatusSuccess}
	}
	{
		r := resp("_c_resp_wrong_irt")
		r.InResponseTo = "_someone_else"
		g.add(CorpusCase{Name: "response-wrong-inresponseto-redirect", Binding: BindingRedirect, Codec: "status",
			HTTP400: true, PendingRequestID: corpusPendingID}, g.redirect(r.Element(), ParamResponse, corpusRelay, "idp"))
		el := resp("_c_resp_no_issuer").Element()
		el.RemoveChild(el.SelectElement("saml:Issuer"))
		signed := g.sign(el, "idp")
		g.add(CorpusCase{Name: "response-signed-no-issuer-post", Binding: BindingPOST, Codec: "signature",
			HTTP400: true, PendingRequestID: corpusPendingID}, postBody(ParamResponse, xmlBytes(t, signed), corpusRelay))
		g.add(CorpusCase{Name: "response-unsigned-post", Binding: BindingPOST, Codec: "signature",
			HTTP400: true, PendingRequestID: corpusPendingID}, postBody(ParamResponse, xmlBytes(t, resp("_c_resp_unsigned").Element()), corpusRelay))
	}
}

// LoadCorpus reads testdata/corpus/manifest.json and the message files.
func loadCorpus(t *testing.T) (Corpus, map[string][]byte) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(corpusDir, "manifest.json"))
	if err != nil {
		t.Fatalf("read corpus manifest (regenerate with go test ./saml -run TestCorpus -update): %v", err)
	}
	var c Corpus
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, cs := range c.Case {
		b, err := os.ReadFile(filepath.Join(corpusDir, cs.File))
		if err != nil {
			t.Fatal(err)
		}
		files[cs.File] = b
	}
	return c, files
}

// TestCorpus regenerates the corpus under -update, then checks every case
// against the decoder and the validator.
func TestCorpus(t *testing.T) {
	if *update {
		g := &corpusGen{t: t, files: map[string][]byte{}}
		g.generate()
		if err := os.RemoveAll(corpusDir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(corpusDir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range g.files {
			if err := os.WriteFile(filepath.Join(corpusDir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		man, _ := json.MarshalIndent(Corpus{Clock: t0, IdP: idpEntity, SLO: spSLO, SOAP: corpusSOAP, Case: g.cases}, "", "  ")
		if err := os.WriteFile(filepath.Join(corpusDir, "manifest.json"), append(man, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		writeFuzzSeeds(t, g)
	}
	c, files := loadCorpus(t)
	if len(c.Case) < 25 {
		t.Fatalf("corpus has %d cases", len(c.Case))
	}
	trust := testTrust(t, idpEntity, "idp")
	for _, cs := range c.Case {
		t.Run(cs.Name, func(t *testing.T) {
			v := testValidator(t)
			err := runCorpusCase(t, v, cs, files[cs.File], trust)
			if cs.SendTwice {
				if err != nil {
					t.Fatalf("first delivery: %v", err)
				}
				err = runCorpusCase(t, v, cs, files[cs.File], trust)
			}
			var se *Error
			switch cs.Codec {
			case "malformed":
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
			case "signature":
				if !errors.Is(err, ErrSignature) {
					t.Fatalf("err = %v, want ErrSignature", err)
				}
			case "status":
				if !errors.As(err, &se) {
					t.Fatalf("err = %v, want *Error", err)
				}
				if cs.Status != "" && (se.Status != cs.Status || se.SubStatus != cs.SubStatus) {
					t.Fatalf("status %s/%s, want %s/%s", se.Status, se.SubStatus, cs.Status, cs.SubStatus)
				}
			case "valid":
				if err != nil {
					t.Fatalf("err = %v, want a valid message", err)
				}
			default:
				t.Fatalf("unknown expectation %q", cs.Codec)
			}
		})
	}
}

func runCorpusCase(t *testing.T, v *Validator, cs CorpusCase, data []byte, trust Trust) error {
	t.Helper()
	var r *http.Request
	switch cs.Binding {
	case BindingRedirect:
		r = httptest.NewRequest(http.MethodGet, "/slo?"+string(data), nil)
	case BindingPOST:
		r = httptest.NewRequest(http.MethodPost, "/slo", bytes.NewReader(data))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case BindingSOAP:
		r = httptest.NewRequest(http.MethodPost, "/slo/soap", bytes.NewReader(data))
		r.Header.Set("Content-Type", "text/xml")
	default:
		return fmt.Errorf("unknown binding %q", cs.Binding)
	}
	m, err := ReadHTTP(r, Limits{})
	if err != nil {
		return err
	}
	dest := spSLO
	if cs.Binding == BindingSOAP {
		dest = corpusSOAP
	}
	if m.IsRequest() {
		_, err = v.LogoutRequest(ctxT(t), m, trust, dest)
	} else {
		_, err = v.LogoutResponse(ctxT(t), m, trust, dest, cs.PendingRequestID)
	}
	return err
}
