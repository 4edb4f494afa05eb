"""Validates OTLP/HTTP requests with the official opentelemetry-proto messages.

Input: a JSON file holding [{"path": "/v1/logs", "body": "...", "body_hex": "..."}, ...]: a
JSON request has its text in "body", a protobuf one its bytes in "body_hex". The message is
ExportLogsServiceRequest, ExportMetricsServiceRequest or ExportTraceServiceRequest, by path.

JSON is parsed strictly (unknown fields fail). Protobuf's JSON parser is lenient where OTLP is
not, so the raw JSON is also checked: trace and span ids are lowercase hex of 32 and 16 digits,
64-bit integers are decimal strings, enums are integers. Protobuf is parsed with
ParseFromString and must leave no unknown field anywhere.

With a second argument, writes every request's content there as OTLP JSON (protobuf requests
converted by the official mapping, ids as hex), so the tests check both encodings alike.

`otlp.py --same FILE` instead compares pairs [{"path", "json": "...", "protobuf_hex": "..."}]:
both encodings of the same events must parse to equal messages, once the times that are "now"
when encoded (observedTimeUnixNano; the relay counters' start, when the encoder was made,
and end) are set aside.

Exit status 0 when all pass."""
import base64
import difflib
import json
import re
import sys

from google.protobuf import json_format
from google.protobuf.unknown_fields import UnknownFieldSet
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

MESSAGES = {"logs": ExportLogsServiceRequest, "metrics": ExportMetricsServiceRequest, "traces": ExportTraceServiceRequest}
INT64_FIELDS = {"timeUnixNano", "observedTimeUnixNano", "startTimeUnixNano", "endTimeUnixNano", "count", "asInt", "intValue"}
ENUM_FIELDS = {"severityNumber", "kind", "aggregationTemporality", "code"}
ID_FIELDS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
HEX = {key: re.compile(f"^[0-9a-f]{{{n}}}$") for key, n in ID_FIELDS.items()}


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


def unknown_fields(message, where="$"):
    if len(UnknownFieldSet(message)):
        yield f"{where} has fields the message does not define"
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        for i, item in enumerate(value if field.is_repeated else [value]):
            yield from unknown_fields(item, f"{where}.{field.name}[{i}]")


def ids_as_hex(node):
    """The protobuf JSON mapping writes bytes as base64; OTLP's writes ids as hex."""
    if isinstance(node, dict):
        return {k: base64.b64decode(v).hex() if k in ID_FIELDS else ids_as_hex(v) for k, v in node.items()}
    if isinstance(node, list):
        return [ids_as_hex(v) for v in node]
    return node


def ids_as_base64(node):
    """OTLP's JSON writes ids as hex where protobuf's JSON mapping has base64."""
    if isinstance(node, dict):
        return {
            k: base64.b64encode(bytes.fromhex(v)).decode() if k in ID_FIELDS and isinstance(v, str) else ids_as_base64(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [ids_as_base64(v) for v in node]
    return node


def parse(signal, request, problems):
    """The request as its message, or None; what is wrong goes into problems."""
    message = MESSAGES[signal]()
    if "body_hex" in request:
        try:
            message.ParseFromString(bytes.fromhex(request["body_hex"]))
        except Exception as e:  # noqa: BLE001 - any parse failure is the finding
            problems.append(f"protobuf: {e}")
            return None
        problems += list(unknown_fields(message))
        return message
    raw = json.loads(request["body"])
    problems += list(raw_problems(raw))
    try:
        json_format.ParseDict(ids_as_base64(raw), message, ignore_unknown_fields=False)
    except (json_format.ParseError, ValueError) as e:
        problems.append(f"protobuf's JSON mapping: {e}")
        return None
    return message


def signal_of(path):
    return path.rstrip("/").rsplit("/", 1)[-1]


def without_now(message):
    """Clears the fields that hold the time of encoding rather than of the events."""
    for resource in getattr(message, "resource_logs", []):
        for scope in resource.scope_logs:
            for record in scope.log_records:
                record.ClearField("observed_time_unix_nano")
    for resource in getattr(message, "resource_metrics", []):
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name.startswith("telemetry_relay."):
                    for point in metric.sum.data_points:
                        point.ClearField("start_time_unix_nano")
                        point.ClearField("time_unix_nano")
    return message


def same(pairs):
    failures = 0
    for n, pair in enumerate(pairs, 1):
        signal = signal_of(pair["path"])
        problems = []
        from_json = parse(signal, {"body": pair["json"]}, problems)
        from_protobuf = parse(signal, {"body_hex": pair["protobuf_hex"]}, problems)
        if from_json is not None and from_protobuf is not None:
            a, b = without_now(from_json), without_now(from_protobuf)
            if a != b:
                diff = difflib.unified_diff(str(a).splitlines(), str(b).splitlines(), "json", "protobuf", lineterm="")
                problems.append("the encodings differ:\n" + "\n".join(diff))
        for problem in problems:
            failures += 1
            print(f"pair {n} ({pair['path']}): {problem}")
    print(f"{len(pairs)} pairs of encodings compared, {failures} problems")
    return 1 if failures or not pairs else 0


def validate(requests, out):
    failures = 0
    contents = []
    for n, request in enumerate(requests, 1):
        signal = signal_of(request["path"])
        problems = []
        if signal not in MESSAGES:
            problems.append(f"unknown signal path {request['path']}")
        else:
            message = parse(signal, request, problems)
            if message is not None:
                contents.append(ids_as_hex(json_format.MessageToDict(message, use_integers_for_enums=True)))
        for problem in problems:
            failures += 1
            print(f"request {n} ({request['path']}): {problem}")
    if out:
        with open(out, "w") as f:
            json.dump(contents, f)
    print(f"{len(requests)} OTLP requests checked, {failures} problems")
    return 1 if failures or not requests else 0


if sys.argv[1] == "--same":
    sys.exit(same(json.load(open(sys.argv[2]))))
sys.exit(validate(json.load(open(sys.argv[1])), sys.argv[2] if len(sys.argv) > 2 else None))
