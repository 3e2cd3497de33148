"""A local Infobip simulator for development, demos and tests.

``create_app(SandboxConfig(api_keys=["key"]))`` builds the FastAPI app; the ``infobip-sandbox``
command (``python -m infobip_provider.sandbox``) serves it; :mod:`infobip_provider.sandbox.testing`
starts it as a subprocess for tests. See ``README.md`` next to this file.
"""

from __future__ import annotations

from infobip_provider.sandbox.app import create_app
from infobip_provider.sandbox.config import SandboxConfig

__all__ = ["SandboxConfig", "create_app"]
