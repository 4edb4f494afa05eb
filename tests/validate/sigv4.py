"""SigV4 as botocore computes it, for the signer's tests (src/delivery/sigv4/tests.rs).

    sigv4.py sign CASES.json    prints, per case, the headers botocore adds (JSON)

Each case: method, url, headers ([[name, value], ...], repeated names allowed), body_hex,
access_key, secret_key, token (or null), region, service, timestamp (YYYYMMDDTHHMMSSZ).
botocore stamps the time itself; the case's is patched in so both sides sign the same instant.
"""
import datetime
import json
import sys

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def authorization(case):
    stamp = datetime.datetime.strptime(case["timestamp"], "%Y%m%dT%H%M%SZ")
    botocore.auth.get_current_datetime = lambda *a, **k: stamp
    request = AWSRequest(
        method=case["method"], url=case["url"], data=bytes.fromhex(case["body_hex"])
    )
    for name, value in case["headers"]:
        # HTTPHeaders appends on assignment: a repeated name keeps every value, in order.
        request.headers[name] = value
    credentials = Credentials(case["access_key"], case["secret_key"], case["token"])
    botocore.auth.SigV4Auth(credentials, case["service"], case["region"]).add_auth(request)
    return {
        "authorization": request.headers["Authorization"],
        "date": request.headers["X-Amz-Date"],
        "token": request.headers.get("X-Amz-Security-Token"),
    }


if __name__ == "__main__":
    with open(sys.argv[2]) as f:
        cases = json.load(f)
    print(json.dumps([authorization(c) for c in cases]))
