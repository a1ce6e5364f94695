"""Runs the adapter conformance kit (bench/conformance.py) exactly as a third-party
adapter would: one import."""

from bench.conformance import *  # noqa: F403
