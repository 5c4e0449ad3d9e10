"""Why a transaction was not accepted: the reason written to the record and the counted category.

:func:`reject_reason` turns a node's JSON-RPC error (code, message) or a transport failure into
``TRANSACTIONS.reject_reason``: the shared names (``pool full``, ``already in pool``,
``unreachable``) where they apply, else the node's message verbatim. :func:`reject_category`
groups reasons for counting (``nonce``, ``signature``, ``balance``, ``gas``, ``encoding``,
``timeout``, ``http``, ``other``), so "Invalid nonce: expected 3, got 2" and "…expected 5…" count
together. :data:`CATEGORIES` lists them in report order.
"""

from __future__ import annotations

from bitcell_sim.results.records import REJECT_DUPLICATE, REJECT_POOL_FULL, REJECT_UNREACHABLE

REJECT_TIMEOUT = "timeout"
REJECT_HTTP_PREFIX = "http "

CATEGORIES = (
    REJECT_POOL_FULL,
    REJECT_DUPLICATE,
    "nonce",
    "signature",
    "balance",
    "gas",
    "encoding",
    REJECT_UNREACHABLE,
    REJECT_TIMEOUT,
    "http",
    "other",
)

# Substrings of the node's messages (FACTS §2.6) and the category each one belongs to.
_MESSAGE_CATEGORIES = (
    ("Transaction pool full", REJECT_POOL_FULL),
    ("Transaction already in pool", REJECT_DUPLICATE),
    ("Invalid nonce", "nonce"),
    ("nonce is not zero", "nonce"),
    ("Invalid transaction signature", "signature"),
    ("Insufficient balance", "balance"),
    ("gas price and limit", "gas"),
    ("Gas price", "gas"),
    ("Gas limit", "gas"),
    ("Failed to deserialize transaction", "encoding"),
    ("Invalid hex encoding", "encoding"),
    ("Missing transaction data", "encoding"),
    ("Transaction data must be a string", "encoding"),
)


def reject_reason(code: int | None, message: str, status: int | None = None) -> str:
    """The ``reject_reason`` of a record: a shared name, ``http <status>``, or the message.

    ``code`` is the JSON-RPC error code (None for failures below JSON-RPC); ``status`` the HTTP
    status when the node answered outside JSON-RPC (0 or None when nothing answered).
    """
    if code is not None:
        if "Transaction pool full" in message:
            return REJECT_POOL_FULL
        if "Transaction already in pool" in message:
            return REJECT_DUPLICATE
        return message
    if status:
        return f"{REJECT_HTTP_PREFIX}{status}"
    if "timed out" in message.lower() or "timeout" in message.lower():
        return REJECT_TIMEOUT
    return REJECT_UNREACHABLE


def reject_category(reason: str) -> str:
    """The counted category of a ``reject_reason`` (one of :data:`CATEGORIES`)."""
    if reason in (REJECT_POOL_FULL, REJECT_DUPLICATE, REJECT_UNREACHABLE, REJECT_TIMEOUT):
        return reason
    if reason.startswith(REJECT_HTTP_PREFIX):
        return "http"
    for needle, category in _MESSAGE_CATEGORIES:
        if needle in reason:
            return category
    return "other"
