"""Checks: fabric. Everything is computed from counts (plan.fabric.shape), never by wiring the whole fabric."""

from __future__ import annotations

from math import ceil
from typing import Iterable

from gpucloud import catalog
from gpucloud.checks import check
from gpucloud.findings import Finding, Level
from gpucloud.plan.fabric import (DEFAULT_PKEY, LID_LIMIT, LID_WARN, SHARED_PKEY, STORAGE_PKEY, attached_pools,
                                  host_hcas, pool_rate, positioned, shape, sm_pool_names)
from gpucloud.plan.hosts import PoolPlan
from gpucloud.spec.model import Spec


def _shapes(spec: Spec):
    for name, fabric in spec.fabrics.items():
        if fabric.kind != "infiniband":
            continue
        sh = shape(spec, name)
        if sh is not None:
            yield sh


@check("fabric-rails")
def rails(spec: Spec) -> Iterable[Finding]:
    """Compute pools on a rail-optimized fabric have as many HCAs as the fabric has rails."""
    for sh in _shapes(spec):
        if not sh.rail_opt:
            continue
        for pool in spec.pools:
            model = pool.hardware
            if model is None or "compute" not in pool.roles:
                continue
            if sh.name == "compute" and pool.fabric != "compute":
                continue
            h = host_hcas(model, sh.name)
            if h and h != sh.rails:
                yield Finding("fabric-rails", "warning", (*pool.path, "model"),
                              f"pool {pool.name} ({pool.model}) has {h} {sh.name} HCA(s) but the {sh.name} fabric has "
                              f"{sh.rails} rails; its scalable units get leaves for rails 0-{h - 1} only, so its "
                              f"GPUs reach rails {h}-{sh.rails - 1} of other pools through the spines",
                              "put pools with different HCA counts on separate fabrics, or use the same server model")


@check("fabric-no-hcas")
def no_hcas(spec: Spec) -> Iterable[Finding]:
    """A pool attached to the compute fabric whose model has no compute HCAs."""
    for pool in spec.pools:
        model = pool.hardware
        if model is None or pool.fabric != "compute" or model.rails:
            continue
        yield Finding("fabric-no-hcas", "error", (*pool.path, "fabric"),
                      f"pool {pool.name} is attached to the compute fabric but {pool.model} has no compute HCAs",
                      "set 'fabric: none' on the pool, or pick a model with InfiniBand adapters ('gpucloud catalog')")


@check("fabric-rate")
def rate(spec: Spec) -> Iterable[Finding]:
    """The link rate is one the switch supports (NDR200 by splitting a QM9700's cages, for example)."""
    for sh in _shapes(spec):
        if sh.model.radix(sh.rate):
            continue
        rates = sorted({sh.model.rate, *sh.model.split_rates})
        where = (*sh.fabric.path, "rate") if sh.fabric.rate else (*sh.fabric.path, "switch")
        yield Finding("fabric-rate", "error", where,
                      f"the {sh.model.name} switch has no {sh.rate} ports (it offers {', '.join(rates)})",
                      f"set rate to one of {', '.join(rates)} or choose a switch for {sh.rate}")


@check("fabric-scalable-unit")
def scalable_unit(spec: Spec) -> Iterable[Finding]:
    """A scalable unit fits on one leaf per rail: SU nodes down plus its uplinks within the switch radix."""
    for sh in _shapes(spec):
        if not sh.rail_opt or not sh.model.radix(sh.rate):
            continue
        if sh.su > sh.down:
            t = sh.fabric.oversubscription[0]
            best = max(n for n in range(1, sh.radix + 1) if n + ceil(n / (t * sh.step)) * sh.step <= sh.radix)
            yield Finding("fabric-scalable-unit", "error", (*sh.fabric.path, "scalable_unit"),
                          f"a scalable unit of {sh.su} nodes needs {sh.su} down + {sh.up} up ports per leaf, but a "
                          f"{sh.model.name} has {sh.radix} at {sh.rate}"
                          + (f" (uplinks run at {sh.model.rate} and take {sh.step} split ports each)"
                             if sh.step > 1 else ""),
                          f"use scalable_unit <= {best} at oversubscription {t}:1")


@check("fabric-capacity")
def capacity(spec: Spec) -> Iterable[Finding]:
    """The switch radix and tiers can connect every leaf: k leaves with two tiers, k pods of k/2 with three."""
    for sh in _shapes(spec):
        if not sh.model.radix(sh.rate) or sh.su > sh.down:
            continue
        biggest = max(sh.planes, default=0)
        if biggest <= sh.max_leaves():
            continue
        k = sh.switch_radix
        per_leaf = sh.down if not sh.rail_opt else sh.su
        reach = sh.max_leaves() * per_leaf
        formula = "k^2/2" if sh.tiers == 2 else "k^3/4"
        plane = "per rail " if sh.split == "per-rail" else ""
        hint = ("let tiers be auto (or 3) so a core tier is added" if sh.tiers == 2
                else "raise the oversubscription, split the fabric per rail, or choose a switch with more ports")
        yield Finding("fabric-capacity", "error", (*sh.fabric.path, "tiers" if sh.tiers == 2 else "switch"),
                      f"the {sh.name} fabric needs {biggest} leaves {plane}but {sh.tiers} tiers of {k}-port "
                      f"{sh.model.name} switches connect at most {sh.max_leaves()} ({formula} = {reach:,} endpoints at "
                      f"{per_leaf} per leaf)", hint)


@check("fabric-lids")
def lids(spec: Spec) -> Iterable[Finding]:
    """Each subnet stays within the 49,151 unicast LIDs; warns above 80%."""
    for sh in _shapes(spec):
        n = sh.lids_per_subnet()
        what = "each per-rail subnet" if sh.split == "per-rail" else "the subnet"
        if n > LID_LIMIT:
            hint = ("set split: per-rail (or auto) to give every rail its own subnet" if sh.rail_opt and sh.rails > 1
                    else "split the hosts over more fabrics; one subnet holds at most 49,151 LIDs")
            yield Finding("fabric-lids", "error", (*sh.fabric.path, "split"),
                          f"{what} of the {sh.name} fabric needs {n:,} unicast LIDs, more than the {LID_LIMIT:,} "
                          f"an InfiniBand subnet has", hint)
        elif n > LID_WARN * LID_LIMIT:
            yield Finding("fabric-lids", "warning", (*sh.fabric.path, "split"),
                          f"{what} of the {sh.name} fabric uses {n:,} of {LID_LIMIT:,} unicast LIDs "
                          f"({100 * n // LID_LIMIT}%)",
                          "leave room for growth: split: per-rail gives each rail a subnet")


@check("fabric-subnet-manager")
def subnet_manager(spec: Spec) -> Iterable[Finding]:
    """OpenSM needs a host with a port on every subnet, and two for a master/standby pair."""
    for sh in _shapes(spec):
        sm = sh.fabric.subnet_manager
        if sm.kind != "opensm":
            continue
        path = (*sh.fabric.path, "subnet_manager")
        names = sm_pool_names(spec, sh.fabric)
        ports = 0
        hosts = 0
        for pool in spec.pools:
            model = pool.hardware
            if pool.name not in names or model is None:
                continue
            h = host_hcas(model, sh.name) if (sh.name != "compute" or pool.fabric == "compute") else 0
            if h:
                n = pool.count - len(pool.exclude & set(pool.indices))
                hosts += n
                ports += n * h
        subnets = len(sh.planes)
        if hosts == 0:
            level: Level = "error" if sh.name == "compute" else "warning"
            yield Finding("fabric-subnet-manager", level, path,
                          f"no host runs OpenSM on the {sh.name} fabric: "
                          + (f"pools {', '.join(names)} have no {sh.name} HCA" if names
                             else "no pool has the subnet-manager role"),
                          "give a pool with a port on this fabric the subnet-manager role (or set subnet_manager.pool)"
                          ", use kind: ufm, or run the switch-embedded subnet manager")
        elif ports < subnets:
            yield Finding("fabric-subnet-manager", "error", path,
                          f"the {sh.name} fabric has {subnets} subnets but its subnet-manager hosts have only {ports} "
                          f"port(s) on it; every subnet needs its own OpenSM", "add subnet-manager hosts or use UFM")
        elif hosts < 2:
            yield Finding("fabric-subnet-manager", "warning", path,
                          f"only one host runs OpenSM on the {sh.name} fabric: no standby takes over if it fails",
                          "run the subnet manager on two hosts (an HA pair: master and standby)")


@check("fabric-pkey")
def pkeys(spec: Spec) -> Iterable[Finding]:
    """Tenant partition keys stay clear of the default, shared and storage partitions."""
    if not spec.fabrics:
        return
    reserved = {DEFAULT_PKEY: "default", SHARED_PKEY: "shared", STORAGE_PKEY: "storage"}
    for tenant in spec.tenants:
        if tenant.pkey is not None and (tenant.pkey & 0x7FFF) in reserved:
            yield Finding("fabric-pkey", "error", (*tenant.path, "pkey"),
                          f"tenant {tenant.name}'s pkey {tenant.pkey:#06x} is the {reserved[tenant.pkey & 0x7FFF]} "
                          f"partition of the fabric", "pick a pkey between 0x0001 and 0x7ffc")


@check("fabric-split")
def split(spec: Spec) -> Iterable[Finding]:
    """A per-rail split needs a rail-optimized fabric with more than one rail."""
    for sh in _shapes(spec):
        if sh.fabric.split == "per-rail" and (not sh.rail_opt or sh.rails < 2):
            yield Finding("fabric-split", "error", (*sh.fabric.path, "split"),
                          f"the {sh.name} fabric cannot be split per rail: it "
                          + ("is not rail-optimized" if not sh.rail_opt else "has one rail"),
                          "use split: auto or none")


@check("fabric-empty")
def empty(spec: Spec) -> Iterable[Finding]:
    """A fabric that no pool has a port on."""
    for sh in _shapes(spec):
        if sh.endpoints == 0:
            kind = "compute HCAs attached to it" if sh.name == "compute" else "storage HCAs"
            yield Finding("fabric-empty", "warning", sh.fabric.path,
                          f"no pool has {kind}, so the {sh.name} fabric plans no switches",
                          "remove the fabric, or add pools whose model has the adapters ('gpucloud catalog')")


@check("fabric-mixed-rate")
def mixed_rate(spec: Spec) -> Iterable[Finding]:
    """Compute pools placed slot by slot on one fabric run at its port rate: no NDR node on a split NDR200 port, no
    pool whose rate depends on which pool the spec lists first. Service hosts may differ (they use one port each)."""
    for sh in _shapes(spec):
        if not sh.model.radix(sh.rate):
            continue  # fabric-rate says the switch has no such ports
        pools = tuple(PoolPlan(p, p.hardware, ()) for p in spec.pools if p.hardware is not None)
        placed = [pp for pp in attached_pools(spec, pools, sh.name)
                  if positioned(pp, sh.name) and "compute" in pp.pool.roles]
        rates = sorted({pool_rate(pp, sh.name) for pp in placed})
        for pp in placed:
            got = pool_rate(pp, sh.name)
            if got == sh.rate:
                continue
            if sh.fabric.rate:
                why = f"the {sh.name} fabric's ports run at {sh.rate}"
                hint = (f"give pool {pp.pool.name} a model with {sh.rate} adapters, or put it on a fabric of its own")
            else:
                why = f"pools on the {sh.name} fabric have {' and '.join(rates)} adapters"
                hint = (f"set fabric.{sh.name}.rate, or put the pools with {got} adapters on a fabric of their own")
            yield Finding("fabric-mixed-rate", "error", (*pp.pool.path, "model"),
                          f"pool {pp.pool.name} ({pp.pool.model}) has {got} adapters but {why}; its links would "
                          f"run at {catalog.link_rate(got, sh.rate)} on {sh.rate} ports", hint)


@check("fabric-service-leaf")
def service_leaf(spec: Spec) -> Iterable[Finding]:
    """Service hosts that do not fit the free slots of the last scalable unit get leaves of their own: say what that
    costs when those leaves push the fabric to more spines or tiers than its compute nodes need."""
    for sh in _shapes(spec):
        if not sh.svc_leaves or not sh.sus:
            continue
        without = sh.leaves - sh.svc_leaves
        bare = _bare(spec, sh)
        if bare is None or (bare.spines, bare.cores, bare.tiers) == (sh.spines, sh.cores, sh.tiers):
            continue
        extra = (sh.leaves + sh.spines + sh.cores) - (without + bare.spines + bare.cores)
        slots = ceil(sh.svc_ports / max(1, sh.rails if sh.rail_opt else 1))
        what = [f"{a} -> {b} {w}" for a, b, w in ((bare.spines, sh.spines, "spines"), (bare.cores, sh.cores, "cores"),
                                                  (bare.tiers, sh.tiers, "tiers")) if a != b]
        leaves = "a leaf" if sh.svc_leaves == 1 else f"{sh.svc_leaves} leaves"
        yield Finding("fabric-service-leaf", "warning", sh.fabric.path,
                      f"{sh.svc_ports} service host port(s) do not fit the last scalable unit and take {leaves} of "
                      f"their own, which adds {extra} switch(es) to the {sh.name} fabric ({', '.join(what)})",
                      f"leave {slots} node slot(s) free in the last scalable unit for the service hosts (the DGX "
                      f"SuperPOD leaves one for its UFM appliances), e.g. {slots} node(s) fewer in the last compute "
                      "pool")


def _bare(spec: Spec, sh):
    """The fabric's shape without its service hosts."""
    pools = tuple(PoolPlan(p, p.hardware, ()) for p in spec.pools if p.hardware is not None)
    if len(pools) != len(spec.pools):
        return None
    return shape(spec, sh.name, tuple(pp for pp in pools if positioned(pp, sh.name)))


@check("fabric-spine-leaf-groups")
def spine_leaf_groups(spec: Spec) -> Iterable[Finding]:
    """Spine-leaf groups the switches can build: a rail-optimized fabric, spines that divide a leaf's uplinks, a
    group's links that fit half a spine's ports, and no more groups than a core has ports."""
    for sh in _shapes(spec):
        slg = sh.fabric.spine_leaf_groups
        if slg is None:
            continue
        path = (*sh.fabric.path, "spine_leaf_groups")
        leaves, spines = slg
        if not sh.rail_opt:
            yield Finding("fabric-spine-leaf-groups", "error", path,
                          f"spine-leaf groups group the leaves of one rail, but fabric {sh.name} is a plain fat tree",
                          "use topology: rail-optimized-fat-tree, or remove spine_leaf_groups")
            continue
        if sh.up % spines:
            yield Finding("fabric-spine-leaf-groups", "error", (*path, "spines"),
                          f"a leaf has {sh.up} uplinks, which {spines} spines cannot share evenly",
                          "use a number of spines that divides " + str(sh.up) + " (" +
                          ", ".join(str(d) for d in range(1, sh.up + 1) if sh.up % d == 0) + ")")
            continue
        down = leaves * (sh.up // spines)
        if down > sh.switch_radix // 2:
            yield Finding("fabric-spine-leaf-groups", "error", (*path, "leaves"),
                          f"a spine would take {down} links from its group's {leaves} leaves and as many to the "
                          f"cores, more than its {sh.switch_radix} ports",
                          f"use at most {sh.switch_radix // 2 // (sh.up // spines)} leaves per group, or more spines")
            continue
        groups = sh.spines // spines if spines else 0
        if groups > sh.switch_radix:
            yield Finding("fabric-spine-leaf-groups", "error", path,
                          f"{groups} spine-leaf groups need more than a core's {sh.switch_radix} ports",
                          "use more leaves per group, or split the fabric")
