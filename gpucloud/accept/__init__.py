"""Acceptance: nodes earn their way into service. ``gpucloud accept`` tests held nodes as Slurm jobs (node.py on
each node, then two-node NCCL runs per scalable unit) and resumes the ones that pass; docs/acceptance.md."""
