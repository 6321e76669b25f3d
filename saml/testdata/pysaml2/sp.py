#!/usr/bin/python3
"""A SAML service provider built on pysaml2 (Debian python3-pysaml2), for
the bridge's interop tests: a third-party SP implementation that nobody
here wrote. It logs in through the bridge's IdP (HTTP-Redirect
AuthnRequest, HTTP-POST Response) and answers a LogoutRequest that
arrives by HTTP-POST with a LogoutResponse sent by HTTP-Redirect (POST in,
Redirect out), signed with the query signature, as pysaml2 builds them.

usage: sp.py IDP_METADATA_FILE KEY_FILE CERT_FILE [--fail-logout] [--answer-post]

It listens on 127.0.0.1 on a free port and prints one line
"listening http://127.0.0.1:PORT" once it serves. With --fail-logout it
answers every LogoutRequest with the status pysaml2 gives when its local
logout fails (Responder/RequestDenied, "Server error"). With --answer-post
it answers by HTTP-POST instead (pysaml2's auto-submitting form), whatever
the request came by: Redirect in, POST out.

Routes: /metadata, /login, /acs (POST), /slo (POST and GET), /whoami,
and /logout: an SP-initiated logout by HTTP-Redirect (pysaml2's
do_logout), whose LogoutResponse pysaml2 checks at /slo and shows as
"logout answered: STATUS SUB-STATUS".
"""

import http.server
import logging
import sys
import threading
import urllib.parse

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import create_metadata_string
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.samlp import STATUS_REQUEST_DENIED
from saml2.s_utils import status_message_factory, success_status_factory
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256


def main():
    idp_md, key, cert = sys.argv[1:4]
    fail_logout = "--fail-logout" in sys.argv[4:]
    answer_binding = BINDING_HTTP_POST if "--answer-post" in sys.argv[4:] else BINDING_HTTP_REDIRECT
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    base = "http://127.0.0.1:%d" % server.server_address[1]
    conf = SPConfig()
    conf.load({
        "entityid": base + "/metadata",
        "service": {"sp": {
            "name": "pysaml2 test SP",
            "endpoints": {
                "assertion_consumer_service": [(base + "/acs", BINDING_HTTP_POST)],
                "single_logout_service": [(base + "/slo", BINDING_HTTP_POST),
                                          (base + "/slo", BINDING_HTTP_REDIRECT)],
            },
            "name_id_format": NAMEID_FORMAT_PERSISTENT,
            "authn_requests_signed": True,
            "logout_requests_signed": True,
            "logout_responses_signed": True,
            "want_response_signed": False,
            "want_assertions_signed": False,
            "want_assertions_or_response_signed": True,
            "allow_unsolicited": False,
            "signing_algorithm": SIG_RSA_SHA256,
            "digest_algorithm": DIGEST_SHA256,
        }},
        "metadata": {"local": [idp_md]},
        "key_file": key,
        "cert_file": cert,
        "xmlsec_binary": "/usr/bin/xmlsec1",
        "allow_unknown_attributes": True,
    })
    client = Saml2Client(conf)
    idp_entity = next(iter(client.metadata.identity_providers()))
    metadata = create_metadata_string(None, config=conf, valid=24, sign=False)
    outstanding = {}
    logged_in = {}  # name ID value -> name ID
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, fmt, *args):
            sys.stderr.write("pysaml2 sp: " + fmt % args + "\n")

        def send(self, status, body, ctype="text/plain; charset=utf-8", headers=()):
            data = body if isinstance(body, bytes) else body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def redirect(self, http_args):
            loc = dict(http_args["headers"])["Location"]
            self.send(303, "", headers=[("Location", loc)])

        def form(self):
            n = int(self.headers.get("Content-Length") or 0)
            return {k: v[0] for k, v in urllib.parse.parse_qs(self.rfile.read(n).decode()).items()}

        def do_GET(self):
            u = urllib.parse.urlparse(self.path)
            q = {k: v[0] for k, v in urllib.parse.parse_qs(u.query).items()}
            if u.path == "/metadata":
                self.send(200, metadata, "application/samlmetadata+xml")
            elif u.path == "/login":
                reqid, info = client.prepare_for_authenticate(entityid=idp_entity, relay_state="/whoami",
                                                              binding=BINDING_HTTP_REDIRECT,
                                                              sigalg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
                with lock:
                    outstanding[reqid] = "/whoami"
                self.redirect(info)
            elif u.path == "/whoami":
                with lock:
                    who = ", ".join(sorted(logged_in)) or "nobody"
                self.send(200, "pysaml2 sp: logged in: " + who)
            elif u.path == "/slo" and "SAMLRequest" in q:
                self.logout(q["SAMLRequest"], BINDING_HTTP_REDIRECT, q.get("RelayState", ""))
            elif u.path == "/slo" and "SAMLResponse" in q:
                self.logout_answered(q["SAMLResponse"], BINDING_HTTP_REDIRECT)
            elif u.path == "/logout":
                with lock:
                    name_ids = list(logged_in.values())
                if not name_ids:
                    self.send(400, "pysaml2 sp: nobody to log out")
                    return
                responses = client.do_logout(name_ids[0], [idp_entity], "", None, sign=True,
                                             expected_binding=BINDING_HTTP_REDIRECT,
                                             sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
                _binding, http_info = responses[idp_entity]
                self.redirect(http_info)
            else:
                self.send(404, "not found")

        def logout_answered(self, saml_response, binding):
            try:
                resp = client.parse_logout_request_response(saml_response, binding)
            except Exception as e:
                self.send(400, "pysaml2 sp: LogoutResponse refused: %r" % e)
                return
            status = resp.response.status.status_code
            sub = status.status_code.value if status.status_code is not None else ""
            with lock:
                logged_in.clear()
            self.send(200, "pysaml2 sp: logout answered: %s %s" % (status.value, sub))

        def do_POST(self):
            u = urllib.parse.urlparse(self.path)
            f = self.form()
            if u.path == "/acs" and "SAMLResponse" in f:
                with lock:
                    out = dict(outstanding)
                try:
                    resp = client.parse_authn_request_response(f["SAMLResponse"], BINDING_HTTP_POST, out)
                except Exception as e:  # pysaml2 raises many kinds
                    self.send(400, "pysaml2 sp: Response refused: %r" % e)
                    return
                if resp is None:
                    self.send(400, "pysaml2 sp: Response refused")
                    return
                with lock:
                    outstanding.pop(resp.in_response_to, None)
                    logged_in[resp.name_id.text] = resp.name_id
                self.send(303, "", headers=[("Location", "/whoami")])
            elif u.path == "/slo" and "SAMLRequest" in f:
                self.logout(f["SAMLRequest"], BINDING_HTTP_POST, f.get("RelayState", ""))
            elif u.path == "/slo" and "SAMLResponse" in f:
                self.logout_answered(f["SAMLResponse"], BINDING_HTTP_POST)
            else:
                self.send(404, "not found")

        def logout(self, saml_request, binding, relay_state):
            # pysaml2's own handle_logout_request, except that the answer
            # goes back by answer_binding whatever the request came by.
            try:
                req = client.parse_logout_request(saml_request, binding)
            except Exception as e:
                self.send(400, "pysaml2 sp: LogoutRequest refused: %r" % e)
                return
            if req is None:
                self.send(400, "pysaml2 sp: LogoutRequest refused")
                return
            name_id = req.message.name_id
            with lock:
                known = logged_in.pop(name_id.text, None) is not None
            if fail_logout:
                status = status_message_factory("Server error", STATUS_REQUEST_DENIED)
            elif known:
                client.local_logout(name_id)
                status = success_status_factory()
            else:
                status = status_message_factory("Wrong user", "urn:oasis:names:tc:SAML:2.0:status:UnknownPrincipal")
            bindings = [answer_binding]
            post = answer_binding == BINDING_HTTP_POST
            response = client.create_logout_response(req.message, bindings=bindings, status=status, sign=post,
                                                     sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
            rinfo = client.response_args(req.message, bindings)
            http_args = client.apply_binding(rinfo["binding"], str(response), rinfo["destination"], relay_state,
                                             response=True, sign=not post, sigalg=SIG_RSA_SHA256)
            if post:
                self.send(200, http_args["data"], "text/html; charset=utf-8")
            else:
                self.redirect(http_args)

    server.RequestHandlerClass = Handler
    print("listening " + base, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
