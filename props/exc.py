"""Exceptions raised by the props library.

Every error derives from :class:`PropError`; those that resemble a built-in error also
derive from it, so callers may catch either (as gpiozero's ``exc.py`` does).
"""

from __future__ import annotations


class PropError(Exception):
    """Base class for every error raised by a prop."""


class UnknownAction(PropError, ValueError):
    """The prop does not accept that command."""


class BadActionParams(PropError, ValueError):
    """The command's parameters are missing or of the wrong type."""


class PropConfigError(PropError, ValueError):
    """A prop's configuration cannot be built on this hardware."""


class RFIDError(PropError, IOError):
    """The RFID reader answered with a corrupt or unexpected frame."""
