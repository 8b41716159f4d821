"""The reference side of tests/univers_grid.rs: reads {"schemes": [{"scheme", "versions",
"ranges"}]} on stdin and prints, per scheme, the sign of every pairwise comparison and
whether each version is in each vers range, as univers (the purl project's reference
implementation of vers) computes them."""
import json
import sys

from univers.version_range import RANGE_CLASS_BY_SCHEMES, VersionRange

out = []
for case in json.load(sys.stdin)["schemes"]:
    cls = RANGE_CLASS_BY_SCHEMES[case["scheme"]].version_class
    versions = [cls(v) for v in case["versions"]]
    order = [[(a > b) - (a < b) for b in versions] for a in versions]
    contains = []
    for text in case["ranges"]:
        r = VersionRange.from_string(text)
        contains.append([v in r for v in versions])
    out.append({"scheme": case["scheme"], "order": order, "contains": contains})
json.dump(out, sys.stdout)
