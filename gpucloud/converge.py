"""Run the playbooks over a cluster through ansible-runner (the command is ``gpucloud.commands.converge``).

Each run gets a fresh private folder (ansible-runner reuses ``env/cmdline`` from earlier runs in the same folder)
holding the plan the run applies and the runner's artefacts. Progress goes to stderr as tasks start and hosts fail;
``summary`` prints the per-host table, and ``Result.ok`` is false when any host failed or was unreachable.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, TextIO

ROOT = Path(__file__).resolve().parent.parent
PLAYBOOK = ROOT / "playbooks" / "site.yml"
CONFIG = ROOT / "ansible.cfg"
COLUMNS = ("ok", "changed", "failures", "dark", "skipped")
HEADINGS = ("ok", "changed", "failed", "unreachable", "skipped")


@dataclass
class Result:
    rc: int
    hosts: dict[str, dict[str, int]] = field(default_factory=dict)  # host -> {ok, changed, failures, dark, ...}
    messages: dict[str, str] = field(default_factory=dict)  # host -> first failure message

    @property
    def failed(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.get("failures"))

    @property
    def unreachable(self) -> list[str]:
        return sorted(h for h, s in self.hosts.items() if s.get("dark"))

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.failed and not self.unreachable


def _stats(raw: dict | None) -> dict[str, dict[str, int]]:
    hosts: dict[str, dict[str, int]] = {}
    for key in COLUMNS:
        for host, n in ((raw or {}).get(key) or {}).items():
            hosts.setdefault(host, dict.fromkeys(COLUMNS, 0))[key] = n
    for host in ((raw or {}).get("processed") or {}):
        hosts.setdefault(host, dict.fromkeys(COLUMNS, 0))
    return dict(sorted(hosts.items()))


class Progress:
    """Prints one line per task and one per host that fails or cannot be reached."""

    def __init__(self, out: TextIO):
        self.out = out
        self.tasks = 0
        self.messages: dict[str, str] = {}

    def __call__(self, event: dict) -> bool:
        kind = event.get("event", "")
        data = event.get("event_data", {})
        if kind == "playbook_on_play_start":
            print(f"== {data.get('play', '')}", file=self.out, flush=True)
        elif kind == "playbook_on_task_start":
            self.tasks += 1
            print(f"  [{self.tasks}] {data.get('task', '')}", file=self.out, flush=True)
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
            host = data.get("host", "?")
            res = data.get("res", {}) or {}
            msg = str(res.get("msg") or res.get("stderr") or "").strip().splitlines()
            word = "UNREACHABLE" if kind == "runner_on_unreachable" else "FAILED"
            text = f"{word}: {msg[0] if msg else ''}"[:300]
            self.messages.setdefault(host, text)
            print(f"    {host}: {text}", file=self.out, flush=True)
        return True  # keep the event in the artefacts


def site_layers() -> dict[str, Path]:
    """site.yml's layers: tag -> the playbook it imports, in site order."""
    import yaml

    out = {}
    for entry in yaml.safe_load(PLAYBOOK.read_text()):
        tags = entry.get("tags") or []
        if "ansible.builtin.import_playbook" in entry and len(tags) == 1:
            out[tags[0]] = PLAYBOOK.parent / entry["ansible.builtin.import_playbook"]
    return out


def layer_playbook(tags: str | None, work: Path) -> tuple[Path, str | None]:
    """The playbook and tags to run. Tags that all name layers of site.yml run those layers' playbooks alone (a
    wrapper in ``work`` importing them in site order), because Ansible runs every role's argument validation,
    tagged ``always``, whatever ``--tags`` says: ``--tags provision`` through site.yml would still ask for the
    Slurm secrets. Other tags go to site.yml as they are."""
    wanted = [t.strip() for t in (tags or "").split(",") if t.strip()]
    layers = site_layers()
    if not wanted or not all(t in layers for t in wanted):
        return PLAYBOOK, tags
    import yaml

    chosen = [{"name": f"Layer {t}", "ansible.builtin.import_playbook": str(p)} for t, p in layers.items()
              if t in wanted]
    wrapper = work / "layers.yml"
    wrapper.write_text("---\n" + yaml.safe_dump(chosen, sort_keys=False))
    return wrapper, None


def ssh_known_hosts_env(known_hosts: Path | None) -> dict[str, str]:
    """Ansible's environment that makes ssh check host keys against ``known_hosts`` only, never accepting a new key
    (ansible.cfg keeps host_key_checking on); empty for None (ssh's own files, ~/.ssh/known_hosts)."""
    if known_hosts is None:
        return {}
    return {"ANSIBLE_SSH_EXTRA_ARGS": f"-o UserKnownHostsFile={Path(known_hosts).resolve()} "
                                      "-o StrictHostKeyChecking=yes"}


def run(plan_dir: Path, inventory: Path, *, limit: str | None = None, tags: str | None = None,
        check: bool = False, extravars: dict | None = None, extra_args: Sequence[str] = (),
        work: Path | None = None, out: TextIO = sys.stderr, envvars: dict | None = None,
        known_hosts: Path | None = None) -> Result:
    """Run site.yml (or the layers ``tags`` names) with ``gpucloud_plan_dir`` pointing at ``plan_dir``. ``work``: the
    run's private folder. ``known_hosts``: the only file host keys are checked against (the phone-home's), strictly."""
    import ansible_runner

    work = Path(work or tempfile.mkdtemp(prefix="gpucloud-converge-"))
    private = work / "runner"
    if private.exists():
        shutil.rmtree(private)  # never reuse a runner folder: it replays the previous command line
    private.mkdir(parents=True)
    cmdline = list(extra_args)
    if check:
        cmdline.append("--check")
    # The ansible-playbook installed beside this interpreter comes first, so a virtual environment that is not
    # activated (.venv/bin/gpucloud converge ...) still runs its own Ansible.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)])
    env = {"PATH": path, "ANSIBLE_CONFIG": str(CONFIG), "ANSIBLE_ROLES_PATH": str(ROOT / "playbooks" / "roles"),
           "ANSIBLE_HOME": str(work / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
           **ssh_known_hosts_env(known_hosts), **(envvars or {})}
    progress = Progress(out)
    playbook, tags = layer_playbook(tags, work)
    r = ansible_runner.run(
        private_data_dir=str(private), playbook=str(playbook), inventory=str(inventory), limit=limit, tags=tags,
        extravars={"gpucloud_plan_dir": str(Path(plan_dir).resolve()), **(extravars or {})},
        cmdline=" ".join(cmdline) or None, envvars=env, event_handler=progress, quiet=True,
        project_dir=str(ROOT))
    return Result(rc=r.rc if r.rc is not None else 1, hosts=_stats(r.stats), messages=progress.messages)


def summary(result: Result, out: TextIO) -> None:
    width = max([len(h) for h in result.hosts] + [4])
    print(f"{'host':{width}}  " + "  ".join(f"{h:>11}" for h in HEADINGS), file=out)
    for host, s in result.hosts.items():
        print(f"{host:{width}}  " + "  ".join(f"{s.get(k, 0):>11}" for k in COLUMNS), file=out)
    for host in result.unreachable:
        print(f"UNREACHABLE {host}: {result.messages.get(host, '')}", file=out)
    for host in result.failed:
        print(f"FAILED {host}: {result.messages.get(host, '')}", file=out)
    state = "ok" if result.ok else "FAILED"
    print(f"converge {state}: {len(result.hosts)} host(s), {len(result.failed)} failed, "
          f"{len(result.unreachable)} unreachable", file=out)
