#!/usr/bin/env python3
"""Self-tests for build.py and check.py (unittest, standard library only).

Run: python3 envoy/oci/test_oci.py
Uses $FILTER_WASM when that file exists (the real kproxy_filter.wasm), else a minimal module.
Every negative case keeps the layout otherwise consistent (digests re-computed after the edit),
so each rejection is caused by the one defect under test.
"""

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # keep envoy/oci free of __pycache__

import build  # noqa: E402
import check  # noqa: E402

# The smallest valid module: magic + version 1.
MINIMAL_WASM = b"\0asm\x01\0\0\0"


def module_bytes() -> bytes:
    path = os.environ.get("FILTER_WASM", "")
    if path and os.path.isfile(path):
        with open(path, "rb") as f:
            return f.read()
    return MINIMAL_WASM


def tree_bytes(root: str) -> dict:
    """Relative path -> bytes for every file below root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


class Fixture(unittest.TestCase):
    """A temporary directory with a module file and a freshly built layout."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="kproxy-oci-test-")
        self.addCleanup(shutil.rmtree, self.tmp)
        self.module = module_bytes()
        self.wasm = os.path.join(self.tmp, "kproxy_filter.wasm")
        with open(self.wasm, "wb") as f:
            f.write(self.module)
        self.layout = os.path.join(self.tmp, "layout")
        self.digest = build.build(self.wasm, self.layout, "0.1.0")

    # --- helpers -------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> str:
        return os.path.join(self.layout, "blobs", "sha256", digest.split(":", 1)[1])

    def put_blob(self, data: bytes) -> dict:
        digest = build.sha256_digest(data)
        with open(self.blob_path(digest), "wb") as f:
            f.write(data)
        return {"digest": digest, "size": len(data)}

    def index(self) -> dict:
        with open(os.path.join(self.layout, "index.json"), "rb") as f:
            return json.load(f)

    def manifest(self) -> dict:
        with open(self.blob_path(self.index()["manifests"][0]["digest"]), "rb") as f:
            return json.load(f)

    def replace_manifest(self, manifest: dict, descriptor_media_type=None) -> None:
        """Store manifest as a new blob and point index.json at it (old blob removed)."""
        index = self.index()
        old = index["manifests"][0]
        os.remove(self.blob_path(old["digest"]))
        ref = self.put_blob(build.canonical_json(manifest))
        old.update(ref)
        if descriptor_media_type:
            old["mediaType"] = descriptor_media_type
        with open(os.path.join(self.layout, "index.json"), "wb") as f:
            f.write(build.canonical_json(index))

    def replace_layer(self, layer: bytes, tar_bytes: bytes) -> None:
        """Swap the single layer (and config diff_ids) for the given bytes, keeping digests valid."""
        manifest = self.manifest()
        os.remove(self.blob_path(manifest["layers"][0]["digest"]))
        os.remove(self.blob_path(manifest["config"]["digest"]))
        manifest["layers"][0].update(self.put_blob(layer))
        config = {
            "architecture": "wasm",
            "os": "wasip1",
            "rootfs": {"type": "layers", "diff_ids": [build.sha256_digest(tar_bytes)]},
        }
        manifest["config"].update(self.put_blob(build.canonical_json(config)))
        self.replace_manifest(manifest)

    def assert_rejected(self, fragment: str, wasm=None) -> None:
        with self.assertRaises(check.CheckError) as ctx:
            check.check(self.layout, "0.1.0", wasm)
        self.assertIn(fragment, str(ctx.exception))


class GoodImage(Fixture):
    def test_good_image_passes_and_returns_the_module(self):
        summary = check.check(self.layout, "0.1.0", self.wasm)
        self.assertIn(self.digest, summary)
        self.assertIn(f"plugin.wasm {len(self.module)} bytes", summary)

    def test_layout_has_the_istio_compat_shape(self):
        index = self.index()
        self.assertEqual(index["schemaVersion"], 2)
        (desc,) = index["manifests"]
        self.assertEqual(desc["mediaType"], build.MEDIA_MANIFEST)
        self.assertEqual(desc["annotations"], {build.ANNOTATION_REF_NAME: "0.1.0"})
        self.assertEqual(desc["digest"], self.digest)
        manifest = self.manifest()
        self.assertEqual(manifest["mediaType"], build.MEDIA_MANIFEST)
        self.assertEqual(manifest["annotations"], {"module.wasm.image/variant": "compat"})
        self.assertEqual(manifest["config"]["mediaType"], build.MEDIA_CONFIG)
        self.assertEqual([l["mediaType"] for l in manifest["layers"]], [build.MEDIA_LAYER])
        with open(self.blob_path(manifest["config"]["digest"]), "rb") as f:
            config = json.load(f)
        self.assertEqual((config["architecture"], config["os"]), ("wasm", "wasip1"))
        with open(os.path.join(self.layout, "oci-layout"), "rb") as f:
            self.assertEqual(json.load(f), {"imageLayoutVersion": "1.0.0"})

    def test_layer_is_one_pax_member_with_fixed_metadata(self):
        with open(self.blob_path(self.manifest()["layers"][0]["digest"]), "rb") as f:
            layer = f.read()
        self.assertEqual(layer[4:8], b"\0\0\0\0", "gzip mtime must be 0")
        tar_bytes = gzip.decompress(layer)
        self.assertEqual(tar_bytes[257:265], b"ustar\x0000", "POSIX (ustar/PAX) header expected")
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            (member,) = tar.getmembers()
            self.assertEqual(
                (member.name, member.mode, member.mtime, member.uid, member.gid, member.isreg()),
                ("plugin.wasm", 0o444, 0, 0, 0, True),
            )
            self.assertEqual(tar.extractfile(member).read(), self.module)

    def test_two_builds_are_byte_identical(self):
        other = os.path.join(self.tmp, "again")
        self.assertEqual(build.build(self.wasm, other, "0.1.0"), self.digest)
        self.assertEqual(tree_bytes(other), tree_bytes(self.layout))

    def test_rebuild_into_the_same_layout_drops_stale_blobs(self):
        with open(self.wasm, "ab") as f:
            f.write(b"\0")  # a custom-section-free trailing byte is fine for packaging
        new_digest = build.build(self.wasm, self.layout, "0.1.0")
        self.assertNotEqual(new_digest, self.digest)
        self.assertEqual(len(os.listdir(os.path.join(self.layout, "blobs", "sha256"))), 3)
        check.check(self.layout, "0.1.0", self.wasm)

    def test_cli_prints_the_manifest_digest_and_check_exits_zero(self):
        out = os.path.join(self.tmp, "cli")
        run = subprocess.run(
            [sys.executable, os.path.join(HERE, "build.py"), "--wasm", self.wasm, "--out", out, "--tag", "0.1.0"],
            capture_output=True,
            text=True,
        )
        self.assertEqual((run.returncode, run.stdout.strip()), (0, self.digest))
        run = subprocess.run(
            [sys.executable, os.path.join(HERE, "check.py"), "--layout", out, "--wasm", self.wasm],
            capture_output=True,
            text=True,
        )
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertTrue(run.stdout.startswith("ok: " + self.digest))


class Rejections(Fixture):
    def test_non_wasm_input_is_refused_by_build(self):
        bad = os.path.join(self.tmp, "not.wasm")
        with open(bad, "wb") as f:
            f.write(b"\x7fELF\x02\x01\x01\0")
        with self.assertRaises(build.BuildError) as ctx:
            build.build(bad, os.path.join(self.tmp, "out"), "0.1.0")
        self.assertIn("missing \\0asm magic", str(ctx.exception))
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out")))
        run = subprocess.run(
            [sys.executable, os.path.join(HERE, "build.py"), "--wasm", bad, "--out", os.path.join(self.tmp, "o"), "--tag", "t"],
            capture_output=True,
            text=True,
        )
        self.assertEqual((run.returncode, run.stdout), (1, ""))
        self.assertIn("not a WebAssembly module", run.stderr)

    def test_build_refuses_a_non_layout_directory(self):
        victim = os.path.join(self.tmp, "victim")
        os.makedirs(victim)
        with open(os.path.join(victim, "keep.txt"), "w") as f:
            f.write("x")
        with self.assertRaises(build.BuildError):
            build.build(self.wasm, victim, "0.1.0")
        self.assertEqual(os.listdir(victim), ["keep.txt"])

    def test_image_whose_plugin_is_not_wasm_is_rejected(self):
        tar_bytes = build.layer_tar(b"#!/bin/sh\necho not wasm\n")
        self.replace_layer(build.gzip_bytes(tar_bytes), tar_bytes)
        self.assert_rejected("lacks the wasm magic number")

    def test_corrupted_layer_blob_is_rejected(self):
        path = self.blob_path(self.manifest()["layers"][0]["digest"])
        with open(path, "r+b") as f:
            f.seek(20)
            byte = f.read(1)
            f.seek(20)
            f.write(bytes([byte[0] ^ 0xFF]))
        self.assert_rejected("content has sha256")

    def test_blob_with_wrong_size_in_descriptor_is_rejected(self):
        manifest = self.manifest()
        manifest["layers"][0]["size"] += 1
        self.replace_manifest(manifest)
        self.assert_rejected("descriptor says")

    def test_missing_blob_is_rejected(self):
        os.remove(self.blob_path(self.manifest()["config"]["digest"]))
        self.assert_rejected("config: blob")

    def test_wrong_layer_media_type_is_rejected(self):
        manifest = self.manifest()
        manifest["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
        self.replace_manifest(manifest)
        self.assert_rejected("layers[0]: media type 'application/vnd.oci.image.layer.v1.tar'")

    def test_docker_layer_under_an_oci_manifest_is_rejected(self):
        manifest = self.manifest()
        manifest["layers"][0]["mediaType"] = check.DOCKER_LAYER
        self.replace_manifest(manifest)
        self.assert_rejected("expected application/vnd.oci.image.layer.v1.tar+gzip")

    def test_wrong_manifest_media_type_is_rejected(self):
        manifest = self.manifest()
        manifest["mediaType"] = "application/vnd.oci.artifact.manifest.v1+json"
        self.replace_manifest(manifest, "application/vnd.oci.artifact.manifest.v1+json")
        self.assert_rejected("manifest: media type")

    def test_archive_without_plugin_wasm_is_rejected(self):
        info = tarfile.TarInfo("module.wasm")
        info.size = len(self.module)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(info, io.BytesIO(self.module))
        self.replace_layer(build.gzip_bytes(buf.getvalue()), buf.getvalue())
        self.assert_rejected("plugin.wasm not found in the archive")

    def test_dot_slash_member_name_is_accepted_like_istio(self):
        info = tarfile.TarInfo("./plugin.wasm")
        info.size = len(self.module)
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(info, io.BytesIO(self.module))
        self.replace_layer(build.gzip_bytes(buf.getvalue()), buf.getvalue())
        check.check(self.layout, "0.1.0", self.wasm)

    def test_stale_diff_id_is_rejected(self):
        manifest = self.manifest()
        config_path = self.blob_path(manifest["config"]["digest"])
        with open(config_path, "rb") as f:
            config = json.load(f)
        os.remove(config_path)
        config["rootfs"]["diff_ids"] = ["sha256:" + "0" * 64]
        manifest["config"].update(self.put_blob(build.canonical_json(config)))
        self.replace_manifest(manifest)
        self.assert_rejected("rootfs.diff_ids[-1]")

    def test_module_different_from_expected_file_is_rejected(self):
        other = os.path.join(self.tmp, "other.wasm")
        with open(other, "wb") as f:
            f.write(self.module + b"\0")
        self.assert_rejected("differs from", wasm=other)

    def test_unknown_tag_is_rejected(self):
        with self.assertRaises(check.CheckError) as ctx:
            check.check(self.layout, "9.9.9", None)
        self.assertIn("0 manifests tagged '9.9.9'", str(ctx.exception))

    def test_cli_exits_non_zero_with_the_message(self):
        os.remove(os.path.join(self.layout, "oci-layout"))
        run = subprocess.run(
            [sys.executable, os.path.join(HERE, "check.py"), "--layout", self.layout],
            capture_output=True,
            text=True,
        )
        self.assertEqual(run.returncode, 1)
        self.assertIn("check.py: error: oci-layout:", run.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
