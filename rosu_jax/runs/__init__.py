"""Layer 6: runs. Train the original and reference models (checkpointed), unlearn with every method variant,
evaluate through the task, cache rows, report (tables with statistics, strict JSON, plots). Generic over tasks."""

from rosu_jax.runs.config import RunConfig, stable_hash
from rosu_jax.runs.pipeline import RunOutput, run_pipeline
from rosu_jax.runs.report import TableSpec, markdown_tables, write_report

__all__ = ["RunConfig", "RunOutput", "TableSpec", "markdown_tables", "run_pipeline", "stable_hash", "write_report"]
