"""Shared pieces of the causal-LM tests: the fixture folder and a quick jit.

Compiling dominates these tests on CPU; XLA's backend optimisation level 0 roughly halves it, so every program
here (forward passes, gradients, generation) is compiled with it.
"""

import functools
from pathlib import Path

import jax
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PARITY_CASES = ("llama2", "llama3_tied", "mistral", "qwen2", "qwen3")
COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def pytest_generate_tests(metafunc):
    """A test taking ``parity_case`` runs once per Hugging Face fixture (see fixtures/make_parity_fixtures.py)."""
    if "parity_case" in metafunc.fixturenames:
        metafunc.parametrize("parity_case", PARITY_CASES)


@pytest.fixture(scope="session")
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def quick_jit():
    """``jax.jit`` with the quick compiler options."""
    return functools.partial(jax.jit, compiler_options=COMPILER_OPTIONS)


@pytest.fixture(scope="session")
def compiler_options() -> dict:
    return COMPILER_OPTIONS
