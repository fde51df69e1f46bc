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


def _stand_in(gpus: int, rails: int, rate_gbps: int) -> catalog.ServerModel:
    """A model the catalog does not know (one of the spec's own): the inventory's GPU and rail counts, no GPU type,
    so there is no single-node NCCL gate unless an override gives one."""
    from dataclasses import replace

    rate = next((r for r in ("ndr", "ndr200", "hdr", "xdr") if catalog.LINK_RATES_GBPS[r] == rate_gbps), "ndr")
    return replace(catalog.server("cpu-1u"), name="spec-defined", gpu=None, gpus=gpus, nvswitch=False,
                   compute_hcas=(catalog.HCA("spec-defined", rate),) * rails, compute_devices=())


def gate_args(model_name: str, rate_gbps: int, overrides: dict | None = None, gpus: int = 0,
              rails: int = 0) -> list[str]:
    from gpucloud.accept.run import node_args
    from gpucloud.catalog.acceptance import thresholds_for
    from gpucloud.plan.acceptance import AcceptNode

    model = catalog.SERVERS.get(model_name) or _stand_in(gpus, rails, rate_gbps)
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
    ap.add_argument("--gpus", type=int, default=0, help="for a model of the spec's own (not in the catalog)")
    ap.add_argument("--rails", type=int, default=0, help="for a model of the spec's own (not in the catalog)")
    ap.add_argument("--override", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    if args.model not in catalog.SERVERS:
        if not args.gpus and not args.rails:
            sys.stderr.write(f"unknown node model {args.model!r} and no --gpus/--rails; `gpucloud catalog` lists "
                             "the catalog's models\n")
            return 2
        sys.stderr.write(f"{args.model} is not in the catalog: gates from --gpus/--rails and the link rate only\n")
    overrides = {}
    for item in args.override:
        key, _, value = item.partition("=")
        overrides[key] = float(value)
    sys.stdout.write(json.dumps(gate_args(args.model, args.rate_gbps, overrides, args.gpus, args.rails)) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
