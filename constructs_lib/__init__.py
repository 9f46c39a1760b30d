"""Reusable constructs, one logical unit each; stacks only compose them."""
