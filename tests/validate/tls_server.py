"""An HTTPS backend for the TLS tests, made of parts nobody here wrote: certificates from the
`trustme` package, TLS from Python's `ssl` (OpenSSL).

    tls_server.py DIR [--require-client-cert] [--tls12]

Writes into DIR: ca.pem (the CA that signed the server's certificate, for localhost and
127.0.0.1), client.pem and client-key.pem (a client certificate, CN telemetry-relay-test, from
the same CA), and other-ca.pem (a CA that signed nothing here). Then serves HTTPS on a free
port of 127.0.0.1, prints "listening PORT" once it accepts connections, and answers every
POST 200 after appending {"path", "bytes", "client"} (the client certificate's CN, or null) as
a line to DIR/requests.jsonl. --tls12 caps the protocol at TLS 1.2, where a missing client
certificate fails the handshake itself (in TLS 1.3 the client learns it only afterwards). Each connection's handshake runs on its own thread; one that
fails is left to OpenSSL and ends only that connection."""
import http.server
import json
import os
import ssl
import sys

import trustme

directory = sys.argv[1]
require_client = "--require-client-cert" in sys.argv[2:]
tls12 = "--tls12" in sys.argv[2:]
ca = trustme.CA()
server_cert = ca.issue_cert("localhost", "127.0.0.1")
client_cert = ca.issue_cert("telemetry-relay-test", common_name="telemetry-relay-test")
ca.cert_pem.write_to_path(os.path.join(directory, "ca.pem"))
client_cert.cert_chain_pems[0].write_to_path(os.path.join(directory, "client.pem"))
client_cert.private_key_pem.write_to_path(os.path.join(directory, "client-key.pem"))
trustme.CA().cert_pem.write_to_path(os.path.join(directory, "other-ca.pem"))
log = os.path.join(directory, "requests.jsonl")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        peer = self.connection.getpeercert()
        client = None
        if peer:
            client = dict(pair[0] for pair in peer["subject"]).get("commonName")
        with open(log, "a") as f:
            f.write(json.dumps({"path": self.path, "bytes": len(body), "client": client}) + "\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_cert.configure_cert(context)
if tls12:
    context.maximum_version = ssl.TLSVersion.TLSv1_2
if require_client:
    context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(context)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def finish_request(self, request, client_address):
        # The handshake runs on the connection's own thread: one that stalls or fails holds
        # up nobody else.
        try:
            tls = context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(tls, client_address)


server = Server(("127.0.0.1", 0), Handler)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
