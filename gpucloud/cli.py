"""The gpucloud command line: the typer callbacks, one per command. A callback imports what its command needs inside
its body (the commands that act on a plan keep their glue in ``gpucloud.commands``), so a run loads only its own
command's modules. Each command wires pipeline stages together and decides the exit code:

0 success, 1 findings at the failure level (validate) or differences found, 2 usage errors, unreadable input, or a
spec with errors where output would be written, 3 a change destroys data (diff, pr-comment), 70 an internal error
(a bug in gpucloud: an unexpected exception; ``main`` prints its traceback), so CI never mistakes a crash for a result,
130 interrupted (typer's own mapping of KeyboardInterrupt).
"""

from __future__ import annotations

import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

from gpucloud import __version__

app = typer.Typer(
    name="gpucloud",
    help="Plan, validate and build bare-metal GPU clusters from one YAML spec.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
# EX_SOFTWARE of sysexits(3): far from the small codes the commands use, so a crash never reads as a result.
EXIT_INTERNAL = 70


class Output(str, Enum):
    text = "text"
    json = "json"


class HostsOutput(str, Enum):
    text = "text"
    csv = "csv"
    json = "json"


class FailOn(str, Enum):
    error = "error"
    warning = "warning"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gpucloud {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """gpucloud turns a cluster spec into hosts, fabric, Slurm, Ansible and Pulumi plans."""


def _print_findings(checked_list, output: Output, per_check: int | None = None) -> None:
    from gpucloud import report

    if output is Output.json:
        results = []
        for c in checked_list:
            results.append({
                "file": c.loaded.file,
                "valid": not any(f.level == "error" for f in c.findings),
                "findings": [f.as_dict() for f in c.findings],
            })
        report.as_json(results, sys.stdout)
        return
    colour = sys.stderr.isatty()
    for c in checked_list:
        report.text(c.findings, {c.loaded.file: c.loaded.text}, sys.stderr, colour,
                    report.PER_CHECK if per_check is None else per_check)


def _summary(checked) -> str:
    errors = sum(f.level == "error" for f in checked.findings)
    warnings = sum(f.level == "warning" for f in checked.findings)
    if errors:
        return f"{checked.loaded.file}: invalid ({errors} error(s), {warnings} warning(s))"
    return f"{checked.loaded.file}: valid" + (f" ({warnings} warning(s))" if warnings else "")


@app.command()
def validate(
    specs: List[Path] = typer.Argument(..., help="Spec files to validate.", show_default=False),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text or json."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Lowest finding level that fails validation."),
    ignore: List[str] = typer.Option([], "--ignore", help="Check id to skip (repeatable); see 'gpucloud checks'."),
    max_per_check: int = typer.Option(20, "--max-per-check", min=0,
                                      help="Findings of one check shown per file in text output, the rest counted "
                                           "(0: all). JSON output lists every finding."),
) -> None:
    """Validate specs: schema, then semantic checks. Every mistake is reported at once."""
    from gpucloud.pipeline import check_spec

    checked = [check_spec(path, tuple(ignore)) for path in specs]
    _print_findings(checked, output, max_per_check)
    if output is Output.text:
        for c in checked:
            typer.echo(_summary(c))
    if any(c.unreadable for c in checked):
        raise typer.Exit(EXIT_USAGE)
    if any(c.fails(fail_on.value) for c in checked):
        raise typer.Exit(EXIT_FINDINGS)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the spec (for editors and other tools)."""
    from gpucloud.spec.schema import schema_text

    sys.stdout.write(schema_text())


@app.command()
def checks() -> None:
    """List the semantic checks and their ids (for --ignore)."""
    from gpucloud.checks import all_checks

    for check_id, fn in all_checks().items():
        doc = (fn.__doc__ or "").strip().splitlines()
        typer.echo(f"{check_id:28} {doc[0] if doc else ''}")


@app.command()
def catalog(
    model: Optional[str] = typer.Argument(None, help="One server model: every field, as hardware.models takes it."),
    spec: Optional[Path] = typer.Option(None, "--spec", help="Also the models of this spec (resolved)."),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text or json."),
) -> None:
    """List the hardware models, GPUs and switches specs can name, with every field of each server model."""
    from gpucloud import catalog as cat

    servers = dict(cat.SERVERS)
    if spec is not None:
        servers.update(_checked_or_exit(spec).spec.models)
    if model is not None and model not in servers:
        from gpucloud.findings import choices_hint

        typer.echo(f"error: unknown model {model!r}; {choices_hint(model, servers, 'models')}", err=True)
        raise typer.Exit(EXIT_USAGE)
    names = [model] if model is not None else sorted(servers)
    fields = {name: cat.model_fields(servers[name]) for name in names}
    if output is Output.json:
        from gpucloud import jsonout

        data = {"servers": fields}
        if model is None:
            data["gpus"] = {k: {"name": g.name, "memory_gib": g.memory_gib, "tdp_w": g.tdp_w}
                            for k, g in sorted(cat.GPUS.items())}
            data["switches"] = {k: {"description": s.description, "rate": s.rate, "ports": s.ports}
                                for k, s in sorted(cat.SWITCHES.items())}
        sys.stdout.write(jsonout.dumps(data))
        return
    typer.echo("servers:")
    for name, f in fields.items():
        gpu, cpu = f["gpu"], f["cpu"]
        hcas = [f"{g['count']} x {g['rate']} ({', '.join(g['devices'])})" for g in (f["compute_hcas"],)
                if g["count"]] + [f"storage {g['count']} x {g['rate']} ({', '.join(g['devices'])})"
                                  for g in (f["storage_hcas"],) if g["count"]]
        typer.echo(f"  {name:20} {f['description']}")
        typer.echo(f"  {'':20} cpu {cpu['sockets']} x {cpu['cores_per_socket']} cores x {cpu['threads_per_core']} "
                   f"threads ({cpu['model']}), {f['memory_gib']} GiB; "
                   + (f"gpu {gpu['count']} x {gpu['model']} {gpu['memory_gib']} GiB on sockets "
                      f"{','.join(map(str, gpu['sockets']))}{', nvswitch' if f['nvswitch'] else ''}; " if gpu["count"]
                      else "")
                   + (f"hcas {'; '.join(hcas)}; " if hcas else "")
                   + f"nvme {f['nvme']['drives']} x {f['nvme']['drive_tb']} TB; {f['rack_units']}U, "
                     f"{f['power_kw']} kW")
    if model is not None:
        return
    typer.echo("gpus:")
    for name, g in sorted(cat.GPUS.items()):
        typer.echo(f"  {name:20} {g.name}, {g.memory_gib} GiB, {g.tdp_w} W")
    typer.echo("switches:")
    for name, s in sorted(cat.SWITCHES.items()):
        typer.echo(f"  {name:20} {s.description}")


def _checked_or_exit(spec: Path, ignore: tuple[str, ...] = (), fail_on: str = "error"):
    """Load and check a spec for a command that produces output; on errors print them and exit 2."""
    from gpucloud.pipeline import check_spec

    checked = check_spec(spec, ignore)
    if checked.fails(fail_on):
        _print_findings([checked], Output.text)
        typer.echo(_summary(checked) + "; nothing was written", err=True)
        raise typer.Exit(EXIT_USAGE)
    return checked


@app.command()
def hosts(
    spec: Path = typer.Argument(..., help="Spec file."),
    output: HostsOutput = typer.Option(HostsOutput.text, "--output", "-o", help="text, csv or json."),
) -> None:
    """Show the planned hosts: a hostlist per pool, or every host with its addresses (csv, json)."""
    from gpucloud.hostlist import pool_hostlist
    from gpucloud.plan.hosts import plan_hosts

    checked = _checked_or_exit(spec)
    pools = plan_hosts(checked.spec)
    if output is HostsOutput.text:
        for pp in pools:
            typer.echo(f"{pp.pool.name:12} {len(pp.hosts):6} x {pp.model.name:18} {pp.gpus:7} GPUs  "
                       f"{pool_hostlist(pp.pool)}")
        total_hosts = sum(len(pp.hosts) for pp in pools)
        total_gpus = sum(pp.gpus for pp in pools)
        typer.echo(f"{'total':12} {total_hosts:6}{'':23}{total_gpus:7} GPUs")
        return
    if output is HostsOutput.json:
        from gpucloud import jsonout
        from gpucloud.plan import build_plan
        from gpucloud.render.plan_json import hosts_section

        sys.stdout.write(jsonout.dumps(hosts_section(build_plan(checked.spec))))
        return
    import csv

    rails = max((len(h.ipoib) for pp in pools for h in pp.hosts[:1]), default=0)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["name", "pool", "index", "rack", "slot", "u", "management", "bmc", "storage",
                     *[f"ipoib{r}" for r in range(rails)]])
    for pp in pools:
        for h in pp.hosts:
            ib = list(h.ipoib) + [""] * (rails - len(h.ipoib))
            writer.writerow([h.name, h.pool, h.index, h.rack, h.slot, h.u, h.management or "", h.bmc or "",
                             h.storage or "", *ib])


@app.command()
def plan(
    spec: Path = typer.Argument(..., help="Spec file."),
    out: Path = typer.Option(..., "--out", help="Plan folder to write (replaced atomically if it holds a plan and nothing else)."),
    ignore: List[str] = typer.Option([], "--ignore", help="Check id to skip (repeatable)."),
    fail_on: FailOn = typer.Option(FailOn.error, "--fail-on", help="Lowest finding level that stops the plan."),
) -> None:
    """Write the offline plan of a spec into a folder: plan.json and every rendered file."""
    from gpucloud.write import RefusedOutput, check_target, write_tree

    def refused(exc: RefusedOutput) -> typer.Exit:
        typer.echo(f"error: refusing to write the plan: {exc}; nothing was written", err=True)
        typer.echo(f"  hint: {exc.hint}", err=True)
        return typer.Exit(EXIT_USAGE)

    try:
        check_target(out)  # before planning: a wrong --out fails at once, even for a large spec
    except RefusedOutput as exc:
        raise refused(exc)
    checked = _checked_or_exit(spec, tuple(ignore), fail_on.value)
    from gpucloud.pipeline import plan_files

    files = plan_files(checked)
    try:
        write_tree(out, files)
    except RefusedOutput as exc:
        raise refused(exc)
    except OSError as exc:
        typer.echo(f"error: could not write {out}: {exc}; the earlier plan, if any, is unchanged", err=True)
        raise typer.Exit(EXIT_USAGE)
    size = sum(len(b) for b in files.values())
    warnings = sum(f.level == "warning" for f in checked.findings)
    if warnings:
        _print_findings([checked], Output.text)
    typer.echo(f"wrote {len(files)} file(s), {size:,} bytes, to {out}" +
               (f" ({warnings} warning(s))" if warnings else ""))


@app.command()
def verify(
    spec: Path = typer.Argument(..., help="Spec file."),
    limit: Optional[str] = typer.Option(None, "--limit", help="Only these hosts (hostlist, e.g. gpu[001-016])."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts",
                                               help="known_hosts file to check host keys against "
                                                    "[default: ~/.ssh/known_hosts]; unknown keys are refused."),
    user: Optional[str] = typer.Option(None, "--user", help="SSH user [default: the current user]."),
    key: Optional[Path] = typer.Option(None, "--key", help="Private key file [default: agent and ~/.ssh keys]."),
    port: int = typer.Option(22, "--port", min=1, max=65535, help="SSH port."),
    timeout: float = typer.Option(30.0, "--timeout", min=1.0, help="Seconds allowed per host, all collectors."),
    parallel: int = typer.Option(32, "--parallel", min=1, max=1024, help="Hosts checked at once."),
    address: List[str] = typer.Option([], "--address", help="HOST=ADDRESS to reach a host at (repeatable)."),
    addresses: Optional[Path] = typer.Option(None, "--addresses", help="YAML mapping of host: address."),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text or json."),
    progress: Optional[bool] = typer.Option(None, "--progress/--no-progress",
                                            help="Progress bar on stderr [default: when stderr is a terminal]."),
    max_input_mib: int = typer.Option(256, "--max-input-mib", min=1,
                                      help="Largest known_hosts or address file read, in MiB."),
) -> None:
    """Check live nodes against the plan over SSH (read-only): GPUs, HCAs, IPoIB, mounts, services, Slurm.

    Exit 0 when every host conforms, 1 when any does not or cannot be reached, 2 when verify cannot run."""
    from gpucloud.commands.verify import main as verify_main

    raise typer.Exit(verify_main(spec, limit, known_hosts, user, key, port, timeout, parallel, address, addresses,
                                 output.value, progress, max_input_mib))


fabric_app = typer.Typer(help="InfiniBand fabric: compare a live fabric with the plan.", no_args_is_help=True)
app.add_typer(fabric_app, name="fabric")


@fabric_app.command("verify")
def fabric_verify(
    spec: Path = typer.Argument(..., help="Spec file."),
    ibnetdiscover: Path = typer.Option(..., "--ibnetdiscover", help="Output of 'ibnetdiscover' on the fabric."),
    fabric: str = typer.Option("compute", "--fabric", help="Which fabric of the spec the dump is from."),
    subnet: List[str] = typer.Option([], "--subnet", help="Check only this subnet (e.g. rail3; repeatable)."),
    rail: List[int] = typer.Option([], "--rail", min=0, help="Check only this rail's subnet (repeatable)."),
    max_input_mib: int = typer.Option(256, "--max-input-mib", min=1, help="Largest dump read, in MiB."),
) -> None:
    """List missing, unexpected and swapped cables by device and port; exit 1 if any, or if the dump leaves
    subnets unchecked that --subnet/--rail did not leave out."""
    from gpucloud.commands.fabric import run_cli

    raise typer.Exit(run_cli(spec, ibnetdiscover, fabric, _checked_or_exit, subnet, rail, max_input_mib))


@fabric_app.command("lldp")
def fabric_lldp(
    spec: Path = typer.Argument(..., help="Spec file."),
    tables: Path = typer.Option(..., "--tables", help="Folder of <switch>.json: 'lldpcli show neighbors -f json'."),
    fabric: str = typer.Option("compute", "--fabric", help="Which Ethernet fabric of the spec."),
) -> None:
    """Ethernet fabrics: list every cable whose LLDP neighbour differs from the plan, by device and port; exit 1 if
    any."""
    from gpucloud.commands.fabric_lldp import run_cli

    raise typer.Exit(run_cli(spec, tables, fabric, _checked_or_exit))


provision_app = typer.Typer(help="Provisioning: discover MACs from the BMCs, serve installs.", no_args_is_help=True)
app.add_typer(provision_app, name="provision")


@provision_app.command("serve")
def provision_serve(
    spec: Path = typer.Argument(..., help="Spec file."),
    root: Path = typer.Option(..., "--root", help="The plan's provision/http folder (with images/ added)."),
    known_hosts: Path = typer.Option(..., "--known-hosts", help="known_hosts file the posted host keys go to."),
    bind: Optional[str] = typer.Option(None, "--bind", help="Address to listen on [default: the planned one]."),
    port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Port [default: the planned one]."),
) -> None:
    """Serve iPXE scripts, images and install data over HTTP and record the host keys nodes phone home."""
    from gpucloud.commands.provision import serve

    raise typer.Exit(serve(spec, root, known_hosts, bind, port, _checked_or_exit,
                               lambda m: typer.echo(m, err=True)))


@provision_app.command("discover")
def provision_discover(
    spec: Path = typer.Argument(..., help="Spec file."),
    limit: List[str] = typer.Option([], "--limit", help="Only these hosts (repeatable)."),
    accept_changes: bool = typer.Option(False, "--accept-changes",
                                        help="Record a boot MAC that changed (a replaced board)."),
) -> None:
    """Read every host's MAC addresses from its BMC (Redfish) into clusters/discovered/<name>.yaml beside the spec.

    The BMC password comes from the environment variable GPUCLOUD_SECRET_<SECRET NAME> (bmc-password ->
    GPUCLOUD_SECRET_BMC_PASSWORD). Exit 1 when a boot MAC changed and --accept-changes was not given."""
    from gpucloud.commands.provision import run_cli

    raise typer.Exit(run_cli(spec, limit, accept_changes, _checked_or_exit, lambda m: typer.echo(m, err=True)))


@app.command()
def diff(
    paths: List[Path] = typer.Argument(..., help="OLD NEW (specs or plan folders), or one spec with --base.",
                                       show_default=False),
    base: Optional[str] = typer.Option(None, "--base", help="Git revision to take the old spec from "
                                                            "(e.g. origin/main)."),
    output: Output = typer.Option(Output.text, "--output", "-o", help="text (Markdown) or json."),
) -> None:
    """Show every change between two plans with its impact and the order to carry it out.

    Exit 0 when nothing changed, 1 when something changed, 3 when a change destroys data, 2 on errors."""
    from gpucloud.commands.diff import run_diff

    raise typer.Exit(run_diff(list(paths), base, output is Output.json))


@app.command("pr-comment")
def pr_comment(
    specs: List[Path] = typer.Argument(..., help="Changed spec files.", show_default=False),
    base: str = typer.Option(..., "--base", help="Git revision the pull request merges into (e.g. origin/main)."),
    allow_destroy: bool = typer.Option(False, "--allow-destroy", help="Destroying data is approved (a label)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the comment body here [default: stdout]."),
) -> None:
    """Build the pull-request comment: each spec's plan summary and classified changes, behind one marker.

    Exit 0 no change, 1 changes, 3 destroys data without --allow-destroy, 2 a spec with errors."""
    from gpucloud.commands.diff import run_pr_comment

    raise typer.Exit(run_pr_comment(list(specs), base, allow_destroy, out))


@app.command()
def render(
    spec: Path = typer.Argument(..., help="Spec file."),
    out: Path = typer.Option(Path("inventory"), "--out", help="Folder that receives <cluster>/hosts.yml."),
) -> None:
    """Write the Ansible inventory of a spec into OUT/<cluster>/ (replaced atomically)."""
    from gpucloud.commands.render import run_cli

    raise typer.Exit(run_cli(spec, out, _checked_or_exit))


@app.command()
def converge(
    spec: Path = typer.Argument(..., help="Spec file."),
    limit: Optional[str] = typer.Option(None, "--limit", help="Ansible host pattern to converge (e.g. 'gpu[01:04]')."),
    tags: Optional[str] = typer.Option(None, "--tags", help="Comma-separated layers/tags to run (e.g. slurm,compute)."),
    check: bool = typer.Option(False, "--check", help="Report what would change, change nothing."),
    inventory: Optional[Path] = typer.Option(None, "--inventory", "-i",
                                             help="Inventory to use instead of the spec's generated one."),
    extra_vars: List[str] = typer.Option([], "--extra-vars", "-e", help="KEY=VALUE or @FILE, passed to Ansible."),
    plan_dir: Optional[Path] = typer.Option(None, "--plan", help="Apply this plan folder instead of planning SPEC."),
    known_hosts: Optional[Path] = typer.Option(None, "--known-hosts",
                                               help="known_hosts file to check host keys against, strictly (the "
                                                    "phone-home's) [default: ssh's own, ~/.ssh/known_hosts]."),
) -> None:
    """Run the playbooks over the cluster through ansible-runner; exit 1 when any host failed or was unreachable."""
    from gpucloud.commands.converge import run_cli

    raise typer.Exit(run_cli(spec, limit, tags, check, inventory, extra_vars, _checked_or_exit, plan_dir,
                             known_hosts))


@app.command()
def apply(
    spec: Path = typer.Argument(..., help="Spec file."),
    stack: Optional[str] = typer.Option(None, "--stack", help="Stack to update (see the plan's pulumi/stacks.json)."),
    all_stacks: bool = typer.Option(False, "--all", help="Every stack of the cluster, the shared one first; all are "
                                    "previewed (and gated) before any changes."),
    backend: Optional[str] = typer.Option(None, "--backend", help="Pulumi backend URL (default: file backend "
                                          "under the project, .pulumi-state/)."),
    preview: bool = typer.Option(False, "--preview", help="Show what would change, change nothing."),
    allow_replace: bool = typer.Option(False, "--allow-replace", help="Go ahead when the update replaces or deletes "
                                       "nodes: they roll in batches within each pool's rollout budget, each drained "
                                       "in Slurm first (otherwise refused with exit 3, naming them)."),
    refresh: bool = typer.Option(False, "--refresh", help="Read every resource back first (pulumi refresh), so "
                                 "drift such as a node powered off shows and is repaired."),
) -> None:
    """Run `pulumi up` for one stack of the spec through the Pulumi Automation API (exit 3: refused, it would
    replace or delete nodes)."""
    from gpucloud.commands.apply import run_cli

    raise typer.Exit(run_cli(spec, stack, backend, preview, _checked_or_exit, lambda m: typer.echo(m, err=True),
                             allow_replace=allow_replace, refresh=refresh, all_stacks=all_stacks))


@app.command()
def accept(
    spec: Path = typer.Argument(..., help="Spec file."),
    limit: Optional[str] = typer.Option(None, "--limit", help="Only these hosts (hostlist, e.g. gpu[001-016])."),
    parallel: int = typer.Option(8, "--parallel", min=1, max=256,
                                 help="Test jobs at once, so a wave of reboots cannot start a fleet-wide storm."),
    report: Path = typer.Option(Path("accept-report"), "--report", help="Folder for accept.json and accept.md."),
    hold: bool = typer.Option(False, "--hold", help="Only drain the nodes with reason 'accept: pending' (for a "
                                                    "repaired or reinstalled node), test nothing."),
    account: Optional[str] = typer.Option(None, "--account", help="Slurm account for the test jobs."),
    srun_arg: List[str] = typer.Option([], "--srun-arg", help="Extra srun argument for every test job "
                                                              "(repeatable, e.g. --mpi=pmix)."),
    pairs: bool = typer.Option(True, "--pairs/--no-pairs", help="Two-node NCCL runs within each scalable unit."),
) -> None:
    """Test held nodes as Slurm jobs (DCGM, NCCL, HCA links, ib_write_bw, then NCCL in pairs per scalable unit);
    resume those that pass, keep the others drained with the failing test as the reason.

    Exit 0 when every tested node passed, 1 when any failed, 2 when acceptance cannot run."""
    from gpucloud.commands.accept import run_cli

    raise typer.Exit(run_cli(spec, limit, parallel, report, hold, account, list(srun_arg), pairs, _checked_or_exit,
                             lambda m: typer.echo(m, err=True)))


def main() -> None:
    """Run the command line. A user mistake exits 1 or 2 from inside a command; an exception that escapes a command
    is a bug in gpucloud, reported with its traceback and exit code 70 (never 1, which means findings)."""
    try:
        app()
    except Exception:  # noqa: BLE001 - the last line of defence; SystemExit and KeyboardInterrupt pass through
        import traceback

        traceback.print_exc()
        sys.stderr.write(f"gpucloud {__version__}: internal error (exit {EXIT_INTERNAL}): this is a bug in gpucloud, "
                         "not a problem with your spec or the cluster. Please report it with the command line and the "
                         "traceback above.\n")
        sys.exit(EXIT_INTERNAL)


if __name__ == "__main__":  # pragma: no cover
    main()
