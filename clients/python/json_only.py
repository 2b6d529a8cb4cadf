"""Writes a copy of an OpenAPI document whose request bodies offer JSON alone.

openapi-python-client 0.29.1 emits code that does not import (`Unset` undefined) for a request
body with two media types, such as the login's JSON and HTML-form flavours. A Python program
talks JSON, so its client is generated from this copy:

    python3 json_only.py openapi/public.json > public-json.json
"""

import json
import sys

doc = json.load(open(sys.argv[1]))
for item in doc["paths"].values():
    for op in item.values():
        content = op.get("requestBody", {}).get("content") if isinstance(op, dict) else None
        if content and "application/json" in content:
            for media in list(content):
                if media != "application/json":
                    del content[media]
json.dump(doc, sys.stdout, indent=2)
