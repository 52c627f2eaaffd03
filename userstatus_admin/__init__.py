"""Operators' commands for a stage or the local relay (installed into the project's virtualenv)."""
