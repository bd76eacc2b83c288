"""The tool's signing keys: the current private key (with its ``kid``) and the public key set.

The keys live in a file beside the database, mode 0600 (``db/lti_keys.py`` keeps it, so that
``python -m db lti rotate-key`` and the app share one implementation). Sign a JWT as the
tool with the current key::

    key = tool_keys(store).current()
    token = jwt.encode(claims, key.private_pem, algorithm="RS256", headers={"kid": key.kid})
"""

from __future__ import annotations

from db import SigningKey, Store, ToolKeys

__all__ = ["SigningKey", "ToolKeys", "tool_keys"]


def tool_keys(store: Store) -> ToolKeys:
    """The tool's keys for this store's database (made on first use)."""
    return store.lti_tool_keys()
