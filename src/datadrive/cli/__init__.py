"""The `datadrive` command line."""
