"""compare_init.py: measure a Lambda extension layer's cost on your own function.

    compare_init.py --function NAME (--layer-arn ARN | --layer-zip ZIP | --layer-dir DIR)
                    [--rounds 30] [--region REGION] [--out DIR] [--yes] [--poll SECONDS]

--layer-dir picks the zip `make layer` built for the function's architecture
(DIR/telemetry-relay-x86_64.zip or DIR/telemetry-relay-arm64.zip) and publishes it.

Runs ROUNDS cold starts per variant, interleaved (without the layer, with it, without, ...).
Each cold start is forced by changing one harmless environment variable
(TELEMETRY_RELAY_COMPARE_NONCE) and waiting until the update is active; the function is then
invoked with the log tail, and the REPORT line gives Init Duration, Duration, Billed Duration
and Max Memory Used (and Restore Duration under SnapStart). Prints medians, p90, min and max
per variant, the difference of the medians with a bootstrap 95 % interval, and writes every
sample to DIR/samples.csv and a strip plot of Init Duration to DIR/init-duration.svg.

The function's configuration (its layers and environment) is recorded first and restored at
the end, also after an error or Ctrl-C. It uses your AWS credentials the usual way (botocore:
the environment, ~/.aws, SSO...) and honours AWS_ENDPOINT_URL and AWS_ENDPOINT_URL_LAMBDA, so it
runs against a stand-in of the Lambda API as well (tests/standin/lambda_api.py).

Why Python with botocore and not a Rust binary: the AWS credential chain, SigV4 and the Lambda
API's retries are botocore's solved problems, and this tool runs on a laptop, not in Lambda.
"""
import argparse
import base64
import csv
import json
import os
import random
import re
import signal
import statistics
import sys
import time
import uuid

NONCE = "TELEMETRY_RELAY_COMPARE_NONCE"
VARIANTS = ("without", "with")
REPORT_FIELDS = {
    "init_ms": r"Init Duration: ([\d.]+) ms",
    "restore_ms": r"Restore Duration: ([\d.]+) ms",
    "duration_ms": r"\tDuration: ([\d.]+) ms",
    "billed_ms": r"Billed Duration: ([\d.]+) ms",
    "max_memory_mb": r"Max Memory Used: ([\d.]+) MB",
}


def parse_report(tail):
    """The REPORT line of a log tail as numbers (absent fields are None), its status, and the
    extension's shutdown summary if the tail holds one."""
    line = next((l for l in tail.splitlines() if l.startswith("REPORT ")), None)
    if line is None:
        return None
    sample = {}
    for key, pattern in REPORT_FIELDS.items():
        m = re.search(pattern, "\t" + line if key == "duration_ms" else line)
        sample[key] = float(m.group(1)) if m else None
    status = re.search(r"Status: (\w+)", line)
    timed_out = "Task timed out" in tail or (status is not None and status.group(1) == "timeout")
    sample["status"] = "timeout" if timed_out else (status.group(1) if status else "success")
    summary = next((l for l in tail.splitlines() if "shutdown summary:" in l), None)
    sample["relay_summary"] = summary.split("shutdown summary:", 1)[1].strip() if summary else ""
    return sample


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def bootstrap_diff(a, b, resamples=2000, seed=7):
    """median(b) - median(a) and its bootstrap 95 % interval (percentile method, fixed seed)."""
    rng = random.Random(seed)
    diffs = []
    for _ in range(resamples):
        ra = [rng.choice(a) for _ in a]
        rb = [rng.choice(b) for _ in b]
        diffs.append(statistics.median(rb) - statistics.median(ra))
    diffs.sort()
    low = diffs[int(0.025 * (resamples - 1))]
    high = diffs[int(0.975 * (resamples - 1))]
    return statistics.median(b) - statistics.median(a), low, high


def summarize(samples, key):
    """Per-variant statistics of one REPORT field, and the difference of the medians."""
    groups = {v: [s[key] for s in samples if s["variant"] == v and s[key] is not None] for v in VARIANTS}
    rows = {}
    for v, values in groups.items():
        if values:
            rows[v] = {
                "n": len(values),
                "median": statistics.median(values),
                "p90": percentile(values, 90),
                "min": min(values),
                "max": max(values),
            }
    diff = None
    if all(groups[v] for v in VARIANTS):
        diff = bootstrap_diff(groups["without"], groups["with"])
    return rows, diff


def table(samples):
    """The printed comparison."""
    out = ["| metric | variant | n | median | p90 | min | max |", "|---|---|---|---|---|---|---|"]
    diffs = []
    for key, label in [("init_ms", "Init Duration, ms"), ("duration_ms", "Duration, ms"),
                       ("billed_ms", "Billed Duration, ms"), ("max_memory_mb", "Max Memory Used, MB"),
                       ("restore_ms", "Restore Duration, ms")]:
        rows, diff = summarize(samples, key)
        for v in VARIANTS:
            if v in rows:
                r = rows[v]
                out.append(f"| {label} | {v} | {r['n']} | {r['median']:.2f} | {r['p90']:.2f} | {r['min']:.2f} | {r['max']:.2f} |")
        if diff:
            diffs.append(f"{label}: with − without, difference of medians {diff[0]:+.2f} (95 % bootstrap interval {diff[1]:+.2f} to {diff[2]:+.2f})")
    return "\n".join(out + [""] + diffs)


def svg_strip_plot(samples, key="init_ms", label="Init Duration (ms)"):
    """A strip plot with a median bar per variant, axes labelled; plain SVG, no library."""
    groups = {v: [s[key] for s in samples if s["variant"] == v and s[key] is not None] for v in VARIANTS}
    values = [x for g in groups.values() for x in g] or [0.0]
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    pad = (hi - lo) * 0.1
    lo, hi = lo - pad, hi + pad
    width, height, left, bottom, top = 480, 320, 70, 40, 30
    y = lambda v: top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))  # noqa: E731
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height - bottom}" stroke="black"/>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="black"/>',
             f'<text x="15" y="{(height - bottom + top) / 2}" transform="rotate(-90 15 {(height - bottom + top) / 2})" text-anchor="middle">{label}</text>',
             f'<text x="{width / 2}" y="18" text-anchor="middle" font-weight="bold">{label.split(" (")[0]}, without and with the layer (bar: median)</text>']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.1f}</text>')
        parts.append(f'<line x1="{left - 3}" y1="{y(v):.1f}" x2="{left}" y2="{y(v):.1f}" stroke="black"/>')
    rng = random.Random(3)
    for i, v in enumerate(VARIANTS):
        cx = left + (width - left) * (i + 0.5) / len(VARIANTS)
        parts.append(f'<text x="{cx:.1f}" y="{height - 15}" text-anchor="middle">{v} the layer (n={len(groups[v])})</text>')
        for x in groups[v]:
            parts.append(f'<circle cx="{cx + rng.uniform(-40, 40):.1f}" cy="{y(x):.1f}" r="3" fill="{"#4477aa" if i == 0 else "#cc6677"}" fill-opacity="0.7"/>')
        if groups[v]:
            m = statistics.median(groups[v])
            parts.append(f'<line x1="{cx - 55:.1f}" y1="{y(m):.1f}" x2="{cx + 55:.1f}" y2="{y(m):.1f}" stroke="black" stroke-width="2"/>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


class Function:
    """The function under test, through botocore; every change waits until it is active."""

    def __init__(self, client, name, poll):
        self.client, self.name, self.poll = client, name, poll

    def configuration(self):
        return self.client.get_function_configuration(FunctionName=self.name)

    def wait_active(self, timeout_s=300):
        deadline = time.monotonic() + timeout_s
        delay = self.poll
        while True:
            config = self.configuration()
            status = config.get("LastUpdateStatus", "Successful")
            if status == "Successful" and config.get("State", "Active") == "Active":
                return config
            if status == "Failed":
                raise RuntimeError(f"update failed: {config.get('LastUpdateStatusReason', '')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"update not active after {timeout_s} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 5)

    def update(self, layers, variables):
        for attempt in range(20):
            try:
                self.client.update_function_configuration(
                    FunctionName=self.name, Layers=layers, Environment={"Variables": variables})
                break
            except self.client.exceptions.ResourceConflictException:
                # An update still in progress: wait for it, then try again.
                self.wait_active()
        return self.wait_active()

    def invoke_tail(self):
        for attempt in range(8):
            try:
                answer = self.client.invoke(FunctionName=self.name, LogType="Tail", Payload=b"{}")
                return base64.b64decode(answer.get("LogResult", "")).decode("utf-8", "replace")
            except self.client.exceptions.TooManyRequestsException:
                time.sleep(min(2 ** attempt * self.poll, 20))
        raise RuntimeError("invoke throttled 8 times in a row")


def run(args, client, out=sys.stdout, confirm=input):
    fn = Function(client, args.function, args.poll)
    original = fn.configuration()
    original_layers = [l["Arn"] for l in original.get("Layers", [])]
    original_vars = dict((original.get("Environment") or {}).get("Variables") or {})
    arch = (original.get("Architectures") or ["x86_64"])[0]
    invocations = 2 * args.rounds
    print(f"{args.function} ({arch}, {original.get('MemorySize', '?')} MB): {args.rounds} rounds, "
          f"{invocations} cold-start invocations and {invocations + 1} configuration updates, "
          f"billed as usual; its layers and environment are restored at the end.", file=out)
    if not args.yes and confirm("Go ahead? [y/N] ").strip().lower() not in ("y", "yes"):
        print("nothing changed", file=out)
        return 1
    layer_arn = args.layer_arn
    if args.layer_dir:
        args.layer_zip = os.path.join(args.layer_dir, f"telemetry-relay-{'arm64' if arch == 'arm64' else 'x86_64'}.zip")
    if args.layer_zip:
        with open(args.layer_zip, "rb") as f:
            published = client.publish_layer_version(
                LayerName="telemetry-relay-compare-init", Content={"ZipFile": f.read()},
                CompatibleArchitectures=[arch], Description="published by compare-init")
        layer_arn = published["LayerVersionArn"]
        print(f"published {layer_arn}", file=out)
    without = [l for l in original_layers if l.split(":")[:-1] != layer_arn.split(":")[:-1]]
    with_layer = without + [layer_arn]
    samples = []
    restored = False

    def restore():
        nonlocal restored
        if not restored:
            restored = True
            fn.update(original_layers, original_vars)
            print("configuration restored", file=out)

    # Ctrl-C and SIGTERM end the run through the restore below, even when started with SIGINT
    # ignored (a background job of a non-interactive shell inherits that).
    def interrupt(*_):
        raise KeyboardInterrupt()

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for r in range(1, args.rounds + 1):
            for variant in VARIANTS:
                layers = with_layer if variant == "with" else without
                fn.update(layers, {**original_vars, NONCE: f"{r}-{variant}-{uuid.uuid4().hex[:8]}"})
                tail = fn.invoke_tail()
                sample = parse_report(tail)
                if sample is None:
                    print(f"round {r} {variant}: no REPORT line in the log tail", file=out)
                    continue
                sample.update(round=r, variant=variant)
                if sample["init_ms"] is None and sample["restore_ms"] is None:
                    print(f"round {r} {variant}: no Init Duration (not a cold start?)", file=out)
                samples.append(sample)
    finally:
        # A second Ctrl-C must not cut the restore short.
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        try:
            restore()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    os.makedirs(args.out, exist_ok=True)
    columns = ["round", "variant", "init_ms", "restore_ms", "duration_ms", "billed_ms", "max_memory_mb", "status", "relay_summary"]
    with open(os.path.join(args.out, "samples.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(samples)
    with open(os.path.join(args.out, "init-duration.svg"), "w") as f:
        f.write(svg_strip_plot(samples))
    print(table(samples), file=out)
    print(f"samples: {os.path.join(args.out, 'samples.csv')}; chart: {os.path.join(args.out, 'init-duration.svg')}", file=out)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--function", required=True)
    layer = parser.add_mutually_exclusive_group(required=True)
    layer.add_argument("--layer-arn")
    layer.add_argument("--layer-zip")
    layer.add_argument("--layer-dir")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--region")
    parser.add_argument("--out", default="target/compare-init")
    parser.add_argument("--yes", action="store_true", default=os.environ.get("YES") == "1")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between status reads")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    import botocore.session
    session = botocore.session.get_session()
    client = session.create_client("lambda", region_name=args.region or session.get_config_variable("region"))
    try:
        return run(args, client)
    except KeyboardInterrupt:
        print("interrupted; the configuration was restored", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - any failure is reported, after the restore
        print(f"compare-init failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
