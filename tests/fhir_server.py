"""Runs the real FHIR R4 server (sekmet-fhir, in its own venv) on 127.0.0.1 for integration tests.

`make test` installs it into .venv-fhir and passes SEKMET_BIN. The server keeps its SQLite data in a
temp dir, runs with the simulator off (it would otherwise "fulfil" orders and change test data),
and is loaded by POSTing transaction Bundles, shared organisations and practitioners first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.servers import ROOT, free_port, stop, wait_until_ready

FIXTURES = ROOT / "fixtures" / "fhir"
# The Synthea patients and seed scenarios ship inside the package (`cds-service seed` loads them).
BUNDLED = ROOT / "cds_service" / "tools" / "fixtures"


def sekmet_bin() -> str:
    candidates = [
        os.environ.get("SEKMET_BIN"),
        str(ROOT / ".venv-fhir" / "bin" / "sekmet"),
        shutil.which("sekmet"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(
        "sekmet-fhir is not installed: run `make test` (it installs it into .venv-fhir)"
    )


class FhirServer:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def post_bundle(self, bundle: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            self.base_url,
            content=orjson.dumps(bundle),
            headers={"content-type": "application/fhir+json"},
            timeout=60,
        )
        if response.status_code >= 300:
            raise RuntimeError(
                f"FHIR transaction failed: HTTP {response.status_code}: {response.text[:500]}"
            )
        result: dict[str, Any] = response.json()
        return result

    def load_file(self, path: Path) -> dict[str, Any]:
        return self.post_bundle(orjson.loads(path.read_bytes()))

    def put(self, resource: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.base_url}/{resource['resourceType']}/{resource['id']}"
        response = httpx.put(
            url,
            content=orjson.dumps(resource),
            headers={"content-type": "application/fhir+json"},
            timeout=30,
        )
        if response.status_code >= 300:
            raise RuntimeError(
                f"PUT {url} failed: HTTP {response.status_code}: {response.text[:500]}"
            )
        result: dict[str, Any] = response.json()
        return result

    def put_all(self, resources: list[dict[str, Any]]) -> None:
        """Load resources in one transaction (PUT by id, so tests can re-run on the same server)."""
        self.post_bundle(
            {
                "resourceType": "Bundle",
                "type": "transaction",
                "entry": [
                    {
                        "fullUrl": f"{self.base_url}/{r['resourceType']}/{r['id']}",
                        "resource": r,
                        "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
                    }
                    for r in resources
                ],
            }
        )


@contextmanager
def running_fhir_server(data_dir: Path) -> Iterator[FhirServer]:
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/fhir"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir / "settings.yaml"
    config.write_text(
        f"base_url: {base_url}\nhost: 127.0.0.1\nport: {port}\ndata_dir: {data_dir / 'data'}\n"
        "simulator:\n  enabled: false\nlog_inbound: false\n",
        encoding="utf-8",
    )
    log_file = (data_dir / "sekmet.log").open("wb")
    process = subprocess.Popen(
        [sekmet_bin(), "serve", "-c", str(config)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        cwd=data_dir,
    )
    try:
        wait_until_ready(process, f"{base_url}/metadata", data_dir / "sekmet.log", seconds=60)
        server = FhirServer(base_url)
        server.load_file(BUNDLED / "synthea" / "00-shared-orgs-practitioners.transaction.json")
        yield server
    finally:
        stop(process)
        log_file.close()
