"""gpucloud: one YAML spec for a bare-metal GPU cloud, planned offline into everything needed to build and run it."""

__version__ = "0.1.0"
