package idp

import (
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net/http"

	"github.com/crewjam/saml"
	"github.com/gin-gonic/gin"

	bsaml "github.com/slobridge/slobridge/saml"
)

// Metadata returns the IdP's metadata (SAML Metadata §2.4.3): its signing
// certificate, SSO endpoints for HTTP-Redirect and HTTP-POST, SLO endpoints
// for HTTP-Redirect, HTTP-POST and SOAP, and the NameID formats it issues.
func (idp *IdP) Metadata() saml.EntityDescriptor {
	validUntil := idp.now().Add(idp.cfg.MetadataValidity).UTC()
	want := idp.cfg.RequireSignedAuthnRequests
	cert := base64.StdEncoding.EncodeToString(idp.opts.Signer.Cert.Raw)
	sso := idp.endpoint(PathSSO)
	slo := idp.endpoint(PathSLO)
	return saml.EntityDescriptor{
		EntityID:   idp.entityID,
		ValidUntil: validUntil,
		IDPSSODescriptors: []saml.IDPSSODescriptor{{
			SSODescriptor: saml.SSODescriptor{
				RoleDescriptor: saml.RoleDescriptor{
					ProtocolSupportEnumeration: bsaml.NSProtocol,
					KeyDescriptors: []saml.KeyDescriptor{{
						Use: "signing",
						KeyInfo: saml.KeyInfo{X509Data: saml.X509Data{
							X509Certificates: []saml.X509Certificate{{Data: cert}},
						}},
					}},
				},
				SingleLogoutServices: []saml.Endpoint{
					{Binding: bsaml.BindingRedirect, Location: slo},
					{Binding: bsaml.BindingPOST, Location: slo},
					{Binding: bsaml.BindingSOAP, Location: idp.endpoint(PathSLOSOAP)},
				},
				NameIDFormats: []saml.NameIDFormat{FormatPersistent, FormatTransient, FormatEmail},
			},
			WantAuthnRequestsSigned: &want,
			SingleSignOnServices: []saml.Endpoint{
				{Binding: bsaml.BindingRedirect, Location: sso},
				{Binding: bsaml.BindingPOST, Location: sso},
			},
		}},
	}
}

func (idp *IdP) handleMetadata(c *gin.Context) {
	md := idp.Metadata()
	b, err := xml.MarshalIndent(md, "", "  ")
	if err != nil {
		idp.log.ErrorContext(c.Request.Context(), "render saml idp metadata", "error", err)
		c.String(http.StatusInternalServerError, "metadata unavailable")
		return
	}
	c.Header("Cache-Control", fmt.Sprintf("public, max-age=%d", 3600))
	c.Data(http.StatusOK, "application/samlmetadata+xml", append([]byte(xml.Header), b...))
}
