"""Exceptions raised by the props library.

Every error derives from :class:`PropError`; those that resemble a built-in error also
derive from it, so callers may catch either (as gpiozero's ``exc.py`` does).
"""

from __future__ import annotations


class PropError(Exception):
    """Base class for every error raised by a prop."""


class PropClosed(PropError, RuntimeError):
    """The prop was used after :meth:`close`."""


class UnknownAction(PropError, ValueError):
    """The prop does not accept that command."""


class BadActionParams(PropError, ValueError):
    """The command's parameters are missing or of the wrong type."""


class PinConflict(PropError, ValueError):
    """Two props of one node use the same GPIO pin, or a pin a bus reserves."""


class PropConfigError(PropError, ValueError):
    """A prop's configuration cannot be built on this hardware."""


class RFIDError(PropError, IOError):
    """The RFID reader answered with a corrupt or unexpected frame."""
