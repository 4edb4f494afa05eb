"""Checks gzip request bodies with Python's own gzip module (an implementation we did not
write): each raw body must be a valid gzip stream (header, deflate, CRC-32 and length) whose
content is exactly what the test backend decoded.

Input: a JSON file holding [{"raw_hex": "...", "body": "..."}, ...]. Exit status 0 when all pass."""
import gzip
import json
import sys

requests = json.load(open(sys.argv[1]))
if not requests:
    sys.exit("no gzip requests to check")
for i, request in enumerate(requests):
    content = gzip.decompress(bytes.fromhex(request["raw_hex"]))
    if content != request["body"].encode():
        sys.exit(f"request {i}: gzip content differs from what the backend decoded")
print(f"{len(requests)} gzip bodies valid")
