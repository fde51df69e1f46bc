"""Real Prometheus and Alertmanager on loopback with the plan's configuration, scraping stand-in exporters.

The stand-ins are small HTTP servers (threads of the test process) serving the hand-written exposition text in
tests/fixtures/monitoring/; each planned host gets its own loopback address (127.0.0.x) so that ``instance`` labels
stay distinct after the configuration's relabelling. The daemons run under the test's folder with free ports and are
stopped by PID.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from conftest import ROOT, stop_process
from slurm_harness import free_port

FIXTURES = ROOT / "tests" / "fixtures" / "monitoring"
# Debian names the Alertmanager binary prometheus-alertmanager.
BINARIES = ("prometheus", "prometheus-alertmanager", "promtool", "amtool")


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


class StandIn:
    """One exporter stand-in: serves ``text`` at /metrics; tests change ``text`` to make the 'hardware' misbehave."""

    def __init__(self, address: str, text: str):
        self.text = text
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                body = owner.text.encode()
                self.send_response(200 if self.path.startswith("/metrics") else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.address = f"{address}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def wait_for(what: str, probe, deadline_s: float = 60, proc: subprocess.Popen | None = None, log: Path | None = None):
    """Poll ``probe`` until it returns something truthy; fail with the daemon's log when it never does."""
    end = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the daemon exited {proc.returncode}\n{log.read_text() if log else ''}")
        try:
            got = probe()
            if got:
                return got
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"{what}: not seen within {deadline_s} s (last error {last})\n"
                         f"{log.read_text()[-4000:] if log and log.exists() else ''}")


class MonitoringRig:
    """The rendered monitoring/ folder copied under ``root``, rewritten for loopback, and the daemons started on it."""

    def __init__(self, root: Path, files: dict[str, bytes], stand_ins: dict[str, str]):
        """``files``: the renderer's output; ``stand_ins``: host name -> loopback address its exporters use."""
        self.root = root
        self.conf = root / "monitoring"
        for path, data in files.items():
            if path.startswith("monitoring/"):
                out = root / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
        self.prom_dir = self.conf / "prometheus"
        self.exporters: dict[tuple[str, str], StandIn] = {}
        self.stand_ins = stand_ins
        self.procs: list[subprocess.Popen] = []
        self.am_port = free_port()
        self.prom_port = free_port()

    def add_stand_in(self, host: str, exporter: str, text: str) -> StandIn:
        s = StandIn(self.stand_ins[host], text.replace("@HOST@", host))
        self.exporters[(host, exporter)] = s
        return s

    def rewrite(self) -> None:
        """Targets -> the stand-ins (hosts without one -> a closed port), 1 s intervals, the local Alertmanager."""
        for f in sorted((self.prom_dir / "targets").glob("*/*.json")):
            exporter = f.parent.name
            groups = json.loads(f.read_text())
            for g in groups:
                g["targets"] = [self._address(t.rsplit(":", 1)[0], exporter) for t in g["targets"]]
            f.write_text(json.dumps(groups))
        cfg_path = self.prom_dir / "prometheus.yml"
        cfg = yaml.safe_load(cfg_path.read_text())
        cfg["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        for job in cfg["scrape_configs"]:
            for sd in job["file_sd_configs"]:
                sd["refresh_interval"] = "1s"
        cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{self.am_port}"]
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
        am_path = self.conf / "alertmanager" / "alertmanager.yml"
        am = yaml.safe_load(am_path.read_text())
        am["route"].update(group_wait="1s", group_interval="1s")
        am_path.write_text(yaml.safe_dump(am, sort_keys=False))

    def _address(self, host: str, exporter: str) -> str:
        s = self.exporters.get((host, exporter))
        return s.address if s else "127.0.0.1:1"

    def start(self) -> None:
        am_log, prom_log = self.root / "alertmanager.log", self.root / "prometheus.log"
        self.am_log, self.prom_log = am_log, prom_log
        with am_log.open("wb") as out:
            self.am = subprocess.Popen(
                ["prometheus-alertmanager", f"--config.file={self.conf / 'alertmanager' / 'alertmanager.yml'}",
                 f"--storage.path={self.root / 'am-data'}", f"--web.listen-address=127.0.0.1:{self.am_port}",
                 "--cluster.listen-address="], stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(self.am)
        with prom_log.open("wb") as out:
            self.prom = subprocess.Popen(
                ["prometheus", f"--config.file={self.prom_dir / 'prometheus.yml'}",
                 f"--storage.tsdb.path={self.root / 'prom-data'}", f"--web.listen-address=127.0.0.1:{self.prom_port}"],
                stdout=out, stderr=subprocess.STDOUT, cwd=self.root)
        self.procs.append(self.prom)
        wait_for("alertmanager ready", lambda: get_json(f"{self.am_url}/api/v2/status"), proc=self.am, log=am_log)
        wait_for("prometheus ready", lambda: get_json(f"{self.prom_url}/api/v1/status/config"), proc=self.prom,
                 log=prom_log)

    @property
    def am_url(self) -> str:
        return f"http://127.0.0.1:{self.am_port}"

    @property
    def prom_url(self) -> str:
        return f"http://127.0.0.1:{self.prom_port}"

    def query(self, expr: str) -> list[dict]:
        from urllib.parse import quote

        return get_json(f"{self.prom_url}/api/v1/query?query={quote(expr)}")["data"]["result"]

    def alerts(self) -> list[dict]:
        return get_json(f"{self.am_url}/api/v2/alerts")

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop_process(p)
        for s in self.exporters.values():
            s.close()
