"""Peers: the ways a Python team would otherwise build a webhook dispatcher, for comparison."""
