package saml

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"strings"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// signedInfoPrefixList returns the InclusiveNamespaces PrefixList of the
// exclusive canonicalization of a signature's SignedInfo, and whether it
// has one. goxmldsig canonicalizes SignedInfo without it, so such
// signatures (legal per Exclusive XML Canonicalization §3, made by some
// XML-DSig stacks) never verify there; verifyPrefixListSignature handles
// them.
func signedInfoPrefixList(sig *etree.Element) (string, bool) {
	for _, si := range childrenNS(sig, NSDSig, "SignedInfo") {
		for _, cm := range childrenNS(si, NSDSig, "CanonicalizationMethod") {
			for _, in := range cm.ChildElements() {
				if in.Tag == "InclusiveNamespaces" && in.NamespaceURI() == string(dsig.CanonicalXML10ExclusiveAlgorithmId) {
					return in.SelectAttrValue("PrefixList", ""), true
				}
			}
		}
	}
	return "", false
}

// exclusiveCanonicalizer returns the exclusive canonicalizer of an
// algorithm URI with a prefix list, or false for any other algorithm.
func exclusiveCanonicalizer(alg, prefixList string) (dsig.Canonicalizer, bool) {
	switch dsig.AlgorithmID(alg) {
	case dsig.CanonicalXML10ExclusiveAlgorithmId:
		return dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList(prefixList), true
	case dsig.CanonicalXML10ExclusiveWithCommentsAlgorithmId:
		return dsig.MakeC14N10ExclusiveWithCommentsCanonicalizerWithPrefixList(prefixList), true
	}
	return nil, false
}

// inclusiveNamespaces returns the PrefixList of a canonicalization
// element's InclusiveNamespaces child.
func inclusiveNamespaces(el *etree.Element) string {
	for _, in := range el.ChildElements() {
		if in.Tag == "InclusiveNamespaces" {
			return in.SelectAttrValue("PrefixList", "")
		}
	}
	return ""
}

// verifyPrefixListSignature verifies the enveloped signature that is
// child number at of root, whose SignedInfo is canonicalized with an
// InclusiveNamespaces PrefixList, by cert: SignedInfo canonicalized as
// its CanonicalizationMethod says (with the in-scope namespaces the list
// names), the SignatureValue over it, then, from the verified SignedInfo
// only, the Reference: exactly one, to "#"+id, enveloped, exclusive C14N
// (with its own PrefixList), and its digest. checkSignedInfo has already
// enforced the shape and the algorithms. It returns the signed element
// re-read from the canonical bytes that were digested.
func verifyPrefixListSignature(root *etree.Element, at int, id string, cert *x509.Certificate, allowSHA1 bool) (*etree.Element, error) {
	cp := root.Copy()
	sig := cp.ChildElements()[at]
	ctx, err := etreeutils.NSBuildParentContext(sig)
	if err == nil {
		ctx, err = ctx.SubContext(sig)
	}
	if err != nil {
		return nil, badSignature("signature namespaces: %v", err)
	}
	si := childrenNS(sig, NSDSig, "SignedInfo")[0]
	detached, err := etreeutils.NSDetatch(ctx, si)
	if err != nil {
		return nil, badSignature("SignedInfo namespaces: %v", err)
	}
	cm := childrenNS(si, NSDSig, "CanonicalizationMethod")
	if len(cm) != 1 {
		return nil, badSignature("SignedInfo must hold one CanonicalizationMethod")
	}
	c14n, ok := exclusiveCanonicalizer(cm[0].SelectAttrValue("Algorithm", ""), inclusiveNamespaces(cm[0]))
	if !ok {
		return nil, badSignature("an InclusiveNamespaces PrefixList needs exclusive canonicalization")
	}
	canonSI, err := c14n.Canonicalize(detached)
	if err != nil {
		return nil, badSignature("canonicalize SignedInfo: %v", err)
	}
	sv := childrenNS(sig, NSDSig, "SignatureValue")
	if len(sv) != 1 {
		return nil, badSignature("signature must hold one SignatureValue")
	}
	sigBytes, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(sv[0].Text()), ""))
	if err != nil {
		return nil, badSignature("SignatureValue is not base64")
	}
	sm := childrenNS(si, NSDSig, "SignatureMethod")[0].SelectAttrValue("Algorithm", "")
	if err := verifyOctets(sm, canonSI, sigBytes, Trust{Certs: []*x509.Certificate{cert}, AllowSHA1: allowSHA1}); err != nil {
		return nil, err
	}
	// From here on only the verified bytes count.
	vdoc, err := parseXML(canonSI)
	if err != nil {
		return nil, badSignature("verified SignedInfo: %v", err)
	}
	if err := checkSignedInfoElement(vdoc.Root(), id, allowSHA1); err != nil {
		return nil, err
	}
	ref := childrenNS(vdoc.Root(), NSDSig, "Reference")[0]
	var refC14N dsig.Canonicalizer
	for _, tr := range childrenNS(ref, NSDSig, "Transforms") {
		for _, x := range childrenNS(tr, NSDSig, "Transform") {
			if c, ok := exclusiveCanonicalizer(x.SelectAttrValue("Algorithm", ""), inclusiveNamespaces(x)); ok {
				refC14N = c
			}
		}
	}
	if refC14N == nil {
		return nil, badSignature("the Reference must be canonicalized exclusively")
	}
	dm := childrenNS(ref, NSDSig, "DigestMethod")[0].SelectAttrValue("Algorithm", "")
	h, err := digestHash(dm, allowSHA1)
	if err != nil {
		return nil, err
	}
	// The enveloped-signature transform: the signed element without its
	// signature.
	signed := root.Copy()
	signed.RemoveChildAt(signed.ChildElements()[at].Index())
	canonEl, err := refC14N.Canonicalize(signed)
	if err != nil {
		return nil, badSignature("canonicalize the signed element: %v", err)
	}
	hh := h.New()
	hh.Write(canonEl)
	dv := childrenNS(ref, NSDSig, "DigestValue")
	if len(dv) != 1 {
		return nil, badSignature("Reference must hold one DigestValue")
	}
	want, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(dv[0].Text()), ""))
	if err != nil || !bytes.Equal(hh.Sum(nil), want) {
		return nil, badSignature("the digest of the signed element does not match")
	}
	out, err := parseXML(canonEl)
	if err != nil {
		return nil, badSignature("verified element: %v", err)
	}
	return out.Root(), nil
}
