"""node.py's arguments for one node model from the catalog, for the slurmd role's resume gate:

    python -m gpucloud.accept.gate --model hgx-h100-8 --rate-gbps 400

prints a JSON list (``["--gpus", "8", ...]``). The role runs it on the Ansible controller (gpucloud is installed
there) and the checks on the node, so the role carries no figures of its own. The spec's acceptance.thresholds are
``gpucloud accept``'s; pass them here with ``--override KEY=VALUE``.
"""

from __future__ import annotations

import argparse
import json
import sys

from gpucloud import catalog


def gate_args(model_name: str, rate_gbps: int, overrides: dict | None = None) -> list[str]:
    from gpucloud.accept.run import node_args
    from gpucloud.catalog.acceptance import thresholds_for
    from gpucloud.plan.acceptance import AcceptNode

    model = catalog.server(model_name)
    # The inventory gives the link rate in Gb/s; the HCAs' own generation when it runs at that rate (an NDR HCA on
    # an NDR200 fabric links at NDR200).
    rate = None
    if rate_gbps and model.compute_hcas:
        own = model.compute_hcas[0].rate
        rate = own if catalog.LINK_RATES_GBPS[own] == rate_gbps else next(
            (r for r in ("ndr200", "hdr", "ndr", "xdr") if catalog.LINK_RATES_GBPS[r] == rate_gbps), None)
    gates = thresholds_for(model, rate, overrides)
    devices = model.devices("compute") if rate else ()
    return node_args(AcceptNode(model_name, "", 0, model.gpus, devices, gates, None))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gpucloud.accept.gate", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--rate-gbps", type=int, default=0)
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    try:
        catalog.server(args.model)
    except KeyError:
        sys.stderr.write(f"unknown node model {args.model!r}; `gpucloud catalog` lists them\n")
        return 2
    overrides = {}
    for item in args.override:
        key, _, value = item.partition("=")
        overrides[key] = float(value)
    sys.stdout.write(json.dumps(gate_args(args.model, args.rate_gbps, overrides)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
