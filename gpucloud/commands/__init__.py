"""The glue of the commands that act on a plan: each module takes a command's arguments from ``gpucloud.cli``, calls
the library (spec, plan, render, write, verify, converge, accept, ...), prints what the user reads and returns the
exit code. The library modules stay free of printing and exit codes.

``cli.py`` holds the typer callbacks and imports a module of this package only inside the callback that needs it, so
``gpucloud validate`` never loads Ansible, Pulumi or paramiko. A command receives ``checked_or_exit`` (load and check
the spec, or print the findings and exit 2) from ``cli.py`` rather than importing typer itself.
"""
