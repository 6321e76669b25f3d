package sp

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"time"

	crewjam "github.com/crewjam/saml"
	"github.com/gin-gonic/gin"

	"github.com/slobridge/slobridge/saml"
)

// metadataValidity and metadataCache are the validUntil and cacheDuration
// of the SP metadata (Metadata §2.3.1 and §4.3): IdPs that fetch it by URL
// refresh it daily and never hold it past two days.
const (
	metadataValidity = 48 * time.Hour
	metadataCache    = 24 * time.Hour
)

// Metadata returns the SP's metadata (SAML Metadata §2.4.4): the signing
// certificate (also offered for encryption when it is RSA, so IdPs may
// encrypt assertions), the ACS for HTTP-POST and the single-logout
// service for HTTP-Redirect, HTTP-POST and SOAP.
func (sp *SP) Metadata() *crewjam.EntityDescriptor {
	yes := true
	ki := crewjam.KeyInfo{X509Data: crewjam.X509Data{X509Certificates: []crewjam.X509Certificate{
		{Data: base64.StdEncoding.EncodeToString(sp.opts.Signer.Cert.Raw)}}}}
	keys := []crewjam.KeyDescriptor{{Use: "signing", KeyInfo: ki}}
	if _, ok := sp.opts.Signer.Key.Public().(*rsa.PublicKey); ok {
		var methods []crewjam.EncryptionMethod
		for _, alg := range saml.EncryptionMethods() {
			methods = append(methods, crewjam.EncryptionMethod{Algorithm: alg})
		}
		keys = append(keys, crewjam.KeyDescriptor{Use: "encryption", KeyInfo: ki, EncryptionMethods: methods})
	}
	var formats []crewjam.NameIDFormat
	seen := map[string]bool{}
	for _, u := range sp.opts.Upstreams {
		if !seen[u.NameIDFormat] {
			seen[u.NameIDFormat] = true
			formats = append(formats, crewjam.NameIDFormat(u.NameIDFormat))
		}
	}
	slo, soap := sp.url(PathSLO), sp.url(PathSLOSOAP)
	// validUntil is always written (crewjam renders a zero time as year 1,
	// which IdPs read as expired metadata); IdPs refetch within it.
	validUntil := sp.opts.Now().Add(metadataValidity).UTC().Truncate(time.Second)
	return &crewjam.EntityDescriptor{
		EntityID:      sp.opts.EntityID,
		ValidUntil:    validUntil,
		CacheDuration: metadataCache,
		SPSSODescriptors: []crewjam.SPSSODescriptor{{
			SSODescriptor: crewjam.SSODescriptor{
				RoleDescriptor: crewjam.RoleDescriptor{
					ProtocolSupportEnumeration: saml.NSProtocol,
					KeyDescriptors:             keys,
				},
				SingleLogoutServices: []crewjam.Endpoint{
					{Binding: saml.BindingRedirect, Location: slo},
					{Binding: saml.BindingPOST, Location: slo},
					{Binding: saml.BindingSOAP, Location: soap},
				},
				NameIDFormats: formats,
			},
			AuthnRequestsSigned:  &yes,
			WantAssertionsSigned: &yes,
			AssertionConsumerServices: []crewjam.IndexedEndpoint{
				{Binding: saml.BindingPOST, Location: sp.url(PathACS), Index: 0, IsDefault: &yes},
			},
		}},
	}
}

func (sp *SP) handleMetadata(c *gin.Context) {
	b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		sp.log.ErrorContext(c.Request.Context(), "render SP metadata", "error", err)
		c.Status(http.StatusInternalServerError)
		return
	}
	c.Header("Cache-Control", "public, max-age=3600")
	c.Data(http.StatusOK, "application/samlmetadata+xml", append([]byte(xml.Header), b...))
}
