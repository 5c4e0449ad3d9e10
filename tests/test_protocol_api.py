"""The protocol package's errors and modules (its ``__all__`` is pinned in test_public_api)."""

from __future__ import annotations

import importlib
import pkgutil

import bitcell_sim.protocol as protocol


def test_errors_belong_to_the_hierarchy() -> None:
    from bitcell_sim.errors import BitcellSimError

    assert issubclass(protocol.ProtocolError, BitcellSimError)
    assert issubclass(protocol.ProtocolError, ValueError)
    assert issubclass(protocol.DecodeError, protocol.ProtocolError)


def test_every_module_has_a_docstring_and_imports() -> None:
    names = [m.name for m in pkgutil.iter_modules(protocol.__path__)]
    assert len(names) >= 15
    for name in names:
        module = importlib.import_module(f"bitcell_sim.protocol.{name}")
        doc = module.__doc__ or ""
        assert 2 <= len(doc.strip().splitlines()) <= 6, name
