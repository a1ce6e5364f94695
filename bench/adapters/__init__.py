"""Adapter discovery through the ``xfbench.adapters`` entry-point group.

Entry points are read without importing anything they name; an adapter's module (and
with it its framework) is imported only by :func:`get_adapter`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from functools import cache

from bench.adapters.base import Adapter

GROUP = "xfbench.adapters"


class UnknownFrameworkError(ValueError):
    pass


class FrameworkNotInstalledError(RuntimeError):
    pass


#: ``name=module:Class[,name=module:Class...]``: adapters added without installing a
#: package (an adapter under development, the harness's own known-clock test adapter).
EXTRA_ADAPTERS_ENV = "XFBENCH_ADAPTERS"


def _extra_entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    out = {}
    for item in filter(
        None, (s.strip() for s in os.environ.get(EXTRA_ADAPTERS_ENV, "").split(","))
    ):
        name, sep, value = item.partition("=")
        if not sep or ":" not in value or not name.strip():
            raise RuntimeError(
                f"{EXTRA_ADAPTERS_ENV}: {item!r} is not name=module:Class "
                "(e.g. myfw=mypkg.adapter:MyAdapter)"
            )
        out[name.strip()] = importlib.metadata.EntryPoint(name.strip(), value.strip(), GROUP)
    return out


@cache
def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    eps = {ep.name: ep for ep in importlib.metadata.entry_points(group=GROUP)}
    eps.update(_extra_entry_points())
    if not eps:
        raise RuntimeError(
            f"no adapters registered under the {GROUP!r} entry-point group: is xfbench "
            "installed (`pip install -e .`)?"
        )
    return eps


def framework_names() -> tuple[str, ...]:
    """Every registered framework, in a stable order."""
    return tuple(sorted(_entry_points()))


def check_framework(name: str) -> str:
    if name not in _entry_points():
        raise UnknownFrameworkError(
            f"unknown framework {name!r}; valid frameworks: {', '.join(framework_names())}"
        )
    return name


def install_hint(name: str) -> str:
    return (
        f"create its environment with `tox -e {name} --notest` "
        f"(or `pip install -e '.[{name}]'` in a Python 3.11 virtualenv of its own)"
    )


def adapter_class(name: str) -> type[Adapter]:
    """The adapter class, imported without its framework (adapters import it lazily)."""
    return _entry_points()[check_framework(name)].load()


def get_adapter(name: str) -> Adapter:
    """Import and instantiate the adapter ``name``.

    Raises :class:`UnknownFrameworkError` listing the valid names, or
    :class:`FrameworkNotInstalledError` saying how to install the framework.
    """
    cls = adapter_class(name)
    if importlib.util.find_spec(cls.package) is None:
        raise FrameworkNotInstalledError(
            f"framework {name!r} ({cls.package}) is not installed in this interpreter; "
            + install_hint(name)
        )
    return cls()


def framework_of_environment(env: str) -> str:
    """The framework whose adapter names ``env`` among its tox environments
    (``torch-gpu`` -> ``torch``); any other name is returned as it is."""
    for name in framework_names():
        try:
            if env in adapter_class(name).environments.values():
                return name
        except Exception:  # an adapter that cannot load is not this one
            continue
    return env


def is_installed(name: str) -> bool:
    """Whether ``name``'s framework can be imported here, without importing it."""
    return importlib.util.find_spec(adapter_class(name).package) is not None
