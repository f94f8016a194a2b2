"""A TrueNAS middleware simulator: JSON-RPC 2.0 over ``wss://127.0.0.1:P/api/current``.

Public API::

    from simulator.truenas import TrueNasSimulator, start_truenas_in_thread
"""

from simulator.truenas.server import TrueNasSimulator
from simulator.truenas.state import RELEASES
from simulator.truenas.thread import TrueNasHandle, start_truenas_in_thread

__all__ = ["RELEASES", "TrueNasHandle", "TrueNasSimulator", "start_truenas_in_thread"]
