"""Ethernet switches for RoCEv2 fabrics: the same kind of facts as catalog.SWITCHES, for SONiC leaf/spine fabrics.

A 51.2 Tb/s switch (Broadcom Tomahawk 5, NVIDIA Spectrum-4) has 64 cages of 800 GbE; a cage facing hosts is broken
out into two 400 GbE ports (one per ConnectX-7 at 400 GbE), a cage facing spines runs at 800 GbE. SONiC names a
port after its first SerDes lane: cage ``c`` (1-based) of an 8-lane 800G platform is ``Ethernet{8 * (c - 1)}``, and
its 2 x 400G breakout gives ``Ethernet{8 * (c - 1)}`` and ``Ethernet{8 * (c - 1) + 4}`` (SONiC port breakout HLD,
platform.json ``breakout_modes`` "1x800G", "2x400G").
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Ethernet port rates by the spec's name, in Gb/s.
ETHERNET_RATES_GBPS: dict[str, int] = {"200gbe": 200, "400gbe": 400, "800gbe": 800}


@dataclass(frozen=True)
class EthernetSwitch:
    name: str
    description: str
    vendor_reference: str
    asic: str
    gbps: int  # native cage rate
    cages: int
    lanes_per_cage: int  # SerDes lanes per cage: the step of SONiC's EthernetN names
    rack_units: int
    hwsku: str  # SONiC HwSKU in DEVICE_METADATA
    platform: str  # SONiC platform string
    breakouts: dict[int, int] = field(default_factory=dict)  # Gb/s of a breakout port -> ports per cage
    power_kw: float = 1.5

    def per_cage(self, gbps: int) -> int:
        """Ports per cage at ``gbps``: 1 at the native rate, the breakout count below it, 0 when unsupported."""
        if gbps == self.gbps:
            return 1
        return self.breakouts.get(gbps, 0)

    def port_name(self, cage: int, sub: int = 0, per_cage: int = 1) -> str:
        """SONiC interface name of breakout port ``sub`` (0-based) of ``cage`` (1-based)."""
        return f"Ethernet{self.lanes_per_cage * (cage - 1) + sub * (self.lanes_per_cage // per_cage)}"

    def lanes(self, cage: int, sub: int = 0, per_cage: int = 1) -> str:
        """SONiC PORT ``lanes``: the SerDes lanes of the port, comma separated."""
        width = self.lanes_per_cage // per_cage
        first = self.lanes_per_cage * (cage - 1) + sub * width + 1
        return ",".join(str(first + i) for i in range(width))


ETHERNET_SWITCHES: dict[str, EthernetSwitch] = {
    "ais800-64o": EthernetSwitch(
        name="ais800-64o",
        description="Edgecore AIS800-64O, 64 x 800GbE OSFP800 (Broadcom Tomahawk 5, 51.2 Tb/s), 2RU, SONiC",
        vendor_reference="Edgecore AIS800-64O data sheet (64 x 800G OSFP800, breakout 2x400G / 4x200G / 8x100G, "
                         "BCM78900 Tomahawk 5); the AIS800-64D is the QSFP-DD800 sibling",
        asic="Broadcom BCM78900 Tomahawk 5", gbps=800, cages=64, lanes_per_cage=8, rack_units=2,
        hwsku="Accton-AIS800-64O", platform="x86_64-accton_ais800_64o-r0",
        breakouts={400: 2, 200: 4, 100: 8}, power_kw=2.2,
    ),
    "sn5600": EthernetSwitch(
        name="sn5600",
        description="NVIDIA Spectrum-4 SN5600, 64 x 800GbE OSFP (51.2 Tb/s), 2U, Cumulus or SONiC",
        vendor_reference="NVIDIA Spectrum-4 SN5600 switch data sheet (64 x 800GbE OSFP, 2x400G breakout); "
                         "NVIDIA Spectrum-X reference architecture",
        asic="NVIDIA Spectrum-4", gbps=800, cages=64, lanes_per_cage=8, rack_units=2,
        hwsku="Mellanox-SN5600-C256S1", platform="x86_64-nvidia_sn5600-r0",
        breakouts={400: 2, 200: 4, 100: 8}, power_kw=2.0,
    ),
}

# Optics by link rate for bom.csv (twin-port 2 x 400G transceivers towards hosts, 800G DR8 towards spines).
ETHERNET_OPTICS: dict[int, tuple[str, str, str, str]] = {
    # (switch cage towards hosts, switch cage towards switches, host NIC, cable)
    400: ("OSFP800 2x400G 2xSR4 multimode", "OSFP800 800G 2xDR4 single-mode", "OSFP/QSFP112 400G SR4 multimode",
          "MPO-12/APC multimode fibre"),
    200: ("OSFP800 4x200G breakout multimode", "OSFP800 800G 2xDR4 single-mode", "QSFP112 200G SR2 multimode",
          "MPO-12/APC multimode breakout fibre"),
    800: ("OSFP800 800G 2xDR4 single-mode", "OSFP800 800G 2xDR4 single-mode", "OSFP 800G 2xDR4 single-mode",
          "2x MPO-12/APC single-mode fibre"),
}
SWITCH_CABLE = "2x MPO-12/APC single-mode fibre"


def ethernet_switch(name: str) -> EthernetSwitch:
    return ETHERNET_SWITCHES[name]
