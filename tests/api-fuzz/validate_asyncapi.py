"""Validates the served AsyncAPI document against the AsyncAPI 3.0 JSON schema.

Usage: validate_asyncapi.py DOCUMENT_URL SCHEMA_PATH. The schema is @asyncapi/specs'
`schemas/3.0.0-without-$id.json` (self-contained, JSON Schema draft-07); the validator is
jsonschema_rs, which schemathesis brings. Exits 1 with every error listed.
"""

import json
import sys
import urllib.request

import jsonschema_rs


def main() -> int:
    url, schema_path = sys.argv[1], sys.argv[2]
    with urllib.request.urlopen(url, timeout=10) as response:
        content_type = response.headers.get("content-type", "")
        document = json.load(response)
    with open(schema_path, encoding="utf-8") as f:
        schema = json.load(f)
    validator = jsonschema_rs.Draft7Validator(schema)
    errors = list(validator.iter_errors(document))
    for error in errors:
        print(f"asyncapi: {error.message} at {'/'.join(map(str, error.instance_path))}")
    if not content_type.startswith("application/json"):
        print(f"asyncapi: served as {content_type!r}, not application/json")
        return 1
    if errors:
        return 1
    print(f"asyncapi: {url} is a valid AsyncAPI {document['asyncapi']} document")
    return 0


if __name__ == "__main__":
    sys.exit(main())
