"""The one place for ZenML and MLflow-tracking glue: materializers, the stack set-up, MLflow
logging for the steps, lineage look-ups through ZenML, and the end-of-run report."""
