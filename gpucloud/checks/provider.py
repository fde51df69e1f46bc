"""Checks: the provisioning provider."""

from __future__ import annotations

from gpucloud.checks import check
from gpucloud.findings import Finding


@check("provider-credentials")
def credentials(spec):
    """Redfish needs a BMC user name and a password secret."""
    prov = spec.provider
    if prov.kind != "redfish":
        return
    if prov.username is None:
        yield Finding("provider-credentials", "error", ("provider",), "the redfish provider has no username",
                      "add 'username: <BMC user>'")
    if prov.password is None:
        yield Finding("provider-credentials", "error", ("provider",), "the redfish provider has no password",
                      "add 'password: {secret: bmc-password}' and store the value in the secret store")


@check("provider-tls")
def tls(spec):
    """BMC certificates that are not verified."""
    prov = spec.provider
    if prov.kind == "redfish" and not prov.verify_tls:
        hint = "give ca_bundle and remove verify_tls: false" if prov.ca_bundle is None else \
            "ca_bundle is ignored while verify_tls is false; remove verify_tls: false"
        yield Finding("provider-tls", "warning", ("provider", "verify_tls"),
                      "BMC TLS certificates are not verified; anyone on the BMC network can capture the password",
                      hint)
