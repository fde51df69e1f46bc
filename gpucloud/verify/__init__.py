"""Compare live nodes with the Plan over SSH: ``gpucloud verify``.

The stages mirror the rest of gpucloud and are kept apart so each is testable without a network:

* ``expect``      what the Plan says one host should look like (GPUs, HCAs, IPoIB, mounts, services);
* ``known_hosts`` strict host-key checking against an OpenSSH known_hosts file (never auto-accepting);
* ``collect``     one read-only shell script per host over paramiko, its output split into sections;
* ``parse``       the tools' documented output formats into plain records;
* ``compare``     facts against expectations, giving ``HostFinding`` records;
* ``report``      findings grouped by problem (hostlist-compressed), as text or JSON;
* ``run``         the thread pool, per-host timeout and progress bar.

Nothing here is imported by the planning commands: paramiko and rich are loaded only by ``verify``.
"""
