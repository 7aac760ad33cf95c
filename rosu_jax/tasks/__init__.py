"""Tasks: what is unlearned from what. A task owns its data, its model boundary, its loss terms and its metrics."""
