"""Validates OTLP/HTTP JSON requests with the official opentelemetry-proto messages.

Input: a JSON file holding [{"path": "/v1/logs", "body": "..."}, ...]. Each body is parsed
strictly (unknown fields fail) into ExportLogsServiceRequest, ExportMetricsServiceRequest or
ExportTraceServiceRequest, chosen by the path. Protobuf's JSON parser is lenient where OTLP is
not, so the raw JSON is also checked: trace and span ids are lowercase hex of 32 and 16
digits, 64-bit integers are decimal strings, enums are integers. Exit status 0 when all pass."""
import json
import re
import sys

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

MESSAGES = {"logs": ExportLogsServiceRequest, "metrics": ExportMetricsServiceRequest, "traces": ExportTraceServiceRequest}
INT64_FIELDS = {"timeUnixNano", "observedTimeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "count", "asInt", "intValue"}
ENUM_FIELDS = {"severityNumber", "kind", "aggregationTemporality", "code"}
HEX = {"traceId": re.compile(r"^[0-9a-f]{32}$"), "spanId": re.compile(r"^[0-9a-f]{16}$"), "parentSpanId": re.compile(r"^[0-9a-f]{16}$")}


def raw_problems(node, where="$"):
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}"
            if key in INT64_FIELDS and not (isinstance(value, str) and re.fullmatch(r"-?\d+", value)):
                yield f"{here} is a 64-bit integer but not a decimal string: {value!r}"
            if key in ENUM_FIELDS and not (isinstance(value, int) and not isinstance(value, bool)):
                yield f"{here} is an enum but not an integer: {value!r}"
            if key in HEX and not (isinstance(value, str) and HEX[key].match(value)):
                yield f"{here} is not lowercase hex of the right length: {value!r}"
            if key == "bucketCounts" and not all(isinstance(v, str) for v in value):
                yield f"{here} holds 64-bit integers that are not strings"
            yield from raw_problems(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from raw_problems(value, f"{where}[{i}]")


requests = json.load(open(sys.argv[1]))
failures = 0
for n, request in enumerate(requests, 1):
    signal = request["path"].rstrip("/").rsplit("/", 1)[-1]
    problems = []
    if signal not in MESSAGES:
        problems.append(f"unknown signal path {request['path']}")
    else:
        try:
            json_format.Parse(request["body"], MESSAGES[signal](), ignore_unknown_fields=False)
        except json_format.ParseError as e:
            problems.append(f"protobuf: {e}")
        problems += list(raw_problems(json.loads(request["body"])))
    for problem in problems:
        failures += 1
        print(f"request {n} ({request['path']}): {problem}")
print(f"{len(requests)} OTLP requests checked, {failures} problems")
sys.exit(1 if failures or not requests else 0)
