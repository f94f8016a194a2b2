"""A faithful Proxmox VE API simulator on loopback HTTPS (``labdeck demo``, tests).

Public API::

    from simulator import Simulator, SimulatorConfig, start_in_thread
"""

from simulator.config import DemoLogin, DemoToken, SimulatorConfig
from simulator.server import Simulator, SimulatorHandle, start_in_thread

__all__ = [
    "DemoLogin",
    "DemoToken",
    "Simulator",
    "SimulatorConfig",
    "SimulatorHandle",
    "start_in_thread",
]
