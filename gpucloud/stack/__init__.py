"""The Pulumi side of gpucloud: how a Plan is split into stacks, the components, and the Redfish provider.

``layout`` and ``layers`` are pure and never import Pulumi (the plan path uses them); ``components``, ``program``,
``provider`` and ``dryrun`` do, and are only imported by the Pulumi program, ``gpucloud apply`` and the dry-run.
"""
