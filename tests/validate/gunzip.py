"""Checks gzip request bodies with Python's own gzip module (an implementation we did not
write): each raw body must be a valid gzip stream (header, deflate, CRC-32 and length) whose
content is exactly what the test backend decoded.

Input: a JSON file holding [{"raw_hex": "...", "body": "...", "body_hex": "..."}, ...]; a
binary (protobuf) body is compared by its "body_hex". Exit status 0 when all pass."""
import gzip
import json
import sys

requests = json.load(open(sys.argv[1]))
if not requests:
    sys.exit("no gzip requests to check")
for i, request in enumerate(requests):
    content = gzip.decompress(bytes.fromhex(request["raw_hex"]))
    decoded = bytes.fromhex(request["body_hex"]) if request.get("body_hex") else request["body"].encode()
    if content != decoded:
        sys.exit(f"request {i}: gzip content differs from what the backend decoded")
print(f"{len(requests)} gzip bodies valid")
