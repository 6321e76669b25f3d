#!/usr/bin/env bash
# Regenerates the test keys of package app and the metadata that embeds
# them: the bridge's SAML IdP certificate (idp.*), the bridge's SAML SP
# certificate (bridge-sp.*), a downstream test SP (sp.*, sp-metadata.xml)
# and an upstream test IdP (upstream.*, upstream-metadata.xml).
set -euo pipefail
cd "$(dirname "$0")"
for n in idp bridge-sp sp upstream; do
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -subj "/CN=slobridge test $n" -keyout "$n.key" -out "$n.crt" 2>/dev/null
done
for n in sp upstream; do
  cert=$(grep -v -- '-----' "$n.crt" | tr -d '\n')
  sed "s|CERT|$cert|" "$n-metadata.xml.in" > "$n-metadata.xml"
done
# The HTTPS listener's certificate for 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 -days 3650 \
  -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" -keyout tls.key -out tls.crt 2>/dev/null
