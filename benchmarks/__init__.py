"""What ROSU costs and where the time goes: benchmark scripts run as ``python -m benchmarks.<script>`` from the
repository root (``bash benchmarks/run_all.sh`` runs them all); see ``benchmarks/README.md``."""
