#!/usr/bin/env python3
"""Assemble a single-layer OCI image archive from local files, without Docker or a registry.

    oci-image.py --name REF --out FILE.tar [--entrypoint JSON] [--cmd JSON] [--env K=V ...]
                 [--busybox PATH] [--file SRC:DEST[:MODE] ...] [--dir DEST ...]
                 [--text DEST:CONTENT ...] [--tree SRC_DIR:DEST ...] [--with-libs DEST ...]

The archive is an OCI image layout (oci-layout, index.json, blobs/sha256/...) whose index
annotates the manifest with `io.containerd.image.name` = REF, so `ctr images import` files it
under exactly that name. The layer is an uncompressed, reproducible tar (owner root, mtime 0,
sorted entries): the same inputs give the same image digest.

--tree copies a directory's regular files (recursively, symlinks followed) under DEST.
--busybox installs a static busybox at /bin/busybox with a symlink for each of its applets
(in /bin) that no other file provides. --with-libs DEST copies the shared libraries and the
dynamic loader that the ELF file at DEST needs (as `ldd` reports them) to the same paths.
"""

import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--entrypoint", type=json.loads)
    p.add_argument("--cmd", type=json.loads)
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--busybox")
    p.add_argument("--file", action="append", default=[])
    p.add_argument("--dir", action="append", default=[])
    p.add_argument("--text", action="append", default=[])
    p.add_argument("--tree", action="append", default=[])
    p.add_argument("--with-libs", action="append", default=[])
    return p.parse_args(argv)


class Layer:
    """Entries of the one layer, keyed by path (no leading slash)."""

    def __init__(self):
        self.entries = {}

    def _parents(self, path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            self.entries.setdefault(d, ("dir", 0o755, None))

    def add_dir(self, dest, mode=0o755):
        path = dest.strip("/")
        self._parents(path)
        self.entries[path] = ("dir", mode, None)

    def add_file(self, src, dest, mode=None):
        path = dest.strip("/")
        self._parents(path)
        if mode is None:
            mode = os.stat(src).st_mode & 0o7777
        self.entries[path] = ("file", mode, os.path.realpath(src))

    def add_text(self, dest, content, mode=0o644):
        path = dest.strip("/")
        self._parents(path)
        self.entries[path] = ("text", mode, content.encode())

    def add_symlink(self, dest, target):
        path = dest.strip("/")
        self._parents(path)
        self.entries.setdefault(path, ("symlink", 0o777, target))

    def write(self, out):
        """Write the tar to the binary stream `out`; returns (sha256 hex, size)."""
        digest = hashlib.sha256()
        size = 0

        class Tee(io.RawIOBase):
            def writable(self):
                return True

            def write(self, b):
                nonlocal size
                digest.update(b)
                size += len(b)
                out.write(b)
                return len(b)

        with tarfile.open(fileobj=Tee(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.entries):
                kind, mode, data = self.entries[path]
                info = tarfile.TarInfo(path)
                info.mode, info.mtime, info.uid, info.gid = mode, 0, 0, 0
                info.uname = info.gname = "root"
                if kind == "dir":
                    info.type = tarfile.DIRTYPE
                    tar.addfile(info)
                elif kind == "symlink":
                    info.type = tarfile.SYMTYPE
                    info.linkname = data
                    tar.addfile(info)
                elif kind == "text":
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                else:
                    info.size = os.path.getsize(data)
                    with open(data, "rb") as f:
                        tar.addfile(info, f)
        return digest.hexdigest(), size


def busybox_applets(busybox):
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def shared_libs(elf):
    """Absolute paths of the libraries (and loader) an ELF file needs, per ldd."""
    res = subprocess.run(["ldd", elf], capture_output=True, text=True)
    if res.returncode != 0 or "not a dynamic executable" in res.stdout + res.stderr:
        return []
    return sorted(set(re.findall(r"(/\S+)\s+\(0x", res.stdout)))


def blob(blobs, data):
    h = hashlib.sha256(data).hexdigest()
    blobs.append((h, data))
    return {"digest": f"sha256:{h}", "size": len(data)}


def main(argv):
    a = parse_args(argv)
    layer = Layer()
    for d in a.dir:
        layer.add_dir(d)
    for spec in a.file:
        parts = spec.split(":")
        mode = int(parts[2], 8) if len(parts) > 2 else None
        layer.add_file(parts[0], parts[1], mode)
    for spec in a.text:
        dest, content = spec.split(":", 1)
        layer.add_text(dest, content.replace("\\n", "\n"))
    for spec in a.tree:
        src, dest = spec.split(":", 1)
        for dirpath, _, files in os.walk(src):
            for f in files:
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, src)
                layer.add_file(path, os.path.join(dest, rel), 0o755 if os.access(path, os.X_OK) else 0o644)
    for dest in a.with_libs:
        src = layer.entries[dest.strip("/")][2]
        for lib in shared_libs(src):
            layer.add_file(lib, lib, 0o755)
    if a.busybox:
        layer.add_file(a.busybox, "/bin/busybox", 0o755)
        for applet in busybox_applets(a.busybox):
            layer.add_symlink(applet, "/bin/busybox")

    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    layer_path = a.out + ".layer"
    with open(layer_path, "wb") as f:
        layer_hash, layer_size = layer.write(f)

    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"] + a.env
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Env": env},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_hash}"]},
        "history": [{"created_by": "test/harness/node/oci-image.py", "comment": a.name}],
    }
    if a.entrypoint is not None:
        config["config"]["Entrypoint"] = a.entrypoint
    if a.cmd is not None:
        config["config"]["Cmd"] = a.cmd
    blobs = []
    config_desc = blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": f"sha256:{layer_hash}",
                "size": layer_size,
            }
        ],
    }
    manifest_desc = blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    tag = a.name.rsplit(":", 1)[1] if ":" in a.name.rsplit("/", 1)[-1] else "latest"
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "platform": {"architecture": "amd64", "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": a.name,
                    "org.opencontainers.image.ref.name": tag,
                },
            }
        ],
    }

    tmp = a.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:

        def add_bytes(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))

        add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add_bytes("index.json", json.dumps(index, sort_keys=True).encode())
        info = tarfile.TarInfo(f"blobs/sha256/{layer_hash}")
        info.size, info.mode, info.mtime = layer_size, 0o644, 0
        with open(layer_path, "rb") as f:
            tar.addfile(info, f)
        for h, data in blobs:
            add_bytes(f"blobs/sha256/{h}", data)
    os.remove(layer_path)
    os.replace(tmp, a.out)
    print(f"{a.name} sha256:{manifest_desc['digest'].split(':')[1][:12]} {layer_size >> 20} MiB", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
