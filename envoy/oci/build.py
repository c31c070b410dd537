#!/usr/bin/env python3
"""Package a proxy-wasm module as an OCI image layout, "compat" variant, without docker.

Istio's agent (pkg/wasm/imagefetcher.go) accepts an OCI image manifest whose last layer is an
`application/vnd.oci.image.layer.v1.tar+gzip` archive holding `plugin.wasm`. This script writes
exactly that as an OCI image layout directory (oci-layout, index.json, blobs/sha256/...), which
`oras cp --from-oci-layout` or `skopeo copy oci:...` can push to any registry.

The output is deterministic: the same module and tag give the same bytes (PAX tar with fixed
metadata, gzip with mtime 0, JSON with sorted keys and no whitespace), hence the same manifest
digest. That digest (hex part) is what a WasmPlugin pins in `spec.sha256` for an `oci://` URL.

Usage: build.py --wasm PATH --out DIR --tag TAG
Prints the manifest digest (`sha256:<hex>`) on stdout.

Python 3 standard library only. This script never pushes anything and never deletes a directory
it did not create: an existing non-empty --out must already be an OCI layout, and its blobs and
index are replaced.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import sys
import tarfile

WASM_MAGIC = b"\0asm"
MEMBER_NAME = "plugin.wasm"

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ANNOTATION_VARIANT = "module.wasm.image/variant"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


class BuildError(Exception):
    """A refusal with a message for the user."""


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of data."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value) -> bytes:
    """Deterministic JSON bytes (sorted keys, no insignificant whitespace)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def layer_tar(module: bytes) -> bytes:
    """An uncompressed PAX tar with the single member plugin.wasm (0444, mtime 0, owner 0:0)."""
    info = tarfile.TarInfo(MEMBER_NAME)
    info.size = len(module)
    info.mode = 0o444
    info.mtime = 0
    info.uid = 0
    info.gid = 0
    info.uname = ""
    info.gname = ""
    info.type = tarfile.REGTYPE
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(module))
    return buf.getvalue()


def gzip_bytes(data: bytes) -> bytes:
    """gzip with mtime 0 and no file name in the header, so the output is reproducible."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def descriptor(media_type: str, data: bytes, annotations=None) -> dict:
    """An OCI content descriptor for data."""
    d = {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data)}
    if annotations:
        d["annotations"] = annotations
    return d


def image_blobs(module: bytes, tag: str):
    """Return (blobs, manifest_descriptor, index_bytes) for module tagged tag.

    blobs maps `sha256:<hex>` to bytes (layer, config, manifest).
    """
    if not module.startswith(WASM_MAGIC):
        raise BuildError("input is not a WebAssembly module (missing \\0asm magic)")
    if not tag or "/" in tag or tag.strip() != tag:
        raise BuildError(f"invalid tag {tag!r}")

    tar_bytes = layer_tar(module)
    layer = gzip_bytes(tar_bytes)
    config = canonical_json(
        {
            "architecture": "wasm",
            "os": "wasip1",
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar_bytes)]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": descriptor(MEDIA_CONFIG, config),
            "layers": [descriptor(MEDIA_LAYER, layer)],
            "annotations": {ANNOTATION_VARIANT: "compat"},
        }
    )
    manifest_desc = descriptor(MEDIA_MANIFEST, manifest, {ANNOTATION_REF_NAME: tag})
    index = canonical_json({"schemaVersion": 2, "manifests": [manifest_desc]})
    blobs = {sha256_digest(b): b for b in (layer, config, manifest)}
    return blobs, manifest_desc, index


def write_file(path: str, data: bytes) -> None:
    """Write data to path through a temporary file and a rename."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_layout(out: str, blobs: dict, index: bytes) -> None:
    """Write an OCI image layout into out (created if missing)."""
    if os.path.exists(out):
        if not os.path.isdir(out):
            raise BuildError(f"{out}: exists and is not a directory")
        if os.listdir(out) and not os.path.isfile(os.path.join(out, "oci-layout")):
            raise BuildError(f"{out}: not empty and not an OCI layout; refusing to write into it")
    blob_dir = os.path.join(out, "blobs", "sha256")
    os.makedirs(blob_dir, exist_ok=True)
    # Drop blobs of an earlier build so the layout holds exactly this image.
    for name in os.listdir(blob_dir):
        if name not in {d.split(":", 1)[1] for d in blobs}:
            os.remove(os.path.join(blob_dir, name))
    for digest, data in sorted(blobs.items()):
        write_file(os.path.join(blob_dir, digest.split(":", 1)[1]), data)
    write_file(os.path.join(out, "oci-layout"), canonical_json({"imageLayoutVersion": "1.0.0"}))
    write_file(os.path.join(out, "index.json"), index)


def build(wasm_path: str, out: str, tag: str) -> str:
    """Build the layout; return the manifest digest."""
    with open(wasm_path, "rb") as f:
        module = f.read()
    blobs, manifest_desc, index = image_blobs(module, tag)
    write_layout(out, blobs, index)
    return manifest_desc["digest"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wasm", required=True, help="the proxy-wasm module (kproxy_filter.wasm)")
    p.add_argument("--out", required=True, help="OCI image layout directory to write")
    p.add_argument("--tag", required=True, help="tag recorded as org.opencontainers.image.ref.name")
    args = p.parse_args(argv)
    try:
        digest = build(args.wasm, args.out, args.tag)
    except (BuildError, OSError) as e:
        print(f"build.py: error: {e}", file=sys.stderr)
        return 1
    print(digest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
