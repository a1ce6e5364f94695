"""xfbench: a cross-framework deep-learning benchmarking harness.

Importing ``bench`` (or any of its core modules) never imports a deep-learning
framework: adapters load theirs only when they are chosen.
"""

__version__ = "0.1.0"
