"""Pulumi components, one per concern, each with an Args type and a ``gpucloud:<area>:<Name>`` token.

Cluster
 +- ControlPlane        controllers, accounting database host (protected), subnet managers, login
 |   +- NodePool ...
 +- Storage             filesystems (protected) and storage-server pools (protected)
 +- NodePool            compute pools (or this stack's pod of one)
 |   +- BareMetalNode   +- RedfishNode (dynamic provider: power, one-time PXE, wait for the phone-home, read back)
 +- ConfigurationLayers one LayerCommand per layer running its playbook; triggers = hash of the layer's inputs

Components only compose; no resource is created at import time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from gpucloud.stack import graph
from gpucloud.stack.layer import LayerCommand
from gpucloud.stack.provider import RedfishNode


@dataclass(frozen=True)
class ProviderArgs:
    kind: str  # redfish | none
    username: str | None
    password: pulumi.Input[str] | None  # a secret Output; never a plain value in the dry-run
    verify_tls: bool = True
    ca_bundle: str | None = None


@dataclass(frozen=True)
class BareMetalNodeArgs:
    hostname: str
    bmc_address: str | None
    image: str | None
    provider: ProviderArgs
    # Where the stack's installed nodes phone home, or None where the plan has no provisioning server.
    phone_home: graph.PhoneHome | None = None


class BareMetalNode(pulumi.ComponentResource):
    """One physical server. With a Redfish provider it owns a RedfishNode that powers and installs it."""

    TYPE = graph.NODE

    def __init__(self, name: str, args: BareMetalNodeArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, graph.node_inputs(args.hostname, args.image), opts)
        self.redfish: RedfishNode | None = None
        p = args.provider
        if p.kind == "redfish" and args.bmc_address:
            image = graph.boot_image(args.phone_home, args.hostname, args.image)
            self.redfish = RedfishNode(graph.redfish_name(name), graph.redfish_inputs(
                args.hostname, args.bmc_address, image, p.username, p.password, p.verify_tls, p.ca_bundle,
                *graph.phone_home(args.phone_home, args.hostname, image),
            ), pulumi.ResourceOptions(parent=self))
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
    phone_home: graph.PhoneHome | None = None  # see BareMetalNodeArgs


class NodePool(pulumi.ComponentResource):
    TYPE = graph.POOL

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, graph.pool_inputs(args.name, args.model, args.image, args.roles,
                                                            len(args.hosts)), opts)
        child = pulumi.ResourceOptions(parent=self, protect=args.protect or None)
        self.nodes = [BareMetalNode(host, BareMetalNodeArgs(host, bmc, args.image, args.provider, args.phone_home),
                                    child)
                      for host, bmc in args.hosts]
        self.register_outputs({})


@dataclass(frozen=True)
class ControlPlaneArgs:
    pools: tuple[NodePoolArgs, ...]


class ControlPlane(pulumi.ComponentResource):
    """Slurm controllers, the accounting database host, subnet managers, monitoring and login nodes."""

    TYPE = graph.CONTROL

    def __init__(self, name: str, args: ControlPlaneArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"pools": [p.name for p in args.pools]}, opts)
        self.pools = [NodePool(graph.pool_name(p.name), p, pulumi.ResourceOptions(parent=self)) for p in args.pools]
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

    TYPE = graph.FILESYSTEM

    def __init__(self, name: str, args: FilesystemArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, graph.filesystem_inputs({
            "name": args.name, "kind": args.kind, "mount": args.mount, "capacity": args.capacity,
            "pools": list(args.pools) if args.pools is not None else None, "settings": args.settings,
        }), pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(protect=True)))
        self.register_outputs({"mount": args.mount})


@dataclass(frozen=True)
class StorageArgs:
    filesystems: tuple[FilesystemArgs, ...]
    server_pools: tuple[NodePoolArgs, ...] = ()


class Storage(pulumi.ComponentResource):
    TYPE = graph.STORAGE

    def __init__(self, name: str, args: StorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"filesystems": [f.name for f in args.filesystems]}, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.filesystems = [Filesystem(f"{name}-{f.name}", f, child) for f in args.filesystems]
        self.pools = [NodePool(graph.pool_name(p.name), p, child) for p in args.server_pools]
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
    """The playbooks, one LayerCommand per layer, in order. A layer re-runs when its trigger (input hash) moves."""

    TYPE = graph.LAYERS

    def __init__(self, name: str, args: ConfigurationLayersArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"inventory": args.inventory,
                                           "layers": [layer.name for layer in args.layers]}, opts)
        self.commands: list[LayerCommand] = []
        previous: list[pulumi.Resource] = list(args.after)
        for layer in args.layers:
            cmd = graph.layer_command(args.inventory, layer.playbook, layer.limit)
            command = LayerCommand(f"{name}-{layer.name}", graph.layer_inputs(cmd, layer.trigger, layer.playbook),
                                   pulumi.ResourceOptions(parent=self, depends_on=previous))
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

    TYPE = graph.CLUSTER

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(self.TYPE, name, {"cluster": args.cluster, "part": args.part}, opts)
        child = pulumi.ResourceOptions(parent=self)
        machines: list[pulumi.Resource] = []
        self.control = ControlPlane(f"{name}-control", args.control, child) if args.control else None
        self.storage = Storage(f"{name}-storage", args.storage, child) if args.storage else None
        self.pools = [NodePool(graph.pool_name(p.name), p, child) for p in args.pools]
        for c in (self.control, self.storage):
            if c is not None:
                machines.append(c)
        machines.extend(self.pools)
        self.layers = ConfigurationLayers(f"{name}-layers", ConfigurationLayersArgs(
            inventory=graph.inventory_path(args.cluster), layers=args.layers, after=tuple(machines)), child)
        self.register_outputs({})
