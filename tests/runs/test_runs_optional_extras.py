"""A plain ``pip install -e .`` has none of the optional extras (lm-eval, qwix, datasets): the main job and the
help must work without them, and a task that needs one fails before any work, saying what to install."""

import subprocess
import sys
import textwrap

from rosu_jax.core.paths import cache_root  # noqa: F401 - the package itself imports without the extras

# sys.modules[name] = None makes ``import name`` fail and ``importlib.util.find_spec(name)`` return None, exactly as
# on a machine where the package is not installed.
WITHOUT_EXTRAS = "import sys; sys.modules.update(dict.fromkeys(['lm_eval', 'qwix', 'datasets']))\n"


def run_without_extras(code: str, tmp_path) -> subprocess.CompletedProcess:
    script = WITHOUT_EXTRAS + textwrap.dedent(code)
    env_code = f"import os; os.environ['ROSU_JAX_CACHE'] = {str(tmp_path / 'cache')!r}\n"
    return subprocess.run(
        [sys.executable, "-c", env_code + script], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )


def test_main_job_and_help_without_the_extras(tmp_path):
    proc = run_without_extras(
        f"""
        from rosu_jax.cli import main
        try:
            main(["--help"])
        except SystemExit as exit_:
            assert exit_.code == 0, exit_.code
        argv = ["--methods", "FT", "--scenario", "classwise", "--epochs", "1", "--unlearn-epochs", "1",
                "--train-per-class", "20", "--no-progress", "--work-dir", {str(tmp_path / "work")!r}]
        sys.exit(main(argv))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "wmdp" in proc.stdout and "| FT |" in proc.stdout


def test_wmdp_without_lm_eval_fails_before_work_naming_the_extra(tmp_path):
    proc = run_without_extras(
        f"""
        from rosu_jax.cli import main
        sys.exit(main(["wmdp", "--out", {str(tmp_path / "out")!r}, "--work-dir", {str(tmp_path / "work")!r}]))
        """,
        tmp_path,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "pip install 'rosu-jax[lm-eval]'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").rglob("*.json"))
