"""TOFU (Maini et al. 2024, arXiv 2401.06121): its metrics, its legacy per-item evaluation logs and reference files."""
