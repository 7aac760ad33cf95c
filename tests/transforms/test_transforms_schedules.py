"""The named schedules against Optax's own, with and without warm-up."""

import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rosu_jax.transforms.schedules import SCHEDULES, make_schedule

steps = st.integers(min_value=2, max_value=400)


@settings(max_examples=30, deadline=None)
@given(total=steps, warmup_share=st.floats(0.0, 0.5), value=st.floats(1e-4, 1.0))
def test_cosine_with_warmup_matches_optax(total, warmup_share, value):
    warmup = int(warmup_share * total)
    ours = make_schedule("cosine", value, total, warmup_steps=warmup)
    theirs = (
        optax.warmup_cosine_decay_schedule(0.0, value, warmup, total)
        if warmup
        else optax.cosine_decay_schedule(value, total)
    )
    for t in sorted({0, warmup // 2, warmup, (warmup + total) // 2, total - 1, total, total + 5}):
        np.testing.assert_allclose(float(ours(t)), float(theirs(t)), rtol=1e-5, atol=1e-7)
    assert float(ours(total)) == pytest.approx(0.0, abs=1e-7)  # the decay ends at the last step


@settings(max_examples=30, deadline=None)
@given(total=steps, value=st.floats(1e-4, 1.0))
def test_linear_and_step_match_optax(total, value):
    linear = make_schedule("linear", value, total)
    step = make_schedule("step", value, total)
    theirs_linear = optax.linear_schedule(value, 0.0, total)
    theirs_step = optax.piecewise_constant_schedule(value, {int(total * 0.5): 0.1, int(total * 0.75): 0.1})
    for t in (0, total // 3, total // 2, (3 * total) // 4, total - 1, total + 3):
        np.testing.assert_allclose(float(linear(t)), float(theirs_linear(t)), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(float(step(t)), float(theirs_step(t)), rtol=1e-5, atol=1e-7)


def test_constant_is_a_float_and_an_unknown_name_is_an_error():
    assert make_schedule("constant", 0.3, 10) == 0.3
    with pytest.raises(ValueError, match="unknown schedule 'cosin'; choose one of " + ", ".join(SCHEDULES)):
        make_schedule("cosin", 0.1, 10)
