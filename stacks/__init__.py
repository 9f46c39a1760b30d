"""Thin stacks: they compose constructs and wire grants, nothing else."""
