"""Hosts: the connection used by checks and actions alike, the preflight survey of a host, ssh config, inventories."""
