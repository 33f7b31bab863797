"""kizuna: a workflow-orchestrated CRM data pipeline for direct-to-consumer shops."""

from kizuna.runtime import configure_environment

# Before anything imports prefect, dbt or great_expectations (all imported lazily or
# after this package): keep their state in the work tree and their telemetry off.
configure_environment()

__version__ = "0.1.0"
