"""WMDP and MMLU: the hazardous-knowledge benchmark and its utility check, scored through lm-evaluation-harness."""
