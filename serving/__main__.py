"""`python -m serving` (make serve): the prediction server on CHURN_SERVE_PORT for CHURN_HOME."""

import sys

from pydantic import ValidationError

if __name__ == "__main__":
    try:
        from serving.server import main  # reads and validates the settings
    except ValidationError as exc:
        sys.exit(f"invalid server settings: {exc}")
    main()
