"""Public paths of the service's own web pages, which cards link to and the apps serve."""

from __future__ import annotations

STARTBACK_APP_PATH = "/apps/startback"
