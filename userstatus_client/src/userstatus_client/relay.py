"""Deprecated name of :mod:`userstatus_client.http_api`, kept so that existing imports work.

The module was renamed because "relay" names the whole service the client talks to, not its HTTP
client. Importing this module warns once; it will be removed in the client's next minor version.
"""

from __future__ import annotations

import warnings

from userstatus_client.http_api import *  # noqa: F403  (the re-export is the point)
from userstatus_client.http_api import __all__ as __all__

warnings.warn(
    "userstatus_client.relay was renamed userstatus_client.http_api; import from there "
    "(or from userstatus_client itself)",
    DeprecationWarning,
    stacklevel=2,
)
