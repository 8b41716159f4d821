"""Builds a TUF repository with python-tuf's Metadata API, for medsec's client to read.

usage: python_tuf_repo.py OUTDIR

Writes OUTDIR/metadata (consistent snapshots: N.root.json, timestamp.json, N.snapshot.json,
N.targets.json, N.delegated.json) and OUTDIR/targets (HASH.NAME). Root has two versions (the
second rotates the timestamp key); targets delegates "firmware/*" to role "delegated" (ECDSA key).
Prints the target paths and sha256 digests as JSON.
"""

import hashlib
import json
import os
import sys
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    DelegatedRole,
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer


def main() -> None:
    out = sys.argv[1]
    meta = os.path.join(out, "metadata")
    tdir = os.path.join(out, "targets")
    os.makedirs(meta, exist_ok=True)
    os.makedirs(os.path.join(tdir, "firmware"), exist_ok=True)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=7)
    signers = {role: CryptoSigner.generate_ed25519() for role in ["root", "targets", "snapshot", "timestamp"]}
    delegated_signer = CryptoSigner.generate_ecdsa()

    root = Metadata(Root(expires=expires))
    for role, signer in signers.items():
        root.signed.add_key(signer.public_key, role)
    root.sign(signers["root"])
    root.to_file(os.path.join(meta, "1.root.json"), JSONSerializer(compact=False))

    # Root v2 rotates the timestamp key, signed by the (unchanged) root key.
    new_ts = CryptoSigner.generate_ed25519()
    root.signed.revoke_key(signers["timestamp"].public_key.keyid, "timestamp")
    root.signed.add_key(new_ts.public_key, "timestamp")
    root.signed.version = 2
    signers["timestamp"] = new_ts
    root.signatures.clear()
    root.sign(signers["root"])
    root.to_file(os.path.join(meta, "2.root.json"), JSONSerializer(compact=False))

    artifacts = {
        "readme.txt": b"python-tuf made this repository\n",
        "firmware/monitor-2.0.0.img": os.urandom(300_000),
    }
    infos = {path: TargetFile.from_data(path, data, ["sha256", "sha512"]) for path, data in artifacts.items()}
    for path, data in artifacts.items():
        digest = infos[path].hashes["sha256"]
        head, _, name = path.rpartition("/")
        with open(os.path.join(tdir, head, f"{digest}.{name}"), "wb") as f:
            f.write(data)

    delegated = Metadata(Targets(expires=expires))
    delegated.signed.targets["firmware/monitor-2.0.0.img"] = infos["firmware/monitor-2.0.0.img"]
    delegated.signed.targets["firmware/monitor-2.0.0.img"].unrecognized_fields = {}
    delegated.sign(delegated_signer)
    delegated.to_file(os.path.join(meta, "1.delegated.json"), JSONSerializer(compact=False))

    targets = Metadata(Targets(expires=expires))
    targets.signed.targets["readme.txt"] = infos["readme.txt"]
    targets.signed.delegations = Delegations(
        keys={delegated_signer.public_key.keyid: delegated_signer.public_key},
        roles={
            "delegated": DelegatedRole(
                name="delegated",
                keyids=[delegated_signer.public_key.keyid],
                threshold=1,
                terminating=True,
                paths=["firmware/*"],
            )
        },
    )
    targets.sign(signers["targets"])
    targets.to_file(os.path.join(meta, "1.targets.json"), JSONSerializer(compact=False))

    snapshot = Metadata(Snapshot(expires=expires))
    snapshot.signed.meta["targets.json"] = MetaFile(version=1)
    snapshot.signed.meta["delegated.json"] = MetaFile(version=1)
    snapshot.sign(signers["snapshot"])
    snapshot.to_file(os.path.join(meta, "1.snapshot.json"), JSONSerializer(compact=False))

    with open(os.path.join(meta, "1.snapshot.json"), "rb") as f:
        snap_bytes = f.read()
    timestamp = Metadata(Timestamp(expires=expires))
    timestamp.signed.snapshot_meta = MetaFile(
        version=1, length=len(snap_bytes), hashes={"sha256": hashlib.sha256(snap_bytes).hexdigest()}
    )
    timestamp.sign(signers["timestamp"])
    timestamp.to_file(os.path.join(meta, "timestamp.json"), JSONSerializer(compact=False))

    print(json.dumps({path: infos[path].hashes["sha256"] for path in artifacts}))


if __name__ == "__main__":
    main()
