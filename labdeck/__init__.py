"""labdeck: a dashboard and an MCP server for Proxmox VE and TrueNAS, on one async core.

This package is the command line that wires the core to its faces (``tui``, ``mcp_server``)
and to the embedded ``simulator``.
"""

__version__ = "0.1.0"
