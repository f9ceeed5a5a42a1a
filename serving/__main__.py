"""`python -m serving` (make serve): the prediction server on CHURN_SERVE_PORT for CHURN_HOME."""

from serving.server import main

if __name__ == "__main__":
    main()
