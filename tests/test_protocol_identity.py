"""Derived identities: stable, distinct per node and network, and matching the key-seed rule."""

from __future__ import annotations

import hashlib

import pytest

from bitcell_sim.protocol.identity import funded_sender, node_key_seed, node_keypair
from bitcell_sim.protocol.keys import KeyPair


def test_node_key_is_the_sha256_of_its_seed() -> None:
    seed = node_key_seed("rc3", "us-east-1")
    assert node_keypair("rc3", "us-east-1").secret == hashlib.sha256(seed.encode()).digest()
    assert node_keypair("rc3", "us-east-1").public_key == KeyPair.from_seed(seed).public_key


def test_keys_differ_by_node_and_network() -> None:
    keys = {
        node_keypair("rc3", "us-east-1").public_key,
        node_keypair("rc3", "us-east-2").public_key,
        node_keypair("rc3-fast", "us-east-1").public_key,
        funded_sender("rc3", 0).public_key,
        funded_sender("rc3", 1).public_key,
    }
    assert len(keys) == 5


def test_negative_sender_index() -> None:
    with pytest.raises(ValueError, match=r"sender index -1 must be >= 0"):
        funded_sender("rc3", -1)
