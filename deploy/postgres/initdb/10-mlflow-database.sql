-- Run once by the postgres image's entrypoint on an empty data directory (mounted at
-- /docker-entrypoint-initdb.d): POSTGRES_DB creates `dagster`; MLflow's backend store gets its own database.
CREATE DATABASE mlflow;
