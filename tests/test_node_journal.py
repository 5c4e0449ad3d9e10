"""The pool journal: records appended, read back (a torn last record ignored), rewritten."""

from __future__ import annotations

from pathlib import Path

from bitcell_sim.node.journal import PoolJournal


def test_append_load_and_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "pool.journal"
    journal = PoolJournal(path)
    for raw in (b"one", b"", b"three" * 100):
        journal.append(raw)
    assert journal.appended == 3
    assert PoolJournal(path).load() == [b"one", b"", b"three" * 100]
    assert path.stat().st_mode & 0o777 == 0o600
    journal.rewrite([b"kept"])
    assert journal.appended == 0 and journal.load() == [b"kept"]
    journal.append(b"after")  # still appending to the new file
    assert journal.load() == [b"kept", b"after"]
    journal.close()


def test_a_torn_or_corrupt_tail_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "pool.journal"
    journal = PoolJournal(path)
    journal.append(b"whole")
    journal.close()
    with path.open("ab") as handle:
        handle.write(b"\x00\x00\x00\x09half")  # a record cut short by a crash
    assert PoolJournal(path).load() == [b"whole"]
    path.write_bytes(b"\xff\xff\xff\xff" + b"x" * 10)  # a length no record can have
    assert PoolJournal(path).load() == []
