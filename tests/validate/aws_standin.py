"""A stand-in for the AWS endpoints the extension sends to, for tests/aws.rs, where moto
cannot go: it checks every request's SigV4 signature with botocore (as AWS would: recomputed
from what arrived, for the credentials it was given), reads OTLP bodies with the official
opentelemetry-proto messages, and fails Firehose calls on purpose (a throttled call, then a
failed record) to show that nothing is lost.

    aws_standin.py PORT REPORT ACCESS_KEY SECRET

REPORT is rewritten after each request: every request's service, target or path, whether its
signature was right, the headers tests look at, and what its body carried.
"""
import datetime
import gzip
import json
import os
import sys
from base64 import b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

PORT, REPORT, KEY, SECRET = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
requests = []
firehose_calls = 0


def signature_ok(handler, body):
    auth = handler.headers.get("Authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return False, None
    fields = dict(p.strip().split("=", 1) for p in auth[len("AWS4-HMAC-SHA256 ") :].split(","))
    key, day, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    request = AWSRequest(
        method=handler.command, url=f"http://{handler.headers['Host']}{handler.path}", data=body
    )
    for name in signed:
        for value in handler.headers.get_all(name) or []:
            request.headers[name] = value
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    token = handler.headers.get("X-Amz-Security-Token")
    signer = botocore.auth.SigV4Auth(Credentials(KEY, SECRET, token), service, region)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    fresh = abs(
        datetime.datetime.strptime(request.context["timestamp"], "%Y%m%dT%H%M%SZ")
        - datetime.datetime.utcnow()
    ) < datetime.timedelta(minutes=5)
    ok = key == KEY and expected == fields["Signature"] and fresh and day == request.context["timestamp"][:8]
    return ok, service


def otlp(path, body):
    if path.endswith("/v1/traces"):
        m = ExportTraceServiceRequest.FromString(body)
        return {"spans": [s.name for r in m.resource_spans for ss in r.scope_spans for s in ss.spans]}
    if path.endswith("/v1/logs"):
        m = ExportLogsServiceRequest.FromString(body)
        return {
            "bodies": [
                l.body.string_value
                for r in m.resource_logs
                for sl in r.scope_logs
                for l in sl.log_records
            ]
        }
    m = ExportMetricsServiceRequest.FromString(body)
    return {"metrics": [x.name for r in m.resource_metrics for sm in r.scope_metrics for x in sm.metrics]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/x-amz-json-1.1"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        global firehose_calls
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok, service = signature_ok(self, body)
        target = self.headers.get("X-Amz-Target", "")
        seen = {
            "service": service,
            "signature_ok": ok,
            "target": target,
            "path": self.path,
            "token": self.headers.get("X-Amz-Security-Token"),
            "log_group": self.headers.get("x-aws-log-group"),
            "log_stream": self.headers.get("x-aws-log-stream"),
        }
        requests.append(seen)
        try:
            if not ok:
                self.answer(403, b'{"__type":"InvalidSignatureException","message":"bad signature"}')
            elif target == "Logs_20140328.CreateLogStream":
                seen["created"] = json.loads(body)
                self.answer(200, b"{}")
            elif target == "Firehose_20150804.PutRecordBatch":
                firehose_calls += 1
                records = json.loads(body)["Records"]
                if firehose_calls == 1:
                    seen["injected"] = "throttled"
                    self.answer(400, b'{"__type":"ThrottlingException","message":"Rate exceeded"}')
                    return
                fail_first = firehose_calls == 2
                responses, accepted = [], []
                for i, r in enumerate(records):
                    if fail_first and i == 0:
                        responses.append(
                            {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "Slow down."}
                        )
                        continue
                    data = b64decode(r["Data"])
                    if data[:2] == b"\x1f\x8b":
                        data = gzip.decompress(data)
                    accepted.append(data.decode())
                    responses.append({"RecordId": f"{firehose_calls}-{i}"})
                if fail_first:
                    seen["injected"] = "first record failed"
                seen["records"] = accepted
                failed = sum(1 for r in responses if "ErrorCode" in r)
                answer = {"FailedPutCount": failed, "Encrypted": False, "RequestResponses": responses}
                self.answer(200, json.dumps(answer).encode())
            else:
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                seen.update(otlp(self.path, body))
                self.answer(200, b"", "application/x-protobuf")
        except Exception as e:  # a body the messages cannot read is a failure to report
            seen["error"] = repr(e)
            self.answer(400, b"{}")
        finally:
            with open(REPORT + ".tmp", "w") as f:
                json.dump(requests, f)
            os.replace(REPORT + ".tmp", REPORT)


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
