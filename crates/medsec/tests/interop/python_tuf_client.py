"""python-tuf (the TUF reference implementation) as a client of a repository made by `medsec repo`.

usage: python_tuf_client.py TRUSTED_ROOT METADATA_URL TARGETS_URL TARGET_PATH WORKDIR

Refreshes, downloads TARGET_PATH and prints its sha256 and the trusted versions as JSON.
Exits non-zero (with python-tuf's error) on any failure.
"""

import hashlib
import json
import os
import shutil
import sys

from tuf.ngclient import Updater


def main() -> None:
    trusted_root, metadata_url, targets_url, target_path, workdir = sys.argv[1:6]
    metadata_dir = os.path.join(workdir, "metadata")
    download_dir = os.path.join(workdir, "downloads")
    os.makedirs(metadata_dir, exist_ok=True)
    os.makedirs(download_dir, exist_ok=True)
    shutil.copyfile(trusted_root, os.path.join(metadata_dir, "root.json"))
    with open(trusted_root, "rb") as f:
        root_bytes = f.read()
    updater = Updater(metadata_dir, metadata_url, download_dir, targets_url, bootstrap=root_bytes)
    updater.refresh()
    info = updater.get_targetinfo(target_path)
    if info is None:
        sys.exit(f"python-tuf: target {target_path} not found")
    path = updater.download_target(info)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    ts = updater._trusted_set
    print(json.dumps({
        "sha256": digest,
        "root": ts.root.version,
        "timestamp": ts.timestamp.version,
        "snapshot": ts.snapshot.version,
        "targets": ts.targets.version,
        "custom": info.custom,
    }))


if __name__ == "__main__":
    main()
