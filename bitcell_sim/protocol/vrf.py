"""The devnet's verifiable random output per block (stand-in for BitCell's ECVRF).

``vrf_prove(keypair, vrf_input)`` returns ``(output, proof)``: proof = the proposer's low-S
signature over SHA-256(domain ‖ input), output = SHA-256(proof), so anyone holding the proposer's
key can check it with ``vrf_verify``. The input chain is the node's: the genesis hash for
height 1, otherwise the previous block's ``vrf_output`` (``vrf_input_for(parent)``).
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from bitcell_sim.protocol import keys

VRF_DOMAIN = b"bitcell-sim/vrf/v1"
VRF_OUTPUT_SIZE_BYTES = 32


class _Header(Protocol):
    @property
    def height(self) -> int: ...
    @property
    def vrf_output(self) -> bytes: ...
    def hash(self) -> bytes: ...


def _message(vrf_input: bytes) -> bytes:
    return hashlib.sha256(VRF_DOMAIN + vrf_input).digest()


def vrf_prove(keypair: keys.KeyPair, vrf_input: bytes) -> tuple[bytes, bytes]:
    """Return ``(output32, proof64)`` for ``vrf_input`` under ``keypair``."""
    proof = keypair.sign(_message(vrf_input))
    return hashlib.sha256(proof).digest(), proof


def vrf_verify(public_key: bytes, vrf_input: bytes, output: bytes, proof: bytes) -> bool:
    """True if ``proof`` is ``public_key``'s proof over ``vrf_input`` and yields ``output``."""
    if len(proof) != keys.SIGNATURE_SIZE_BYTES:
        return False
    if hashlib.sha256(proof).digest() != output:
        return False
    return keys.verify(public_key, _message(vrf_input), proof)


def vrf_input_for(parent: _Header) -> bytes:
    """The VRF input of the child of ``parent``: genesis hash at height 1, else parent output."""
    return parent.hash() if parent.height == 0 else parent.vrf_output
