"""The napari dock widget (Qt). Everything below ``_qt`` is UI; the portal client, data
access and layer building it drives live outside, free of Qt."""

from .portal_widget import PortalWidget

__all__ = ["PortalWidget"]
