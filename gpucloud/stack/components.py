"""Pulumi components, one per concern, each with an Args type and a ``gpucloud:<area>:<Name>`` token.

Cluster
 +- ControlPlane        controllers, accounting database host (protected), subnet managers, login
 |   +- NodePool ...
 +- Storage             filesystems (protected) and storage-server pools (protected)
 +- NodePool            compute pools (or this stack's pod of one)
 |   +- BareMetalNode   +- RedfishNode (dynamic provider: power, one-time PXE, read back)
 +- ConfigurationLayers one local command per layer running its playbook; triggers = hash of the layer's inputs

Components only compose; no resource is created at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi_command import local

from gpucloud.stack.provider import RedfishNode

BOOT_TARGET = "Pxe"


@dataclass(frozen=True)
class ProviderArgs:
    kind: str  # redfish | none
    username: str | None
    password: pulumi.Input[str] | None  # a secret Output; never a plain value in the dry-run
    verify_tls: bool = True
    ca_bundle: str | None = None
    power_timeout: int = 300
    poll_interval: int = 5


@dataclass(frozen=True)
class BareMetalNodeArgs:
    hostname: str
    bmc_address: str | None
    image: str | None
    provider: ProviderArgs


class BareMetalNode(pulumi.ComponentResource):
    """One physical server. With a Redfish provider it owns a RedfishNode that powers and installs it."""

    TYPE = "gpucloud:metal:BareMetalNode"

    def __init__(self, name: str, args: BareMetalNodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"hostname": args.hostname, "image": args.image}, opts)
        self.redfish: RedfishNode | None = None
        p = args.provider
        if p.kind == "redfish" and args.bmc_address:
            self.redfish = RedfishNode(f"{name}-bmc", {
                "node": args.hostname, "bmc": f"https://{args.bmc_address}", "system": "",
                "username": p.username or "", "password": p.password, "image": args.image or "",
                "boot_target": BOOT_TARGET, "power": "On", "verify_tls": p.verify_tls, "ca_bundle": p.ca_bundle or "",
                "power_timeout": p.power_timeout, "poll_interval": p.poll_interval,
            }, pulumi.ResourceOptions(parent=self))
            self.register_outputs({"power_state": self.redfish.power_state,
                                   "mac_addresses": self.redfish.mac_addresses})
        else:
            self.register_outputs({})


@dataclass(frozen=True)
class NodePoolArgs:
    name: str
    model: str
    image: str | None
    roles: tuple[str, ...]
    hosts: tuple[tuple[str, str | None], ...]  # (hostname, BMC address)
    provider: ProviderArgs
    protect: bool = False  # stateful hosts (accounting database, storage servers)


class NodePool(pulumi.ComponentResource):
    TYPE = "gpucloud:compute:NodePool"

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"pool": args.name, "model": args.model, "image": args.image,
                                           "roles": list(args.roles), "hosts": len(args.hosts)}, opts)
        child = pulumi.ResourceOptions(parent=self, protect=args.protect or None)
        self.nodes = [BareMetalNode(host, BareMetalNodeArgs(host, bmc, args.image, args.provider), child)
                      for host, bmc in args.hosts]
        self.register_outputs({})


@dataclass(frozen=True)
class ControlPlaneArgs:
    pools: tuple[NodePoolArgs, ...]


class ControlPlane(pulumi.ComponentResource):
    """Slurm controllers, the accounting database host, subnet managers, monitoring and login nodes."""

    TYPE = "gpucloud:control:ControlPlane"

    def __init__(self, name: str, args: ControlPlaneArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"pools": [p.name for p in args.pools]}, opts)
        self.pools = [NodePool(f"pool-{p.name}", p, pulumi.ResourceOptions(parent=self)) for p in args.pools]
        self.register_outputs({})


@dataclass(frozen=True)
class FilesystemArgs:
    name: str
    kind: str
    mount: str
    capacity: int | None
    pools: tuple[str, ...] | None
    settings: dict[str, Any] = field(default_factory=dict)


class Filesystem(pulumi.ComponentResource):
    """A filesystem the cluster mounts. Protected: removing it from the spec must never pass silently."""

    TYPE = "gpucloud:storage:Filesystem"

    def __init__(self, name: str, args: FilesystemArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {
            "name": args.name, "kind": args.kind, "mount": args.mount, "capacity": args.capacity,
            "pools": list(args.pools) if args.pools is not None else None, "settings": args.settings,
        }, pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=True)))
        self.register_outputs({"mount": args.mount})


@dataclass(frozen=True)
class StorageArgs:
    filesystems: tuple[FilesystemArgs, ...]
    server_pools: tuple[NodePoolArgs, ...] = ()


class Storage(pulumi.ComponentResource):
    TYPE = "gpucloud:storage:Storage"

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"filesystems": [f.name for f in args.filesystems]}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.filesystems = [Filesystem(f"{name}-{f.name}", f, child) for f in args.filesystems]
        self.pools = [NodePool(f"pool-{p.name}", p, child) for p in args.server_pools]
        self.register_outputs({})


@dataclass(frozen=True)
class LayerArgs:
    name: str
    playbook: str
    trigger: str
    limit: str | None


@dataclass(frozen=True)
class ConfigurationLayersArgs:
    inventory: str  # the cluster's inventory, relative to the project
    layers: tuple[LayerArgs, ...]
    after: tuple[pulumi.Resource, ...] = ()  # the machines the first layer configures


class ConfigurationLayers(pulumi.ComponentResource):
    """The playbooks, one local command per layer, in order. A layer re-runs when its trigger (input hash) moves."""

    TYPE = "gpucloud:config:ConfigurationLayers"

    def __init__(self, name: str, args: ConfigurationLayersArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"inventory": args.inventory,
                                           "layers": [layer.name for layer in args.layers]}, opts)
        self.commands: list[local.Command] = []
        previous: list[pulumi.Resource] = list(args.after)
        for layer in args.layers:
            cmd = f"ansible-playbook -i {args.inventory} {layer.playbook}"
            if layer.limit:
                cmd += f" --limit {layer.limit}"
            command = local.Command(
                f"{name}-{layer.name}",
                create=cmd, update=cmd, triggers=[layer.trigger],
                environment={"ANSIBLE_FORCE_COLOR": "0"},
                opts=pulumi.ResourceOptions(parent=self, depends_on=previous),
            )
            self.commands.append(command)
            previous = [command]
        self.register_outputs({})


@dataclass(frozen=True)
class ClusterArgs:
    cluster: str
    part: str
    pools: tuple[NodePoolArgs, ...]  # compute pools of this stack
    control: ControlPlaneArgs | None
    storage: StorageArgs | None
    layers: tuple[LayerArgs, ...]


class Cluster(pulumi.ComponentResource):
    """The root of every stack: one cluster, or one part of it (the shared stack or a pod)."""

    TYPE = "gpucloud:cluster:Cluster"

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"cluster": args.cluster, "part": args.part}, opts)
        child = pulumi.ResourceOptions(parent=self)
        machines: list[pulumi.Resource] = []
        self.control = ControlPlane(f"{name}-control", args.control, child) if args.control else None
        self.storage = Storage(f"{name}-storage", args.storage, child) if args.storage else None
        self.pools = [NodePool(f"pool-{p.name}", p, child) for p in args.pools]
        for c in (self.control, self.storage):
            if c is not None:
                machines.append(c)
        machines.extend(self.pools)
        self.layers = ConfigurationLayers(f"{name}-layers", ConfigurationLayersArgs(
            inventory=f"inventory/{args.cluster}/hosts.yml", layers=args.layers, after=tuple(machines)), child)
        self.register_outputs({})
