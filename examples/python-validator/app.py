"""A Weir plugin in Python: validates JSON request bodies against a small
schema and answers 422 with every error, so bad requests never reach the
upstream.

Config (the plugin's JSON file):

    {"methods": ["POST", "PUT"], "path_prefix": "/orders",
     "schema": {"type": "object", "required": ["item", "quantity"],
                "properties": {"item": {"type": "string", "minLength": 1},
                               "quantity": {"type": "integer", "minimum": 1}}}}

The schema language is a small subset of JSON Schema: type, required,
properties, additionalProperties (false), items, enum, minimum, maximum,
minLength, maxLength.

Every request it checks is counted by outcome (`valid`, `invalid`,
`not_json`, `too_large`) in the counter `checked`, defined through the
`metrics` capability: the gateway's `/metrics` shows it as
`weir_plugin_python_validator_checked_total` for the plugin file
`45-python-validator.wasm`.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import log, metrics, types

TYPES = {
    "object": dict,
    "array": list,
    "string": str,
    "boolean": bool,
    "null": type(None),
}


def type_ok(value, expected):
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, TYPES[expected])


def validate(value, schema, path, errors):
    """Append (path, message) for every way `value` breaks `schema`."""
    expected = schema.get("type")
    if expected is not None and not type_ok(value, expected):
        errors.append((path or "/", f"must be of type {expected}"))
        return
    if "enum" in schema and value not in schema["enum"]:
        errors.append((path or "/", f"must be one of {json.dumps(schema['enum'])}"))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append((path or "/", f"must be >= {schema['minimum']}"))
        if "maximum" in schema and value > schema["maximum"]:
            errors.append((path or "/", f"must be <= {schema['maximum']}"))
    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            errors.append((path or "/", f"must be at least {schema['minLength']} characters"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            errors.append((path or "/", f"must be at most {schema['maxLength']} characters"))
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                errors.append((f"{path}/{name}", "is required"))
        properties = schema.get("properties", {})
        for name, child in value.items():
            if name in properties:
                validate(child, properties[name], f"{path}/{name}", errors)
            elif schema.get("additionalProperties") is False:
                errors.append((f"{path}/{name}", "is not allowed"))
    if isinstance(value, list) and "items" in schema:
        for i, child in enumerate(value):
            validate(child, schema["items"], f"{path}/{i}", errors)


# Set by `init`. componentize-py calls each export on a new `Handler`, so
# state lives at module level (one copy per plugin instance).
SETTINGS = {}


def count(outcome):
    SETTINGS["checked"].add([outcome], 1)


def reply(status, body):
    data = json.dumps(body).encode()
    return types.Action_Respond(types.Reply(status, [("content-type", "application/json")], data))


class Handler(exports.Handler):
    def init(self, config: str) -> types.Hooks:
        try:
            settings = json.loads(config or "{}")
        except ValueError as e:
            raise Err(f"invalid config: {e}")
        if not isinstance(settings, dict) or not isinstance(settings.get("schema"), dict):
            raise Err("invalid config: `schema` (an object) is required")
        unknown = set(settings) - {"schema", "methods", "path_prefix"}
        if unknown:
            raise Err(f"invalid config: unknown field `{sorted(unknown)[0]}`")
        SETTINGS["schema"] = settings["schema"]
        SETTINGS["methods"] = [m.upper() for m in settings.get("methods", ["POST", "PUT", "PATCH"])]
        SETTINGS["prefix"] = settings.get("path_prefix", "/")
        # Every instance defines the same counter; the gateway keeps one.
        SETTINGS["checked"] = metrics.Counter.define(
            "checked", "Requests checked, by outcome (valid, invalid, not_json, too_large)", ["outcome"])
        # Only `on_request` does anything: the gateway skips `on_response`.
        return types.Hooks.ON_REQUEST

    def on_request(self, req: types.Request) -> types.Action:
        if req.method() not in SETTINGS["methods"] or not req.path_with_query().startswith(SETTINGS["prefix"]):
            return types.Action_Continue()
        try:
            body = req.body()
        except Err:
            count("too_large")
            return reply(413, {"error": "body too large to validate"})
        try:
            document = json.loads(body)
        except ValueError as e:
            count("not_json")
            return reply(422, {"error": "validation failed", "errors": [{"path": "/", "message": f"invalid JSON: {e}"}]})
        errors = []
        validate(document, SETTINGS["schema"], "", errors)
        if errors:
            count("invalid")
            log.log(log.Level.INFO, f"refused a request with {len(errors)} validation error(s)")
            return reply(422, {"error": "validation failed",
                               "errors": [{"path": p, "message": m} for p, m in errors]})
        count("valid")
        return types.Action_Continue()

    def on_response(self, req: types.Request, resp: types.Response) -> types.Action:
        # Not declared in `init`, so never called; the world still requires it.
        return types.Action_Continue()
