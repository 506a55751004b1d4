"""bench/scale's simulator: the real node cores of N nodes on a simulated network.

See world.py for the scenarios, observe.py for what is measured, shared.py for what
the simulated cores share; docs/SCALE.md for the figures.
"""

from .world import Options, World, run

__all__ = ["Options", "World", "run"]
