package saml

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
)

// SignEnveloped returns a copy of the protocol message el with an enveloped
// XML signature (exclusive C14N, SHA-256, RSA-SHA256 or ECDSA-SHA256 by the
// signer's key) inserted right after its <saml:Issuer>, as SAML Core §5.4.1
// and the schema require. el must carry an ID attribute and declare the
// namespaces it uses.
func (s *Signer) SignEnveloped(el *etree.Element) (*etree.Element, error) {
	alg, err := s.SigAlg()
	if err != nil {
		return nil, err
	}
	if el.SelectAttrValue("ID", "") == "" {
		return nil, malformed("cannot sign an element without an ID")
	}
	ctx, err := dsig.NewSigningContext(s.Key, [][]byte{s.Cert.Raw})
	if err != nil {
		return nil, err
	}
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(alg); err != nil {
		return nil, err
	}
	sig, err := ctx.ConstructSignature(el, true)
	if err != nil {
		return nil, err
	}
	if alg == SigAlgECDSASHA256 {
		if err := fixECDSAValue(sig, s.Key.Public().(*ecdsa.PublicKey)); err != nil {
			return nil, err
		}
	}
	out := el.Copy()
	at := 0
	for i, c := range out.Child {
		if ce, ok := c.(*etree.Element); ok && is(ce, NSAssertion, "Issuer") {
			at = i + 1
			break
		}
	}
	out.InsertChildAt(at, sig)
	return out, nil
}

// fixECDSAValue rewrites the ASN.1 ECDSA SignatureValue goxmldsig produces
// into r||s, the form XML Signature defines (RFC 6931 §2.3.6) and other
// implementations (xmlsec, Santuario) expect.
func fixECDSAValue(sig *etree.Element, pub *ecdsa.PublicKey) error {
	for _, c := range sig.ChildElements() {
		if c.Tag != dsig.SignatureValueTag {
			continue
		}
		der, err := base64.StdEncoding.DecodeString(c.Text())
		if err != nil {
			return err
		}
		raw, err := derToRaw(der, pub)
		if err != nil {
			return err
		}
		c.SetText(base64.StdEncoding.EncodeToString(raw))
	}
	return nil
}

// VerifyEnveloped verifies the enveloped signature of the protocol message
// root against the keys of t and returns the element that the signature
// covers, re-read from the verified canonical bytes. Callers must process
// only the returned element.
//
// Signature wrapping is refused before any cryptography: the message must
// have a non-empty ID unique in the document; there must be exactly one
// ds:Signature in the whole document, a direct child of the root placed
// right after <Issuer>; its SignedInfo must hold exactly one Reference, to
// "#"+ID, with the enveloped-signature transform and at most one
// canonicalization. ds:KeyInfo is ignored: only the keys of t count.
// SHA-1 (signature or digest) is refused unless t.AllowSHA1.
func VerifyEnveloped(root *etree.Element, t Trust) (*etree.Element, error) {
	return verifyEnveloped(root, t, false)
}

// verifyEnveloped is VerifyEnveloped; withAssertions lets the root's child
// <Assertion>s carry signatures of their own (a signed Response holding a
// signed assertion), which the caller verifies separately.
func verifyEnveloped(root *etree.Element, t Trust, withAssertions bool) (*etree.Element, error) {
	id := root.SelectAttrValue("ID", "")
	if id == "" {
		return nil, badSignature("message has no ID")
	}
	if n := countIDs(root, id); n != 1 {
		return nil, badSignature("ID %q occurs %d times", id, n)
	}
	n := countDescendants(root, NSDSig, "Signature")
	if withAssertions {
		for _, a := range childrenNS(root, NSAssertion, "Assertion") {
			n -= countDescendants(a, NSDSig, "Signature")
		}
	}
	switch n {
	case 0:
		return nil, badSignature("message is not signed")
	case 1:
	default:
		return nil, badSignature("message holds %d signatures", n)
	}
	kids := root.ChildElements()
	if len(kids) < 2 || !is(kids[0], NSAssertion, "Issuer") || !is(kids[1], NSDSig, "Signature") {
		return nil, badSignature("the signature is not the child of the message right after <Issuer>")
	}
	return verifyAt(root, 1, id, t)
}

// VerifyMetadata verifies the enveloped signature of a SAML metadata
// document (Metadata §3): exactly one ds:Signature among the root's
// children, its first child, referencing the root's unique ID, by a key of
// t. Signatures inside child elements are ignored; the returned element,
// re-read from the verified canonical bytes, is the one to use.
func VerifyMetadata(root *etree.Element, t Trust) (*etree.Element, error) {
	id := root.SelectAttrValue("ID", "")
	if id == "" {
		return nil, badSignature("metadata has no ID to sign")
	}
	if n := countIDs(root, id); n != 1 {
		return nil, badSignature("ID %q occurs %d times", id, n)
	}
	kids := root.ChildElements()
	if len(childrenNS(root, NSDSig, "Signature")) != 1 || len(kids) == 0 || !is(kids[0], NSDSig, "Signature") {
		return nil, badSignature("metadata must hold one signature, its first child")
	}
	return verifyAt(root, 0, id, t)
}

// verifyAt checks the signature that is child element number at of root.
func verifyAt(root *etree.Element, at int, id string, t Trust) (*etree.Element, error) {
	if err := checkSignedInfo(root.ChildElements()[at], id, t.AllowSHA1); err != nil {
		return nil, err
	}
	if len(t.Certs) == 0 {
		return nil, badSignature("no trusted certificate for %q", t.EntityID)
	}
	_, prefixed := signedInfoPrefixList(root.ChildElements()[at])
	var lastErr error
	for _, cert := range t.Certs {
		verify := verifyWith
		if prefixed {
			verify = func(root *etree.Element, at int, cert *x509.Certificate) (*etree.Element, error) {
				return verifyPrefixListSignature(root, at, id, cert, t.AllowSHA1)
			}
		}
		el, err := verify(root, at, cert)
		if err == nil {
			return el, nil
		}
		lastErr = err
	}
	return nil, badSignature("signature does not verify with any key of %q: %v", t.EntityID, lastErr)
}

// verifyWith runs goxmldsig against one trusted certificate.
func verifyWith(root *etree.Element, at int, cert *x509.Certificate) (*etree.Element, error) {
	cp := root.Copy()
	sig := cp.ChildElements()[at]
	for _, c := range sig.ChildElements() {
		if c.Tag == dsig.KeyInfoTag {
			sig.RemoveChild(c)
		}
	}
	if pub, ok := cert.PublicKey.(*ecdsa.PublicKey); ok {
		for _, c := range sig.ChildElements() {
			if c.Tag == dsig.SignatureValueTag {
				raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(c.Text()), ""))
				if err == nil {
					c.SetText(base64.StdEncoding.EncodeToString(rawToDER(raw, pub)))
				}
			}
		}
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
	// Metadata certificates are trust anchors; their dates do not matter.
	vc.Clock = dsig.NewFakeClockAt(cert.NotBefore.Add(time.Second))
	return vc.Validate(cp)
}

// checkSignedInfo enforces the shape of the signature's SignedInfo.
func checkSignedInfo(sig *etree.Element, id string, allowSHA1 bool) error {
	sis := childrenNS(sig, NSDSig, "SignedInfo")
	if len(sis) != 1 {
		return badSignature("signature must hold one SignedInfo")
	}
	return checkSignedInfoElement(sis[0], id, allowSHA1)
}

// checkSignedInfoElement enforces the shape of a SignedInfo element.
func checkSignedInfoElement(si *etree.Element, id string, allowSHA1 bool) error {
	sm := childrenNS(si, NSDSig, "SignatureMethod")
	if len(sm) != 1 {
		return badSignature("SignedInfo must hold one SignatureMethod")
	}
	if _, err := hashFor(sm[0].SelectAttrValue("Algorithm", ""), allowSHA1); err != nil {
		return err
	}
	refs := childrenNS(si, NSDSig, "Reference")
	if len(refs) != 1 {
		return badSignature("SignedInfo must hold exactly one Reference, has %d", len(refs))
	}
	ref := refs[0]
	if ref.SelectAttrValue("URI", "") != "#"+id {
		return badSignature("signature Reference does not point at the message ID")
	}
	dm := childrenNS(ref, NSDSig, "DigestMethod")
	if len(dm) != 1 {
		return badSignature("Reference must hold one DigestMethod")
	}
	if _, err := digestHash(dm[0].SelectAttrValue("Algorithm", ""), allowSHA1); err != nil {
		return err
	}
	var enveloped, c14n int
	for _, tr := range childrenNS(ref, NSDSig, "Transforms") {
		for _, x := range childrenNS(tr, NSDSig, "Transform") {
			switch dsig.AlgorithmID(x.SelectAttrValue("Algorithm", "")) {
			case dsig.EnvelopedSignatureAltorithmId:
				enveloped++
			case dsig.CanonicalXML10ExclusiveAlgorithmId, dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId,
				dsig.CanonicalXML11AlgorithmId, dsig.CanonicalXML10RecAlgorithmId:
				c14n++
			default:
				return badSignature("transform %q not allowed", x.SelectAttrValue("Algorithm", ""))
			}
		}
	}
	if enveloped != 1 || c14n > 1 {
		return badSignature("signature must be enveloped with at most one canonicalization")
	}
	return nil
}

// digestHash returns the hash of a DigestMethod URI, refusing SHA-1
// unless allowed and anything unknown.
func digestHash(alg string, allowSHA1 bool) (crypto.Hash, error) {
	switch alg {
	case digestSHA256:
		return crypto.SHA256, nil
	case digestSHA384:
		return crypto.SHA384, nil
	case digestSHA512:
		return crypto.SHA512, nil
	case digestSHA1:
		if allowSHA1 {
			return crypto.SHA1, nil
		}
		return 0, badSignature("SHA-1 digest refused")
	}
	return 0, badSignature("unsupported digest algorithm %q", alg)
}

// countIDs counts the elements of el's subtree whose ID attribute is id.
func countIDs(el *etree.Element, id string) int {
	n := 0
	for _, a := range el.Attr {
		if a.Key == "ID" && a.Space == "" && a.Value == id {
			n++
		}
	}
	for _, c := range el.ChildElements() {
		n += countIDs(c, id)
	}
	return n
}
