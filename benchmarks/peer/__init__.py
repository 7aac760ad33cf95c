"""The PyTorch peer comparison: ``python -m benchmarks.peer`` (the driver and the JAX half) against ``torch_side``,
run in a torch environment of its own. Imports nothing, so the torch side's environment needs no JAX."""
