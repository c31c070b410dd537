#!/usr/bin/env python3
"""Validate envoy/istio/wasmplugin.yaml against Istio's WasmPlugin CRD OpenAPI schema.

Usage: validate_crd.py --crd crd-all.gen.yaml [--manifest envoy/istio/wasmplugin.yaml]
       [--plugin-json OUT.json]

The CRD file is istio/istio `manifests/charts/base/files/crd-all.gen.yaml` (any recent release).
Unknown fields are rejected (like `kubectl apply --validate=strict`), except below
`x-kubernetes-preserve-unknown-fields` (pluginConfig). CEL `x-kubernetes-validations` rules are
not evaluated. With --plugin-json, the pluginConfig is written as the JSON string Istio hands to
the filter (so the filter's own parser can be run on it). Needs PyYAML and jsonschema.
"""

import argparse
import json
import os
import sys

import jsonschema
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


def strict(schema):
    """Copy of an OpenAPI v3 schema where objects with `properties` reject unknown keys."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if "nullable" in out:
        if out.pop("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--crd", required=True)
    p.add_argument("--manifest", default=os.path.join(HERE, "wasmplugin.yaml"))
    p.add_argument("--plugin-json")
    args = p.parse_args(argv)

    with open(args.crd) as f:
        crds = [d for d in yaml.safe_load_all(f) if d and d.get("kind") == "CustomResourceDefinition"]
    (crd,) = [c for c in crds if c["spec"]["names"]["kind"] == "WasmPlugin"]
    with open(args.manifest) as f:
        manifest = yaml.safe_load(f)

    api_version = manifest.get("apiVersion", "")
    group, _, version = api_version.partition("/")
    if group != crd["spec"]["group"]:
        print(f"apiVersion group {group!r} is not {crd['spec']['group']!r}", file=sys.stderr)
        return 1
    versions = {v["name"]: v for v in crd["spec"]["versions"] if v.get("served")}
    if version not in versions:
        print(f"version {version!r} not served (served: {sorted(versions)})", file=sys.stderr)
        return 1
    schema = strict(versions[version]["schema"]["openAPIV3Schema"])
    # metadata is validated by the API server itself, not by the CRD schema.
    # apiVersion and kind were checked above.
    schema["properties"]["metadata"] = {"type": "object"}
    schema["properties"]["apiVersion"] = {"type": "string"}
    schema["properties"]["kind"] = {"enum": [crd["spec"]["names"]["kind"]]}
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(manifest), key=lambda e: list(e.path))
    for e in errors:
        print(f"{'/'.join(str(x) for x in e.path) or '<root>'}: {e.message}", file=sys.stderr)
    if errors:
        return 1
    if args.plugin_json:
        with open(args.plugin_json, "w") as f:
            json.dump(manifest["spec"].get("pluginConfig", {}), f)
    print(f"ok: {args.manifest} is a valid {crd['spec']['names']['kind']} {api_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
