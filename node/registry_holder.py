"""The registry view a running node trusts, and how old it is.

The refresh loop (in :mod:`permitnet.node.app`) replaces the view when a newer verified snapshot
arrives; the lifecycle services read it. Staleness is explicit: :meth:`RegistryHolder.age` and
:meth:`RegistryHolder.require` name how old the data is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from permitnet.node.errors import NodeError

if TYPE_CHECKING:
    from permitnet.protocol.registry_view import RegistryView

__all__ = ["RegistryHolder", "RegistryUnavailableError"]


class RegistryUnavailableError(NodeError):
    """The node has no verified registry data yet, so it cannot check keys or estimates."""

    status_hint = 503
    code = "registry_unavailable"


@dataclass(slots=True)
class RegistryHolder:
    """The current verified registry view (None until the first one is fetched)."""

    view: RegistryView | None = None
    #: When the node last accepted a view (Unix seconds).
    updated_at: int | None = None
    #: The last refresh failure, if the most recent attempt failed.
    last_error: str | None = None

    def replace(self, view: RegistryView, now: int) -> bool:
        """Install ``view`` if it is newer; return whether it replaced the old one."""
        self.last_error = None
        self.updated_at = now
        if self.view is not None and view.version <= self.view.version:
            return False
        self.view = view
        return True

    def require(self) -> RegistryView:
        """Return the view.

        Raises:
            RegistryUnavailableError: no view has been fetched yet.
        """
        if self.view is None:
            detail = f" (last error: {self.last_error})" if self.last_error else ""
            raise RegistryUnavailableError(
                f"no verified registry data yet: keys and estimates cannot be checked{detail}"
            )
        return self.view

    def expired(self, now: int) -> bool:
        """Whether the view is past its snapshot's expiry."""
        return self.view is not None and now >= self.view.expires_at
