"""The demo data shipped inside the package: the seed scenarios with their draft-order files, and
the Synthea patients they are loaded after.

They are package data (pyproject `package-data`), read through importlib.resources, so
`cds-service seed` and the order files `fire` is pointed at are found the same way from a wheel,
an editable install or the Docker image, whatever the working directory.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


class BundledDataMissing(Exception):
    """The package's data files are not on disk (a zipped install, or a build without them)."""


def fixtures_dir() -> Path:
    root = resources.files("cds_service.tools") / "fixtures"
    # pip and uv unpack wheels, so this is a directory on disk; a package imported from a zip
    # archive has no directory to glob, and `seed` must say so instead of loading nothing.
    if not isinstance(root, Path):
        raise BundledDataMissing(
            f"the bundled fixtures are inside an archive ({root}): install the package unzipped"
        )
    if not root.is_dir():
        raise BundledDataMissing(f"the bundled fixtures are missing: no directory {root}")
    return root


def seed_dir() -> Path:
    """One transaction Bundle per card topic, `scenarios.toml`, and `orders/`."""
    return fixtures_dir() / "seed"


def orders_dir() -> Path:
    """The draft orders the seed scenarios are fired with (`fire --order`)."""
    return seed_dir() / "orders"


def synthea_dir() -> Path:
    """Synthea patients as PUT transaction Bundles, shared organisations first (`00-*`)."""
    return fixtures_dir() / "synthea"
