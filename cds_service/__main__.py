"""`python -m cds_service` runs the service, like `cds-service serve`."""

import sys

from cds_service.cli import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:] or ["serve"]))
