"""The README's code example runs as written (it is what a newcomer copies first)."""

import re
from pathlib import Path

import jax
import numpy as np

README = Path(__file__).resolve().parents[2] / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_opens_with_the_two_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S).group(1)
    assert "rosu-unlearn" in first_block and "pytest" in first_block


def test_readme_examples_run_and_report_coupling(capsys):
    """The Optax example and the language-model API in ten-odd lines: each runs as written and prints a κ."""
    blocks = python_blocks()
    assert len(blocks) == 2
    for block in blocks:
        code_lines = [line for line in block.splitlines() if line.strip()]
        assert len(code_lines) <= 15
        namespace: dict = {}
        with jax.numpy_dtype_promotion("standard"):
            exec(compile(block, str(README), "exec"), namespace)
        kappa = float(capsys.readouterr().out.strip().splitlines()[-1])
        assert -1.0 <= kappa <= 1.0 and np.isfinite(kappa)
    assert namespace["state"].opt_state.count == 1  # the language-model example: one ROSU step
