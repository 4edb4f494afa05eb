"""Validates EMF documents (one JSON object per line of a file) with the `jsonschema` package
against emf.schema.json, then checks what a schema cannot: every dimension a directive names
is a string member of the root, every metric it names is a number (or an array of at most 100
numbers) at the root, and a document is under 1 MB. Exit status 0 when all pass."""
import json
import pathlib
import sys

import jsonschema

schema = json.loads((pathlib.Path(__file__).parent / "emf.schema.json").read_text())
validator = jsonschema.Draft7Validator(schema)
failures = 0
lines = [l for l in pathlib.Path(sys.argv[1]).read_text().splitlines() if l.strip()]
for n, line in enumerate(lines, 1):
    problems = []
    if len(line.encode()) > 1024 * 1024:
        problems.append("larger than 1 MB")
    doc = json.loads(line)
    problems += [e.message for e in validator.iter_errors(doc)]
    for directive in doc.get("_aws", {}).get("CloudWatchMetrics", []):
        for dimension_set in directive.get("Dimensions", []):
            for name in dimension_set:
                if not isinstance(doc.get(name), str):
                    problems.append(f"dimension {name!r} is not a string member of the root")
        for metric in directive.get("Metrics", []):
            value = doc.get(metric.get("Name"))
            numbers = value if isinstance(value, list) else [value]
            if len(numbers) > 100 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                problems.append(f"metric {metric.get('Name')!r} has no numeric value at the root")
    for problem in problems:
        failures += 1
        print(f"document {n}: {problem}: {line[:200]}")
print(f"{len(lines)} EMF documents checked, {failures} problems")
sys.exit(1 if failures or not lines else 0)
