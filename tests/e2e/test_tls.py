"""The HTTPS listener (SPEC §11, gateway/gw_tls): certificates POSTed through
the admin API reach the gateway (router -> certs.get) and serve new
handshakes within 1 s (polled, not slept).

- no certificate at all: the listener is up and every handshake fails with
  unrecognized_name
- SNI: exact name, one-label wildcard, the default `*`, case-insensitive;
  without `*` an unknown name fails with unrecognized_name
- TLS 1.1 refused; TLS 1.2 and 1.3 work; ALPN selects http/1.1
- a certificate replaced live, then removed (falls back to `*`)
- a request through to the demo backend's /echo carries X-Forwarded-Proto: https
- OCSP stapling: a certificate stored with an OCSP response (`ocsp`) has it
  stapled when the client asks (`openssl s_client -status`, TLS 1.2 and 1.3,
  by name and as the default certificate), never when it does not; one
  without gets "no response sent"; replacing the certificate with or without
  a response is live within 1 s; a response past its nextUpdate is no longer
  stapled; apid refuses an expired one

Certificates are self-signed EC P-256, made here with Python's cryptography;
for OCSP, a CA, its leaves and their responses (OCSPResponseBuilder).
"""

import base64
import datetime
import json
import socket
import ssl
import subprocess
import warnings

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp
from cryptography.x509.oid import NameOID

from stack import free_ports, wait_until

DEMO = "demo.test"


def make_cert(cn):
    """(cert PEM, key PEM) of a self-signed certificate whose CN is cn."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


def post_cert(stack, domain, cn):
    cert, key = make_cert(cn)
    r = stack.api("POST", "/api/v1/certificates", {"domain": domain, "cert": cert, "key": key})
    assert r.status_code in (200, 201), (r.status_code, r.text)


def client_ctx(min_version=None, max_version=None, alpn=("h2", "http/1.1")):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so that a TLS 1.1 client really offers 1.1
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        if min_version:
            ctx.minimum_version = min_version
        if max_version:
            ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def handshake(port, sni, ctx=None):
    """(CN of the certificate served, TLS version, ALPN) or the SSLError."""
    ctx = ctx or client_ctx()
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            der = s.getpeercert(binary_form=True)
            cert = x509.load_der_x509_certificate(der)
            cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
            return cn, s.version(), s.selected_alpn_protocol()
    except ssl.SSLError as e:
        return e
    finally:
        raw.close()


def served_cn(port, sni):
    r = handshake(port, sni)
    return r[0] if isinstance(r, tuple) else None


def is_unrecognized(r):
    return isinstance(r, ssl.SSLError) and "UNRECOGNIZED_NAME" in str(r).upper()


def https_get(port, sni, host, path):
    """One request over HTTPS: (status line, headers and body as text)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    with client_ctx().wrap_socket(raw, server_hostname=sni) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path.encode(), host.encode()))
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), head.decode(), body.decode()


def test_https_listener(make_stack):
    (port,) = free_ports(1)
    stack = make_stack(gateway_env={"GATEWAY_HTTPS_ADDR": "127.0.0.1:%d" % port})

    # no certificate at all: listening, every handshake refused
    assert is_unrecognized(handshake(port, "exact.test"))
    assert is_unrecognized(handshake(port, None))

    post_cert(stack, "exact.test", "exact")
    post_cert(stack, "*.wild.test", "wild")
    wait_until(lambda: served_cn(port, "exact.test") == "exact", 1.0, what="exact.test served")
    wait_until(lambda: served_cn(port, "a.wild.test") == "wild", 1.0, what="wildcard served")
    assert served_cn(port, "EXACT.Test") == "exact"
    # without `*`: unknown names and two labels under a wildcard are refused
    assert is_unrecognized(handshake(port, "other.test"))
    assert is_unrecognized(handshake(port, "a.b.wild.test"))

    post_cert(stack, "*", "default")
    wait_until(lambda: served_cn(port, "other.test") == "default", 1.0, what="default served")
    assert served_cn(port, "a.b.wild.test") == "default"
    assert served_cn(port, "exact.test") == "exact"

    # versions and ALPN
    r = handshake(port, "exact.test", client_ctx(ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1))
    assert isinstance(r, ssl.SSLError), r
    assert "PROTOCOL_VERSION" in str(r).upper() or "UNSUPPORTED_PROTOCOL" in str(r).upper(), r
    cn, version, alpn = handshake(port, "exact.test", client_ctx(max_version=ssl.TLSVersion.TLSv1_2))
    assert (cn, version, alpn) == ("exact", "TLSv1.2", "http/1.1")
    cn, version, alpn = handshake(port, "exact.test", client_ctx(min_version=ssl.TLSVersion.TLSv1_3))
    assert (cn, version, alpn) == ("exact", "TLSv1.3", "http/1.1")
    assert handshake(port, "exact.test", client_ctx(alpn=None))[2] is None

    # HTTPS through to the backend: X-Forwarded-Proto says https
    status, head, body = https_get(port, DEMO, DEMO, "/echo")
    assert status.startswith("HTTP/1.1 200"), (status, body)
    low = body.lower()
    assert "x-forwarded-proto" in low and "https" in low, body
    status, _, _ = https_get(port, DEMO, "nope.test", "/")
    assert status.startswith("HTTP/1.1 404"), status
    # the access line says which TLS version and which name (plain HTTP: neither)
    stack.get("/echo?plain=1", host=DEMO)

    def access(path):
        for line in stack.logs("gateway").splitlines():
            if line.startswith("{"):
                e = json.loads(line)
                if e.get("msg") == "access" and e.get("path") == path:
                    return e
        return None

    wait_until(lambda: access("/echo?plain=1") is not None, 5.0, what="access lines")
    tls_line = access("/echo")
    assert tls_line["tls"] in ("TLSv1.3", "TLSv1.2") and tls_line["sni"] == DEMO, tls_line
    assert "tls" not in access("/echo?plain=1")

    # replaced live, then removed: `*` serves it
    post_cert(stack, "exact.test", "exact2")
    wait_until(lambda: served_cn(port, "exact.test") == "exact2", 1.0, what="replaced certificate")
    r = stack.api("DELETE", "/api/v1/certificates/exact.test")
    assert r.status_code == 204, r.text
    wait_until(lambda: served_cn(port, "exact.test") == "default", 1.0, what="removed certificate")

    # the default itself replaced (it is the base context's own certificate:
    # no switch per handshake), then removed
    post_cert(stack, "*", "default2")
    wait_until(lambda: served_cn(port, "other.test") == "default2", 1.0, what="new default served")
    assert served_cn(port, None) == "default2"
    assert served_cn(port, "a.wild.test") == "wild"
    r = stack.api("DELETE", "/api/v1/certificates/*")
    assert r.status_code == 204, r.text
    wait_until(lambda: is_unrecognized(handshake(port, "other.test")), 1.0, what="default removed")
    assert is_unrecognized(handshake(port, None))
    assert served_cn(port, "a.wild.test") == "wild"

    # plain HTTP is untouched
    r = stack.get("/echo", host=DEMO)
    assert r.status_code == 200
    assert "https" not in r.text.lower()


def test_session_tickets_resume(make_stack):
    """A client that kept its ticket resumes without a full handshake (TLS 1.2
    and 1.3); the gateway's close after `Connection: close` sends close_notify."""
    (port,) = free_ports(1)
    stack = make_stack(gateway_env={"GATEWAY_HTTPS_ADDR": "127.0.0.1:%d" % port})
    post_cert(stack, "*", "default")
    post_cert(stack, "exact.test", "exact")
    wait_until(lambda: served_cn(port, "exact.test") == "exact", 1.0, what="exact.test served")

    def connect(ctx, sni, session=None):
        raw = socket.create_connection(("127.0.0.1", port), timeout=5)
        # no ragged EOF allowed: the gateway's close must come with close_notify
        # (else OpenSSL clients drop the session and never resume)
        s = ctx.wrap_socket(raw, server_hostname=sni, session=session, suppress_ragged_eofs=False)
        # TLS 1.3 sends its tickets after the handshake: a request and its
        # answer make sure they have arrived
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % DEMO.encode())
        while s.recv(65536):
            pass
        reused, sess = s.session_reused, s.session
        s.close()
        return reused, sess

    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        ctx = client_ctx(min_version=version, max_version=version)
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # Python sets it; OpenSSL clients do not
        reused, sess = connect(ctx, "exact.test")
        assert not reused
        assert sess is not None and sess.has_ticket, version
        reused, _ = connect(ctx, "exact.test", sess)
        assert reused, "%s: the ticket did not resume" % version
    counters, _ = stack.pong("gateway")
    assert counters.get("tls.failures", 0) == 0, counters


# ---------------------------------------------------------------------- OCSP stapling


def make_ca():
    """(CA certificate, its key): EC P-256, CA:TRUE."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Stapling Test CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_leaf(ca, ca_key, cn):
    """(leaf certificate, its key PEM, cert PEM of the leaf then the CA). The serial
    number has 16 hex digits, so that s_client prints it as we do."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    serial = 0x1000000000000000 | (x509.random_serial_number() & 0x0FFFFFFFFFFFFFFF)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    chain = (cert.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)).decode()
    return cert, key_pem, chain


def make_ocsp(leaf, ca, ca_key, next_update):
    """A good OCSP response for leaf, signed by the CA, base64 of its DER."""
    now = datetime.datetime.now(datetime.timezone.utc)
    resp = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=leaf,
            issuer=ca,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=now - datetime.timedelta(minutes=5),
            next_update=next_update,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, ca)
        .sign(ca_key, hashes.SHA256())
    )
    return base64.b64encode(resp.public_bytes(serialization.Encoding.DER)).decode()


def serial_hex(cert):
    return "%X" % cert.serial_number


def s_client(port, sni, status=True, version=None):
    """openssl s_client's output for one handshake (stdin /dev/null: it ends at once)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port]
    argv += ["-servername", sni] if sni else ["-noservername"]
    if status:
        argv.append("-status")
    if version:
        argv.append(version)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    return r.stdout + r.stderr


def stapled_serial(port, sni, version=None):
    """The serial number of the stapled response's answer, "none" when the server sent
    no response, None when the handshake failed."""
    out = s_client(port, sni, version=version)
    if "OCSP response: no response sent" in out:
        return "none"
    if "OCSP Response Status: successful" not in out or "Cert Status: good" not in out:
        return None
    for line in out.splitlines():
        if line.strip().startswith("Serial Number:"):
            return line.split(":", 1)[1].strip()
    return None


def test_ocsp_stapling(make_stack):
    (port,) = free_ports(1)
    stack = make_stack(gateway_env={"GATEWAY_HTTPS_ADDR": "127.0.0.1:%d" % port}, demo_route=False)
    ca, ca_key = make_ca()
    day = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    leaf, key, chain = make_leaf(ca, ca_key, "ocsp.test")
    body = {"domain": "ocsp.test", "key": key, "cert": chain, "ocsp": make_ocsp(leaf, ca, ca_key, day)}
    r = stack.api("POST", "/api/v1/certificates", body)
    assert r.status_code == 201, r.text
    assert r.json()["ocsp"] is True and r.json()["ocspNextUpdate"].endswith("Z"), r.json()
    post_cert(stack, "plain.test", "plain")
    wait_until(lambda: stapled_serial(port, "ocsp.test") == serial_hex(leaf), 1.0, what="response stapled")

    # both versions; the whole response as s_client shows it
    for version in ("-tls1_2", "-tls1_3"):
        out = s_client(port, "ocsp.test", version=version)
        assert "OCSP Response Status: successful" in out, out
        assert "Serial Number: %s" % serial_hex(leaf) in out, out
        assert "Cert Status: good" in out, out
    # a certificate without a response: none sent
    assert stapled_serial(port, "plain.test") == "none"
    # a client that does not ask gets none (the counter says none was stapled)
    before = stack.pong("gateway")[0].get("tls.ocsp_stapled", 0)
    assert before >= 3
    out = s_client(port, "ocsp.test", status=False)
    assert "BEGIN CERTIFICATE" in out or "Server certificate" in out, out
    assert "OCSP" not in out, out
    assert stack.pong("gateway")[0].get("tls.ocsp_stapled", 0) == before
    # GET /certificates says which have one
    listed = {c["domain"]: c for c in stack.api("GET", "/api/v1/certificates").json()}
    assert listed["ocsp.test"]["ocsp"] is True and listed["ocsp.test"]["ocspNextUpdate"], listed
    assert "ocsp" not in listed["plain.test"], listed

    # replaced live: without a response, then a new leaf with its own
    r = stack.api("POST", "/api/v1/certificates", {"domain": "ocsp.test", "key": key, "cert": chain})
    assert r.status_code == 200 and "ocsp" not in r.json(), r.text
    wait_until(lambda: stapled_serial(port, "ocsp.test") == "none", 1.0, what="response removed")
    leaf2, key2, chain2 = make_leaf(ca, ca_key, "ocsp.test")
    body = {"domain": "ocsp.test", "key": key2, "cert": chain2, "ocsp": make_ocsp(leaf2, ca, ca_key, day)}
    assert stack.api("POST", "/api/v1/certificates", body).status_code == 200
    wait_until(lambda: stapled_serial(port, "ocsp.test") == serial_hex(leaf2), 1.0, what="new response")

    # the default certificate (the base context's own) staples too, with or without SNI
    leaf3, key3, chain3 = make_leaf(ca, ca_key, "default")
    body = {"domain": "*", "key": key3, "cert": chain3, "ocsp": make_ocsp(leaf3, ca, ca_key, day)}
    assert stack.api("POST", "/api/v1/certificates", body).status_code == 201
    wait_until(lambda: stapled_serial(port, "other.test") == serial_hex(leaf3), 1.0, what="default stapled")
    assert stapled_serial(port, None) == serial_hex(leaf3)
    assert stapled_serial(port, "ocsp.test") == serial_hex(leaf2)

    # apid refuses an expired response; nothing changes
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=1)
    body = {"domain": "ocsp.test", "key": key2, "cert": chain2, "ocsp": make_ocsp(leaf2, ca, ca_key, past)}
    r = stack.api("POST", "/api/v1/certificates", body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["field"]) == ("invalid_value", "ocsp") and "expired" in err["message"], err
    # a response for another certificate: refused too
    body = {"domain": "ocsp.test", "key": key2, "cert": chain2, "ocsp": make_ocsp(leaf, ca, ca_key, day)}
    r = stack.api("POST", "/api/v1/certificates", body)
    assert (r.status_code, r.json()["error"]["field"]) == (400, "ocsp"), r.text
    assert stapled_serial(port, "ocsp.test") == serial_hex(leaf2)

    # a response that runs out while stored: stapled until its nextUpdate, then not
    soon = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=4)
    body = {"domain": "ocsp.test", "key": key, "cert": chain, "ocsp": make_ocsp(leaf, ca, ca_key, soon)}
    assert stack.api("POST", "/api/v1/certificates", body).status_code == 200
    wait_until(lambda: stapled_serial(port, "ocsp.test") == serial_hex(leaf), 1.0, what="short response")
    wait_until(lambda: stapled_serial(port, "ocsp.test") == "none", 8.0, what="response past nextUpdate")
    assert datetime.datetime.now(datetime.timezone.utc) >= soon
    assert stack.pong("gateway")[0].get("tls.ocsp_stale", 0) >= 1
