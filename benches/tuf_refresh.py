"""Refresh benchmark: medsec's TUF client against python-tuf 7 (the reference implementation), in
the same run, on the same repositories, over the same local HTTP server.

usage: .venv/bin/python benches/tuf_refresh.py [--runs N] [--sizes 1000,10000,100000] [--out FILE]

Repositories (made with python-tuf's Metadata API, Ed25519 keys, consistent snapshots, snapshot
entries with lengths): flat targets.json with 1k, 10k and 100k targets, and 100k targets in 256
TAP 15 hash bins. Each client process does what a device does: refresh, look one target up,
download it (a few bytes) unless present. "cold" starts from root.json only; "warm" repeats with
the metadata and target already stored (nothing changed on the server). Reported per case: median
wall time, peak RSS of the client process (wait4), bytes served to it.

Needs GNU time (apt-get install time). Build first: cargo build --release -p medsec-tuf-client
"""

import argparse
import hashlib
import http.server
import socket
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone

from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    Delegations,
    Metadata,
    MetaFile,
    Root,
    Snapshot,
    SuccinctRoles,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT_DIR = os.path.dirname(HERE)
MEDSEC = os.path.join(ROOT_DIR, "target", "release", "medsec-tuf-client")
LOOKUP = "firmware/target-000042.img"
COMPACT = JSONSerializer(compact=True)
TIME = "/usr/bin/time"  # GNU time (Debian package "time")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def write(md, path):
    md.to_file(path, COMPACT)
    return os.path.getsize(path)


def build_repo(out, count, bins_bits):
    meta = os.path.join(out, "metadata")
    tdir = os.path.join(out, "targets", "firmware")
    os.makedirs(meta)
    os.makedirs(tdir)
    expires = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=30)
    signers = {r: CryptoSigner.generate_ed25519() for r in ["root", "targets", "snapshot", "timestamp", "bins"]}
    root = Metadata(Root(expires=expires))
    for role in ["root", "targets", "snapshot", "timestamp"]:
        root.signed.add_key(signers[role].public_key, role)
    root.sign(signers["root"])
    write(root, os.path.join(meta, "1.root.json"))

    lookup_data = b"benchmark artifact\n"
    lookup_info = TargetFile.from_data(LOOKUP, lookup_data, ["sha256"])
    with open(os.path.join(tdir, f"{lookup_info.hashes['sha256']}.target-000042.img"), "wb") as f:
        f.write(lookup_data)
    infos = {}
    for i in range(count):
        path = f"firmware/target-{i:06d}.img"
        if path == LOOKUP:
            infos[path] = lookup_info
        else:
            digest = hashlib.sha256(path.encode()).hexdigest()
            infos[path] = TargetFile(length=1024 + i, hashes={"sha256": digest}, path=path)

    snapshot = Metadata(Snapshot(expires=expires))
    targets = Metadata(Targets(expires=expires))
    if bins_bits:
        succinct = SuccinctRoles([], 1, bins_bits, "bins")
        bins = {name: Metadata(Targets(expires=expires)) for name in succinct.get_roles()}
        for path, info in infos.items():
            bins[succinct.get_role_for_target(path)].signed.targets[path] = info
        for name, md in bins.items():
            md.sign(signers["bins"])
            n = write(md, os.path.join(meta, f"1.{name}.json"))
            snapshot.signed.meta[f"{name}.json"] = MetaFile(version=1, length=n)
        targets.signed.delegations = Delegations(
            keys={signers["bins"].public_key.keyid: signers["bins"].public_key},
            succinct_roles=succinct,
        )
        targets.signed.delegations.succinct_roles.keyids.append(signers["bins"].public_key.keyid)
    else:
        targets.signed.targets = infos
    targets.sign(signers["targets"])
    n = write(targets, os.path.join(meta, "1.targets.json"))
    snapshot.signed.meta["targets.json"] = MetaFile(version=1, length=n)
    snapshot.sign(signers["snapshot"])
    n = write(snapshot, os.path.join(meta, "1.snapshot.json"))
    with open(os.path.join(meta, "1.snapshot.json"), "rb") as f:
        snap = f.read()
    ts = Metadata(Timestamp(expires=expires))
    ts.signed.snapshot_meta = MetaFile(version=1, length=n, hashes={"sha256": hashlib.sha256(snap).hexdigest()})
    ts.sign(signers["timestamp"])
    write(ts, os.path.join(meta, "timestamp.json"))


class Counter:
    lock = threading.Lock()
    bytes = 0


def serve(directory):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=directory, **kw)

        def log_message(self, *a):
            pass

        def copyfile(self, source, outputfile):
            data = source.read()
            with Counter.lock:
                Counter.bytes += len(data)
            outputfile.write(data)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Nginx:
    """nginx serving a repository; bytes served are read from its access log."""

    def __init__(self, directory, work):
        port = free_port()
        self.log = os.path.join(work, "access.log")
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write(
                f"worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/error.log;\n"
                "events {}\n"
                f"http {{ log_format bytes '$body_bytes_sent'; access_log {self.log} bytes;\n"
                f"  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};\n"
                f"  uwsgi_temp_path {work}; scgi_temp_path {work};\n"
                f"  server {{ listen 127.0.0.1:{port}; root {directory}; }} }}\n"
            )
        self.proc = subprocess.Popen([NGINX, "-c", conf, "-p", work],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.server_address = ("127.0.0.1", port)
        for _ in range(100):
            try:
                socket.create_connection(self.server_address, timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        self.offset = 0

    def take_bytes(self):
        with open(self.log) as f:
            f.seek(self.offset)
            data = f.read()
            self.offset = f.tell()
        return sum(int(x) for x in data.split())

    def shutdown(self):
        self.proc.terminate()
        self.proc.wait()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER = None


def run(cmd):
    if SERVER is not None:
        SERVER.take_bytes()
    with Counter.lock:
        Counter.bytes = 0
    # GNU time reports the client's own peak RSS: a child forked from this (large) Python process
    # would carry the parent's RSS into its ru_maxrss.
    start = time.perf_counter()
    proc = subprocess.run([TIME, "-f", "%M", *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    err = proc.stderr.decode()
    if proc.returncode != 0:
        sys.exit(f"{cmd[0]} failed: {err}")
    with Counter.lock:
        fetched = Counter.bytes
    if SERVER is not None:
        fetched = SERVER.take_bytes()
    return elapsed, int(err.strip().splitlines()[-1]) * 1024, fetched


def client_cmd(kind, mdir, base, tdir):
    if kind == "medsec":
        return [MEDSEC, "--metadata-dir", mdir, "--metadata-url", f"{base}/metadata/", "--target-name", LOOKUP,
                "--target-dir", tdir, "--target-base-url", f"{base}/targets/", "download"]
    return [sys.executable, os.path.join(HERE, "python_tuf_fetch.py"), mdir, f"{base}/metadata/",
            f"{base}/targets/", tdir, LOOKUP]


def measure(kind, repo, base, runs, work):
    cold, warm = [], []
    for r in range(runs):
        mdir = os.path.join(work, f"{kind}-{r}", "metadata")
        tdir = os.path.join(work, f"{kind}-{r}", "targets")
        os.makedirs(mdir)
        os.makedirs(tdir)
        shutil.copy(os.path.join(repo, "metadata", "1.root.json"), os.path.join(mdir, "root.json"))
        cold.append(run(client_cmd(kind, mdir, base, tdir)))
        warm.append(run(client_cmd(kind, mdir, base, tdir)))
    summary = lambda xs: {
        "median_ms": statistics.median(x[0] for x in xs) * 1000,
        "peak_rss_mib": max(x[1] for x in xs) / 2**20,
        "bytes": statistics.median(x[2] for x in xs),
    }
    return summary(cold), summary(warm)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--out")
    ap.add_argument("--server", choices=["nginx", "python"], default="nginx",
                    help="static file server both clients fetch from (nginx: apt-get install nginx-light)")
    args = ap.parse_args()
    if not os.path.exists(TIME):
        sys.exit("needs GNU time: apt-get install time")
    if not os.path.exists(MEDSEC):
        sys.exit("build first: cargo build --release -p medsec-tuf-client")
    cases = [(f"flat {int(n) // 1000}k", int(n), 0) for n in args.sizes.split(",")]
    if 100000 in [c[1] for c in cases]:
        cases.append(("256 hash bins, 100k", 100000, 8))
    rows = []
    # What starting any process costs in this harness (fork, exec, GNU time): measured so the
    # table can also show the clients' own time.
    launch_ms = statistics.median(run(["/bin/true"])[0] for _ in range(20)) * 1000
    with tempfile.TemporaryDirectory(prefix="medsec-bench-") as tmp:
        os.chmod(tmp, 0o755)  # nginx workers run as an unprivileged user
        for name, count, bits in cases:
            repo = os.path.join(tmp, name.replace(" ", "_").replace(",", ""))
            t0 = time.perf_counter()
            build_repo(repo, count, bits)
            print(f"built {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            global SERVER
            if args.server == "nginx":
                nwork = os.path.join(tmp, "nginx-" + repo.rsplit("/", 1)[1])
                os.makedirs(nwork)
                server = SERVER = Nginx(repo, nwork)
            else:
                server = serve(repo)
            base = f"http://127.0.0.1:{server.server_address[1]}"
            try:
                for kind in ["medsec", "python-tuf"]:
                    work = os.path.join(tmp, "work-" + repo.rsplit("/", 1)[1])
                    cold, warm = measure(kind, repo, base, args.runs, work)
                    rows.append({"case": name, "client": kind, "cold": cold, "warm": warm})
                    print(f"{name:22} {kind:10} cold {cold['median_ms']:8.1f} ms  warm {warm['median_ms']:8.1f} ms",
                          file=sys.stderr)
            finally:
                server.shutdown()
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        f"machine: {cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}; "
        f"runs per case: {args.runs}; server: {args.server}; process launch overhead in this harness: "
        f"{launch_ms:.1f} ms (included in the times below)",
        "",
        "| case | client | cold median | warm median | peak RSS | bytes fetched (cold) | bytes fetched (warm) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['client']} | {r['cold']['median_ms']:.1f} ms | {r['warm']['median_ms']:.1f} ms | "
            f"{max(r['cold']['peak_rss_mib'], r['warm']['peak_rss_mib']):.1f} MiB | {int(r['cold']['bytes']):,} | "
            f"{int(r['warm']['bytes']):,} |"
        )
    lines.append("")
    for case in dict.fromkeys(r["case"] for r in rows):
        m = next(r for r in rows if r["case"] == case and r["client"] == "medsec")
        p = next(r for r in rows if r["case"] == case and r["client"] == "python-tuf")
        net = lambda r, k: max(r[k]["median_ms"] - launch_ms, 0.1)
        lines.append(
            f"- {case}: medsec is {p['cold']['median_ms'] / m['cold']['median_ms']:.1f}x faster cold, "
            f"{p['warm']['median_ms'] / m['warm']['median_ms']:.1f}x warm; net of launch overhead "
            f"{net(p, 'cold') / net(m, 'cold'):.1f}x cold, {net(p, 'warm') / net(m, 'warm'):.1f}x warm"
        )
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
