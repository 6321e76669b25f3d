#!/usr/bin/env bash
# Regenerates the test keys of package app: the SAML IdP's signing
# certificate and the certificate of the test SP whose metadata is
# sp-metadata.xml (the certificate is pasted into it).
set -euo pipefail
cd "$(dirname "$0")"
for n in idp sp; do
  openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 3650 \
    -subj "/CN=slobridge test $n" -keyout "$n.key" -out "$n.crt" 2>/dev/null
done
cert=$(grep -v -- '-----' sp.crt | tr -d '\n')
sed "s|CERT|$cert|" sp-metadata.xml.in > sp-metadata.xml
