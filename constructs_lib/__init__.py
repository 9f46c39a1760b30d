"""Reusable constructs, one logical unit each, grouped by tier in sub-packages; stacks only compose them."""
