"""The engine lab of pulumi_harness with its install path: a real phone-home server and a stand-in installer.

``InstallLab`` is ``pulumi_harness.Lab`` with the lab's management network moved to loopback too
(127.100.0.0/22), the lab's discovered-MAC file beside the spec (so every node but the provisioning server ctl01 has
a reservation), and:

* the phone-home server of gpucloud/phonehome.py, in a thread, on ctl01's planned management address and a free
  port (the spec's provisioning.http_port), taking the plan's nodes and writing ``known_hosts``;
* a stand-in installer (a thread) that watches every BMC but ctl01's: when a system goes from Off to On with a
  PXE boot override set, which is what the Redfish provider does to install a node, it "installs" for
  ``install_seconds`` and then posts a fresh SSH host key for that node to its phone-home URL, from the node's
  planned management address, as cloud-init's phone_home module does. Nodes in ``silent`` never post;
* an ansible-playbook stand-in that, besides pulumi_harness's checks and log, records which hosts known_hosts holds
  when each layer starts (``known_log``): the configuration layers must see every installed node's key.

Everything listens on loopback; threads and emulators are stopped by ``stop``.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlencode

from pulumi_harness import ROOT, Lab

from gpucloud import phonehome
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan

MGMT_CIDR = "127.100.0.0/22"
SERVER = "ctl01"

STAND_IN = """#!/bin/sh
# ansible-playbook stand-in: the layer must run in the project root, with the plan's inventory on disk.
[ -f plans/lab/inventory/hosts.yml ] || { echo "no plans/lab/inventory/hosts.yml in $PWD" >&2; exit 9; }
echo "$*" >> "$GPUCLOUD_TEST_LAYER_LOG"
# Which hosts known_hosts names now (the second name of each line: <address>,<host>,<fqdn>).
echo "$* known:$(cut -d' ' -f1 "$GPUCLOUD_TEST_KNOWN_HOSTS" 2>/dev/null | cut -d, -f2 | sort -u | tr '\\n' ' ')" \\
  >> "$GPUCLOUD_TEST_KNOWN_LOG"
"""


def _free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class InstallLab(Lab):
    def __init__(self, tmp: Path, engine: Path, *, phone_home_timeout: int = 3600, install_seconds: float = 6.0):
        self.phone_home_timeout = phone_home_timeout
        self.http_port = 0
        self.install_seconds = install_seconds
        self.silent: set[str] = set()
        self.posts: list[tuple[str, float]] = []  # (node, time.monotonic() of the post that the server took)
        self.known_hosts = tmp / "known_hosts"
        self.known_log = tmp / "known.log"
        self._halt = threading.Event()
        self._threads: list[threading.Thread] = []
        self.server = None
        (tmp / "discovered").mkdir()
        shutil.copy(ROOT / "clusters" / "discovered" / "lab.yaml", tmp / "discovered" / "lab.yaml")
        super().__init__(tmp, engine)
        try:
            (tmp / "bin" / "ansible-playbook").write_text(STAND_IN)
            self.env["GPUCLOUD_TEST_KNOWN_HOSTS"] = str(self.known_hosts)
            self.env["GPUCLOUD_TEST_KNOWN_LOG"] = str(self.known_log)
            self._start_server()
            self._start_installer()
        except Exception:
            self.stop()
            raise

    def write_spec(self, name: str, replace: dict[str, str]) -> Path:
        path = super().write_spec(name, replace)
        text = path.read_text()
        old = "management: {cidr: 10.100.0.0/22,"
        assert old in text
        text = text.replace(old, f"management: {{cidr: {MGMT_CIDR},")
        if not self.http_port:
            self.http_port = _free_port("127.100.0.129")
        keys = "provisioning:\n"
        assert keys in text
        extra = f"  http_port: {self.http_port}\n"
        if self.phone_home_timeout != 3600:  # the default stays unwritten, as in the lab spec
            extra += f"  phone_home_timeout: {self.phone_home_timeout}\n"
        text = text.replace(keys, keys + extra)
        path.write_text(text)
        return path

    def _start_server(self) -> None:
        plan = build_plan(check_spec(self.spec).spec)
        assert plan.provision is not None and plan.provision.server == SERVER
        self.nodes = phonehome.nodes_from_plan(plan)
        root = self.tmp / "http"
        (root / "ipxe").mkdir(parents=True)
        self.base = f"{plan.provision.http_base}/phone-home/"  # as the seeds spell it
        self.server = phonehome.make_server(root, self.nodes, self.known_hosts, plan.provision.server_address,
                                            self.http_port)
        t = threading.Thread(target=self.server.serve_forever, daemon=True)
        t.start()
        self._threads.append(t)

    def _start_installer(self) -> None:
        keys = self.tmp / "host-keys"
        keys.mkdir()
        self._keys = keys
        for node, bmc in self.bmcs.items():
            if node == SERVER:
                continue
            t = threading.Thread(target=self._watch, args=(node, bmc), daemon=True)
            t.start()
            self._threads.append(t)

    def _watch(self, node: str, bmc) -> None:
        """Install ``node`` each time its BMC powers it on with a one-time PXE boot set."""
        was = None
        while not self._halt.is_set():
            try:
                system = bmc.system()
            except Exception:  # the emulator is stopping
                return
            now = system["PowerState"]
            # The fake driver keeps no "Once" (it reports Continuous): the target alone says a PXE boot is set.
            pxe = system.get("Boot", {}).get("BootSourceOverrideTarget") == "Pxe"
            if was == "Off" and now == "On" and pxe:
                self._install(node)
            was = now
            self._halt.wait(0.3)

    def _install(self, node: str) -> None:
        if self._halt.wait(self.install_seconds) or node in self.silent:
            return
        key = self._keys / f"{node}-{len(self.posts)}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node}", "-f", str(key)],
                       check=True)
        form = urlencode({"pub_key_ed25519": Path(f"{key}.pub").read_text().strip(), "hostname": node})
        host, port = self.base.split("//", 1)[1].split("/", 1)[0].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10,
                                          source_address=(self.nodes[node].address, 0))
        try:
            conn.request("POST", f"/phone-home/{node}", body=form,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
            status = conn.getresponse().status
        finally:
            conn.close()
        assert status == 200, f"phone-home of {node} answered {status}"
        self.posts.append((node, time.monotonic()))

    def known_at_layers(self) -> list[set[str]]:
        """The hosts known_hosts held when each layer started, in the order the layers ran."""
        if not self.known_log.exists():
            return []
        return [set(line.split(" known:", 1)[1].split()) for line in self.known_log.read_text().splitlines()]

    def stop(self) -> None:
        self._halt.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        super().stop()
        for t in self._threads:
            t.join(timeout=15)
