"""Benchmarks of the user status relay; ``python -m bench [--quick]`` runs them all."""
