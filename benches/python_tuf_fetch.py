"""python-tuf 7 client for the refresh benchmark: refresh, look one target up, download it unless
already present. usage: python_tuf_fetch.py METADATA_DIR METADATA_URL TARGETS_URL TARGET_DIR TARGET"""

import sys

from tuf.ngclient import Updater

metadata_dir, metadata_url, targets_url, target_dir, target = sys.argv[1:6]
with open(f"{metadata_dir}/root.json", "rb") as f:
    root = f.read()
updater = Updater(metadata_dir, metadata_url, target_dir, targets_url, bootstrap=root)
updater.refresh()
info = updater.get_targetinfo(target)
if info is None:
    sys.exit(f"{target} not found")
if updater.find_cached_target(info) is None:
    updater.download_target(info)
