package saml

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"errors"
	"io"
	"net/url"
	"strings"

	"github.com/beevik/etree"
)

// DecodeRedirect decodes an HTTP-Redirect binding message (Bindings §3.4)
// from a raw query string exactly as received (r.URL.RawQuery): the values
// are URL-decoded, base64-decoded and inflated (raw DEFLATE, RFC 1951) into
// at most lim.MaxXML bytes. When a Signature is present, SignedOctets holds
// "SAMLRequest=v&RelayState=v&SigAlg=v" built from the raw, still
// URL-encoded substrings of the query (§3.4.4.1): re-encoding would break
// signatures of senders that escape differently. Parameters may not
// repeat.
func DecodeRedirect(rawQuery string, lim Limits) (*Message, error) {
	if int64(len(rawQuery)) > lim.body() {
		return nil, malformed("query string larger than %d bytes", lim.body())
	}
	raw := map[string]string{}
	for part := range strings.SplitSeq(rawQuery, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			return nil, malformed("query parameter name: %v", err)
		}
		switch name {
		case ParamRequest, ParamResponse, ParamRelayState, ParamSigAlg, ParamSignature:
			if _, dup := raw[name]; dup {
				return nil, malformed("query parameter %s repeated", name)
			}
			raw[name] = k + "=" + v
		}
	}
	val := func(name string) (string, error) {
		kv, ok := raw[name]
		if !ok {
			return "", nil
		}
		_, v, _ := strings.Cut(kv, "=")
		s, err := url.QueryUnescape(v)
		if err != nil {
			return "", malformed("query parameter %s: %v", name, err)
		}
		return s, nil
	}
	param := ParamRequest
	_, hasReq := raw[ParamRequest]
	_, hasResp := raw[ParamResponse]
	switch {
	case hasReq && hasResp:
		return nil, malformed("both SAMLRequest and SAMLResponse present")
	case hasResp:
		param = ParamResponse
	case !hasReq:
		return nil, malformed("no SAMLRequest or SAMLResponse parameter")
	}
	enc, err := val(param)
	if err != nil {
		return nil, err
	}
	deflated, err := decodeBase64(enc)
	if err != nil {
		return nil, err
	}
	xmlData, err := inflate(deflated, lim.xml())
	if err != nil {
		return nil, err
	}
	m, err := newMessage(BindingRedirect, param, trimBOM(xmlData), lim)
	if err != nil {
		return nil, err
	}
	if m.RelayState, err = val(ParamRelayState); err != nil {
		return nil, err
	}
	if len(m.RelayState) > MaxRelayStateEcho {
		return nil, malformed("RelayState longer than %d bytes", MaxRelayStateEcho)
	}
	if m.SigAlg, err = val(ParamSigAlg); err != nil {
		return nil, err
	}
	sig, err := val(ParamSignature)
	if err != nil {
		return nil, err
	}
	if sig != "" {
		if m.SigAlg == "" {
			return nil, malformed("Signature without SigAlg")
		}
		if m.Signature, err = decodeBase64(sig); err != nil {
			return nil, err
		}
		octets := raw[param]
		if rs, ok := raw[ParamRelayState]; ok {
			octets += "&" + rs
		}
		octets += "&" + raw[ParamSigAlg]
		m.SignedOctets = []byte(octets)
	}
	return m, nil
}

// inflate decompresses raw DEFLATE data, refusing output beyond max bytes.
func inflate(data []byte, max int64) ([]byte, error) {
	r := flate.NewReader(bytes.NewReader(data))
	defer r.Close()
	out, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, malformed("bad DEFLATE data: %v", err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, malformed("truncated DEFLATE data")
	}
	if int64(len(out)) > max {
		return nil, malformed("inflated message larger than %d bytes", max)
	}
	return out, nil
}

// RedirectURL encodes the protocol message el for the HTTP-Redirect
// binding (Bindings §3.4.4): el is serialized without any ds:Signature,
// DEFLATE-compressed, base64- and URL-encoded into param (ParamRequest or
// ParamResponse), followed by RelayState when not empty and, when s is not
// nil, SigAlg and the Signature over exactly
// "param=v[&RelayState=v]&SigAlg=v". The parameters are appended to
// endpoint (which may already have a query string).
func RedirectURL(endpoint, param string, el *etree.Element, relayState string, s *Signer) (string, error) {
	if len(relayState) > MaxRelayStateEcho {
		return "", errors.New("saml: RelayState too long")
	}
	if countDescendants(el, NSDSig, "Signature") > 0 {
		return "", errors.New("saml: HTTP-Redirect messages carry their signature in the query, not in the XML")
	}
	doc := etree.NewDocument()
	doc.SetRoot(el.Copy())
	xmlData, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(xmlData); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", err
	}
	q := param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relayState != "" {
		q += "&" + ParamRelayState + "=" + url.QueryEscape(relayState)
	}
	if s != nil {
		alg, err := s.SigAlg()
		if err != nil {
			return "", err
		}
		q += "&" + ParamSigAlg + "=" + url.QueryEscape(alg)
		sig, err := s.signOctets([]byte(q))
		if err != nil {
			return "", err
		}
		q += "&" + ParamSignature + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	}
	sep := "?"
	if strings.Contains(endpoint, "?") {
		sep = "&"
	}
	return endpoint + sep + q, nil
}
