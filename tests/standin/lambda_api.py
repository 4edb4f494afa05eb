"""A stand-in for the Lambda API calls compare_init.py makes, behaving as the real one does for
them, for tests (the real calls cost money and need an account).

    lambda_api.py STATE_FILE [--function NAME] [--update-polls N] [--throttle-every K]
                  [--fail-invoke N] [--timeout-invoke N] [--snapstart] [--layers ARN,...]

- GetFunctionConfiguration: the configuration, with LastUpdateStatus InProgress for N reads
  after each update, then Successful.
- UpdateFunctionConfiguration: 409 ResourceConflictException while an update is in progress,
  as Lambda answers; otherwise applies Layers and Environment.
- Invoke with LogType Tail: a base64 log tail with a REPORT line shaped like Lambda's. The
  first invoke after a configuration change is a cold start (Init Duration, or Restore
  Duration under --snapstart), with a deterministic duration that is larger with a layer.
  Every K-th invoke is throttled (429 TooManyRequestsException) first; from invoke N on every
  invoke fails with 500 ServiceException (--fail-invoke: the service is down), N times out (--timeout-invoke), or never answers
  (--hang-invoke: it prints "hanging N" first, so a test can interrupt the client then).
- PublishLayerVersion: a new version ARN.

Prints "listening PORT" once it accepts connections. After every request it writes its state
to STATE_FILE: the configuration and every invoke (its layers and whether it was cold)."""
import argparse
import base64
import http.server
import json
import random
import re
import threading

parser = argparse.ArgumentParser()
parser.add_argument("state")
parser.add_argument("--function", default="checkout-api")
parser.add_argument("--update-polls", type=int, default=2)
parser.add_argument("--throttle-every", type=int, default=0)
parser.add_argument("--fail-invoke", type=int, default=0)
parser.add_argument("--timeout-invoke", type=int, default=0)
parser.add_argument("--snapstart", action="store_true")
parser.add_argument("--hang-invoke", type=int, default=0)
parser.add_argument("--layers", default="")
args = parser.parse_args()

lock = threading.Lock()
rng = random.Random(11)
state = {
    "config": {
        "FunctionName": args.function,
        "FunctionArn": f"arn:aws:lambda:us-east-1:123456789012:function:{args.function}",
        "Runtime": "python3.13",
        "MemorySize": 256,
        "Timeout": 3,
        "Architectures": ["x86_64"],
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "Layers": [{"Arn": a, "CodeSize": 1000} for a in args.layers.split(",") if a],
        "Environment": {"Variables": {"STAGE": "prod"}},
    },
    "initial": None,
    "invokes": [],
    "updates": 0,
    "conflicts": 0,
    "throttled": 0,
    "published": [],
}
state["initial"] = json.loads(json.dumps(state["config"]))
pending = {"polls": 0, "cold": True, "invokes": 0, "throttle_next": False}


def report(cold, layered, n, status=None):
    request_id = f"00000000-0000-4000-8000-{n:012d}"
    duration = round(rng.uniform(2.0, 6.0) + (0.3 if layered else 0.0), 2)
    billed = int(duration) + 1
    memory = 48 + (2 if layered else 0)
    line = f"REPORT RequestId: {request_id}\tDuration: {duration} ms\tBilled Duration: {billed} ms\tMemory Size: 256 MB\tMax Memory Used: {memory} MB"
    if cold:
        init = round(rng.uniform(150.0, 170.0) + (1.5 if layered else 0.0), 2)
        line += f"\tRestore Duration: {init} ms" if args.snapstart else f"\tInit Duration: {init} ms"
    if status:
        line += f"\tStatus: {status}"
    lines = [f"START RequestId: {request_id} Version: $LATEST"]
    if status == "timeout":
        lines.append(f"2026-12-01T10:00:03.000Z {request_id} Task timed out after 3.00 seconds")
    lines += [f"END RequestId: {request_id}", line, ""]
    return "\n".join(lines)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        with open(args.state, "w") as f:
            json.dump(state, f)

    def error(self, status, kind, message):
        self.reply(status, {"Type": "User", "message": message}, {"x-amzn-ErrorType": kind})

    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        with lock:
            if not re.fullmatch(rf"/2015-03-31/functions/{args.function}/configuration", self.path.split("?")[0]):
                return self.error(404, "ResourceNotFoundException", f"Function not found: {self.path}")
            config = dict(state["config"])
            if pending["polls"] > 0:
                pending["polls"] -= 1
                config["LastUpdateStatus"] = "InProgress"
            self.reply(200, config)

    def do_PUT(self):
        with lock:
            data = json.loads(self.body() or b"{}")
            if pending["polls"] > 0:
                state["conflicts"] += 1
                return self.error(409, "ResourceConflictException",
                                  f"The operation cannot be performed at this time. An update is in progress for resource: {state['config']['FunctionArn']}")
            if "Layers" in data:
                state["config"]["Layers"] = [{"Arn": a, "CodeSize": 1000} for a in data["Layers"]]
            if "Environment" in data:
                state["config"]["Environment"] = {"Variables": data["Environment"].get("Variables", {})}
            state["updates"] += 1
            pending["polls"] = args.update_polls
            pending["cold"] = True
            self.reply(200, state["config"])

    def do_POST(self):
        with lock:
            payload = self.body()
            path = self.path.split("?")[0]
            m = re.fullmatch(r"/2018-10-31/layers/([^/]+)/versions", path)
            if m:
                version = len(state["published"]) + 1
                arn = f"arn:aws:lambda:us-east-1:123456789012:layer:{m.group(1)}:{version}"
                state["published"].append(arn)
                return self.reply(201, {"LayerArn": arn.rsplit(":", 1)[0], "LayerVersionArn": arn, "Version": version,
                                        "Content": {"CodeSize": len(payload)}, "CompatibleArchitectures": ["x86_64"]})
            if path != f"/2015-03-31/functions/{args.function}/invocations":
                return self.error(404, "ResourceNotFoundException", f"no such resource: {path}")
            if pending["polls"] > 0:
                return self.error(409, "ResourceConflictException", "The function is being updated")
            n = pending["invokes"] + 1
            if args.throttle_every and n % args.throttle_every == 0 and not pending["throttle_next"]:
                pending["throttle_next"] = True
                state["throttled"] += 1
                return self.error(429, "TooManyRequestsException", "Rate Exceeded.")
            pending["throttle_next"] = False
            pending["invokes"] = n
            if args.fail_invoke and n >= args.fail_invoke:
                return self.error(500, "ServiceException", "internal failure (injected)")
            if args.hang_invoke == n:
                print(f"hanging {n}", flush=True)
                hang = True
            else:
                hang = False
            layered = bool(state["config"]["Layers"])
            cold = pending["cold"]
            pending["cold"] = False
            status = "timeout" if args.timeout_invoke == n else None
            tail = report(cold, layered, n, status)
            state["invokes"].append({"layers": [l["Arn"] for l in state["config"]["Layers"]], "cold": cold,
                                     "nonce": state["config"]["Environment"]["Variables"].get("TELEMETRY_RELAY_COMPARE_NONCE")})
            headers = {"X-Amz-Log-Result": base64.b64encode(tail.encode()).decode(), "X-Amz-Executed-Version": "$LATEST"}
            if status:
                headers["X-Amz-Function-Error"] = "Unhandled"
            if not hang:
                return self.reply(200, b'{"ok":true}', headers)
        # Outside the lock: the other calls go on while this one never answers.
        threading.Event().wait()


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(args.state, "w") as f:
    json.dump(state, f)
print(f"listening {server.server_address[1]}", flush=True)
server.serve_forever()
