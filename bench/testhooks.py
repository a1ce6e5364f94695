"""Test hooks of the timing suite, out of users' way.

Two environment variables change what the suite does, so that the tests can exercise
real dying, hanging and slowed worker processes:

    XFBENCH_FAULT=crash:<case id>     that case aborts its worker (os.abort)
    XFBENCH_FAULT=hang:<case id>      that case stalls its worker for an hour
    XFBENCH_SLOWDOWN=1.2:<case id>    every timed call of that case takes 1.2x as long

They are honoured only where ``XFBENCH_TEST_HOOKS=1`` is set as well, which the test
suite does and a user never needs to: a stray ``XFBENCH_FAULT`` left in a shell cannot
break or slow a real run. A run with a hook enabled says so on the console, records the
hooks in its ``fingerprint.json`` and carries a warning at the top of its report.
"""

from __future__ import annotations

import os

ENABLE = "XFBENCH_TEST_HOOKS"
HOOKS = ("XFBENCH_FAULT", "XFBENCH_SLOWDOWN")


def enabled() -> bool:
    return os.environ.get(ENABLE) == "1"


def hook(name: str) -> str:
    """The hook's value, or "" where it is unset or hooks are not enabled."""
    return os.environ.get(name, "") if enabled() else ""


def active() -> dict[str, str]:
    """The hooks that will act in this run."""
    return {name: hook(name) for name in HOOKS if hook(name)}


def ignored() -> list[str]:
    """Hooks that are set but will not act (hooks not enabled)."""
    return [] if enabled() else [name for name in HOOKS if os.environ.get(name)]
