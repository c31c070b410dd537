#!/usr/bin/env python3
"""Verify an OCI image layout of a proxy-wasm module the way Istio's agent would read it.

Mirrors istio/istio pkg/wasm/imagefetcher.go (compat variant) and cache.go:
index.json -> the tagged manifest -> its LAST layer, which must be
`application/vnd.oci.image.layer.v1.tar+gzip` (or the Docker equivalent under a Docker
manifest) -> the first tar member whose basename is `plugin.wasm` -> wasm magic `\\0asm`.

On top of that it checks what a registry or `skopeo`/`oras` would choke on: the layout marker,
every descriptor's media type, every referenced blob's sha256 and size, every stored blob's name
against its content, the config's `rootfs.diff_ids` against the uncompressed layer, and, with
--wasm, that the extracted module is byte-identical to the given file.

Usage: check.py --layout DIR [--tag TAG] [--wasm PATH]
Exit status 0 and one `ok:` line on success; 1 and one `check.py: error: ...` line naming the
first problem otherwise. Python 3 standard library only; reads, never writes.
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import posixpath
import re
import sys
import tarfile

WASM_MAGIC = b"\0asm"
MEMBER_NAME = "plugin.wasm"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

# Same ceiling as Istio's ISTIO_WASM_MAX_BINARY_SIZE_BYTES default.
MAX_MODULE_BYTES = 256 * 1024 * 1024
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class CheckError(Exception):
    """The first problem found, as a message for the user."""


def load_json(data: bytes, what: str):
    """Parse a JSON object or fail naming what."""
    try:
        value = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckError(f"{what}: not valid JSON: {e}") from None
    if not isinstance(value, dict):
        raise CheckError(f"{what}: expected a JSON object")
    return value


class Layout:
    """Read access to an OCI image layout directory with verified blob reads."""

    def __init__(self, root: str):
        self.root = root

    def read(self, rel: str) -> bytes:
        path = os.path.join(self.root, rel)
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError as e:
            raise CheckError(f"{rel}: {e.strerror}") from None

    def blob(self, desc, what: str, media_types) -> bytes:
        """The bytes of the blob desc points to, after checking media type, digest and size."""
        if not isinstance(desc, dict):
            raise CheckError(f"{what}: descriptor is not an object")
        media_type = desc.get("mediaType")
        if media_type not in media_types:
            expected = " or ".join(media_types)
            raise CheckError(f"{what}: media type {media_type!r}, expected {expected}")
        digest = desc.get("digest")
        if not isinstance(digest, str) or not DIGEST_RE.match(digest):
            raise CheckError(f"{what}: digest {digest!r} is not sha256:<64 lowercase hex>")
        size = desc.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise CheckError(f"{what}: size {size!r} is not a non-negative integer")
        rel = os.path.join("blobs", "sha256", digest.split(":", 1)[1])
        try:
            data = self.read(rel)
        except CheckError as e:
            raise CheckError(f"{what}: blob {e}") from None
        actual = "sha256:" + hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise CheckError(f"{what}: blob {rel} has digest {actual}, descriptor says {digest}")
        if len(data) != size:
            raise CheckError(f"{what}: blob {rel} is {len(data)} bytes, descriptor says {size}")
        return data

    def check_all_blobs(self) -> int:
        """Every file under blobs/sha256 must be named after its own sha256. Returns the count."""
        blob_dir = os.path.join(self.root, "blobs", "sha256")
        if not os.path.isdir(blob_dir):
            raise CheckError("blobs/sha256: missing")
        names = sorted(os.listdir(blob_dir))
        for name in names:
            data = self.read(os.path.join("blobs", "sha256", name))
            actual = hashlib.sha256(data).hexdigest()
            if actual != name:
                raise CheckError(f"blobs/sha256/{name}: content has sha256 {actual}")
        return len(names)


def select_manifest(index: dict, tag):
    """The manifest descriptor of index named tag (or the only one when tag is None)."""
    if index.get("schemaVersion") != 2:
        raise CheckError(f"index.json: schemaVersion {index.get('schemaVersion')!r}, expected 2")
    if "mediaType" in index and index["mediaType"] != MEDIA_INDEX:
        raise CheckError(f"index.json: mediaType {index['mediaType']!r}, expected {MEDIA_INDEX}")
    manifests = index.get("manifests")
    if not isinstance(manifests, list) or not manifests:
        raise CheckError("index.json: no manifests")
    if tag is None:
        if len(manifests) != 1:
            raise CheckError(f"index.json: {len(manifests)} manifests; pass --tag to choose one")
        return manifests[0]
    named = [
        m
        for m in manifests
        if isinstance(m, dict) and (m.get("annotations") or {}).get(ANNOTATION_REF_NAME) == tag
    ]
    if len(named) != 1:
        raise CheckError(f"index.json: {len(named)} manifests tagged {tag!r}, expected 1")
    return named[0]


def extract_plugin(layer: bytes) -> tuple:
    """Istio's extractWasmPluginBinary: (module bytes, uncompressed tar bytes)."""
    try:
        tar_bytes = gzip.decompress(layer)
    except (OSError, EOFError) as e:
        raise CheckError(f"layer: not gzip: {e}") from None
    try:
        with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as tar:
            for member in tar:
                if posixpath.basename(member.name) != MEMBER_NAME:
                    continue
                if not member.isreg():
                    raise CheckError(f"layer: {member.name} is not a regular file")
                if member.size > MAX_MODULE_BYTES:
                    raise CheckError(f"layer: {member.name} is larger than {MAX_MODULE_BYTES} bytes")
                module = tar.extractfile(member).read()
                return module, tar_bytes
    except tarfile.TarError as e:
        raise CheckError(f"layer: not a tar archive: {e}") from None
    raise CheckError(f"layer: {MEMBER_NAME} not found in the archive")


def check(root: str, tag=None, wasm=None) -> str:
    """Run every check; return a one-line summary or raise CheckError."""
    if not os.path.isdir(root):
        raise CheckError(f"{root}: not a directory")
    layout = Layout(root)
    marker = load_json(layout.read("oci-layout"), "oci-layout")
    if marker.get("imageLayoutVersion") != "1.0.0":
        raise CheckError(f"oci-layout: imageLayoutVersion {marker.get('imageLayoutVersion')!r}")
    blob_count = layout.check_all_blobs()

    index = load_json(layout.read("index.json"), "index.json")
    manifest_desc = select_manifest(index, tag)
    manifest_bytes = layout.blob(manifest_desc, "manifest", (MEDIA_MANIFEST, DOCKER_MANIFEST))
    manifest = load_json(manifest_bytes, "manifest")
    docker = manifest_desc["mediaType"] == DOCKER_MANIFEST
    if manifest.get("schemaVersion") != 2:
        raise CheckError(f"manifest: schemaVersion {manifest.get('schemaVersion')!r}, expected 2")
    if manifest.get("mediaType", manifest_desc["mediaType"]) != manifest_desc["mediaType"]:
        raise CheckError(
            f"manifest: mediaType {manifest.get('mediaType')!r} differs from the index "
            f"descriptor's {manifest_desc['mediaType']!r}"
        )

    config = load_json(
        layout.blob(manifest.get("config"), "config", (DOCKER_CONFIG,) if docker else (MEDIA_CONFIG,)),
        "config",
    )

    layers = manifest.get("layers")
    if not isinstance(layers, list) or not layers:
        raise CheckError("manifest: number of layers must be greater than zero")
    layer_media = DOCKER_LAYER if docker else MEDIA_LAYER
    layer_bytes = None
    for i, desc in enumerate(layers):
        # Every layer must be intact; only the last one is read by Istio.
        last = i == len(layers) - 1
        allowed = (layer_media,) if last else (desc.get("mediaType") if isinstance(desc, dict) else None,)
        layer_bytes = layout.blob(desc, f"layers[{i}]", allowed)

    module, tar_bytes = extract_plugin(layer_bytes)
    if not module.startswith(WASM_MAGIC):
        raise CheckError(f"layer: {MEMBER_NAME} lacks the wasm magic number (\\0asm)")

    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    if not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
        raise CheckError("config: rootfs.diff_ids must list one digest per layer")
    tar_digest = "sha256:" + hashlib.sha256(tar_bytes).hexdigest()
    if diff_ids[-1] != tar_digest:
        raise CheckError(f"config: rootfs.diff_ids[-1] is {diff_ids[-1]}, uncompressed layer is {tar_digest}")

    if wasm is not None:
        try:
            with open(wasm, "rb") as f:
                expected = f.read()
        except OSError as e:
            raise CheckError(f"{wasm}: {e.strerror}") from None
        if module != expected:
            raise CheckError(
                f"layer: {MEMBER_NAME} ({len(module)} bytes, sha256 "
                f"{hashlib.sha256(module).hexdigest()}) differs from {wasm} ({len(expected)} bytes, "
                f"sha256 {hashlib.sha256(expected).hexdigest()})"
            )

    return (
        f"ok: {manifest_desc['digest']} {MEMBER_NAME} {len(module)} bytes, "
        f"{blob_count} blobs verified"
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layout", required=True, help="OCI image layout directory")
    p.add_argument("--tag", help="org.opencontainers.image.ref.name to select (default: the only one)")
    p.add_argument("--wasm", help="module the image must contain byte for byte")
    args = p.parse_args(argv)
    try:
        print(check(args.layout, args.tag, args.wasm))
    except CheckError as e:
        print(f"check.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
