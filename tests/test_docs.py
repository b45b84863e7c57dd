"""The docs build strictly, their Python blocks run, and the notebooks run from a clean kernel.

Every fenced ``python`` block of README.md and docs/*.md (any page added there is picked up) runs
on its own: compiled and executed in a fresh namespace, in a temporary working folder, with
nothing defined by another block. So that they run in seconds, optimisation runs are made tiny
while they do: :func:`tiny_run_configs` caps every :class:`~maco_tf.core.config.RunConfig` built
during a block at 2 steps and 2 crops, at the model's input size (the blocks themselves are not
rewritten; this is the one place runs are shrunk). ``MACO_TF_DOCS_TINY=0`` runs the blocks with
the settings they are written with::

    MACO_TF_DOCS_TINY=0 python -m pytest tests/test_docs.py -k block

The notebooks are executed with ``MACO_TF_NOTEBOOK_STEPS=4`` (a few optimisation steps) in a
kernel that runs *this* interpreter, whatever kernels the machine has installed. The same
helper re-executes them in place with more steps for the committed outputs::

    python -m tests.test_docs 64          # rewrites notebooks/*.ipynb with their outputs
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
STEPS_VARIABLE = "MACO_TF_NOTEBOOK_STEPS"
KERNEL_NAME = "maco_tf_notebook_test"
DOC_PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TINY_VARIABLE = "MACO_TF_DOCS_TINY"
#: Caps of a docs block's runs under ``MACO_TF_DOCS_TINY`` (the default).
TINY_STEPS, TINY_CROPS = 2, 2
MAX_NOTEBOOK_BYTES = 2_000_000


def _missing(*modules: str) -> list[str]:
    return [name for name in modules if importlib.util.find_spec(name) is None]


def execute_notebook(
    path: Path, steps: int, write: bool = False, timeout: int = 900
) -> tuple[object, float]:
    """Run a notebook from a clean kernel of this interpreter with ``steps`` steps.

    Returns the executed notebook and the wall time; with ``write`` the notebook is saved in
    place with its outputs.
    """
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory() as jupyter_path:
        # A kernel spec of our own, first on JUPYTER_PATH: the kernel runs sys.executable (the
        # venv under test), not whatever "python3" kernel the machine has registered.
        spec_dir = Path(jupyter_path) / "kernels" / KERNEL_NAME
        spec_dir.mkdir(parents=True)
        spec = {
            "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "maco_tf (test)",
            "language": "python",
            "env": {STEPS_VARIABLE: str(steps), "TF_CPP_MIN_LOG_LEVEL": "3"},
        }
        (spec_dir / "kernel.json").write_text(json.dumps(spec))
        previous = os.environ.get("JUPYTER_PATH")
        os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [jupyter_path, previous]))
        try:
            client = NotebookClient(
                notebook,
                timeout=timeout,
                kernel_name=KERNEL_NAME,
                resources={"metadata": {"path": str(path.parent)}},
            )
            start = time.perf_counter()
            client.execute()
            elapsed = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("JUPYTER_PATH", None)
            else:
                os.environ["JUPYTER_PATH"] = previous
    if write:
        _strip_native_logs(notebook)
        # keep the generic kernel name in the file, not the temporary one
        notebook.metadata["kernelspec"] = {
            "display_name": "Python 3",
            "language": "python",
            "name": "python3",
        }
        nbformat.write(notebook, path)
    return notebook, elapsed


#: Lines TensorFlow's C++ runtime writes to stderr (absl / XLA / CUDA probing): not for readers.
_NATIVE_LOG = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\).*"
    r"|[IWE]\d{4} [\d:.]+ +\d+ \S+:\d+\].*"
    r"|\d{4}-\d\d-\d\d [\d:.]+: [IWE] \S+:\d+\].*)$"
)


def _strip_native_logs(notebook: object) -> None:
    """Drop TensorFlow's native log lines from the stderr outputs saved in the notebook."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.get("output_type") == "stream" and output.get("name") == "stderr":
                lines = [line for line in output.text.splitlines() if not _NATIVE_LOG.match(line)]
                if not any(line.strip() for line in lines):
                    continue
                output.text = "\n".join(lines) + "\n"
            kept.append(output)
        cell.outputs = kept


def _is_figure(output: dict) -> bool:
    return bool({"image/png", "image/jpeg"} & set(output.get("data", {})))


def _outputs(notebook: object) -> list[dict]:
    return [out for cell in notebook.cells if cell.cell_type == "code" for out in cell.outputs]


def test_notebooks_exist():
    names = [path.name for path in NOTEBOOKS]
    assert names[:3] == [
        "01_quickstart.ipynb",
        "02_maco_fourier_pixel.ipynb",
        "03_attributions.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_has_outputs(path):
    """The committed notebooks carry their pictures, no errors, and stay small."""
    assert path.stat().st_size < MAX_NOTEBOOK_BYTES
    content = json.loads(path.read_text())
    source = "".join("".join(cell["source"]) for cell in content["cells"])
    assert STEPS_VARIABLE in source
    outputs = [o for c in content["cells"] if c["cell_type"] == "code" for o in c["outputs"]]
    assert not [o for o in outputs if o["output_type"] == "error"]
    assert any(_is_figure(o) for o in outputs), "no figure in the outputs"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    missing = _missing("nbclient", "nbformat", "ipykernel")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -e .[dev])")
    notebook, elapsed = execute_notebook(path, steps=4)
    outputs = _outputs(notebook)
    assert any(_is_figure(out) for out in outputs)
    print(f"{path.name}: {elapsed:.0f} s at 4 steps")


_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```python[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.M | re.S
)


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(line, source)`` of every fenced ``python`` block of a Markdown page, dedented."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 1, textwrap.dedent(match.group("body")))
        for match in _FENCE.finditer(text)
    ]


DOC_BLOCKS = [
    pytest.param(page, line, source, id=f"{page.relative_to(ROOT)}:{line}")
    for page in DOC_PAGES
    for line, source in python_blocks(page)
]


@pytest.fixture
def tiny_run_configs(monkeypatch):
    """Cap the runs a docs block makes, unless ``MACO_TF_DOCS_TINY=0``.

    Wraps ``RunConfig.__post_init__`` (every run's settings, whether built by ``visualize``, the
    drop-in ``maco``, ``accentuate`` or ``explain_class``, pass through it) so that ``steps``
    and ``crops`` are at most 2 (``snapshots`` and ``early_stop`` shrunk to fit) and ``size`` is
    the model input; everything else is as written.
    """
    if os.environ.get(TINY_VARIABLE, "1") == "0":
        return
    from maco_tf.core.config import RunConfig

    original = RunConfig.__post_init__

    def tiny_post_init(config: RunConfig) -> None:
        caps = (
            ("steps", TINY_STEPS),
            ("crops", TINY_CROPS),
            ("snapshots", TINY_STEPS),  # an interval is at most the steps
            ("early_stop", 1),  # a plateau window shorter than the steps
        )
        for name, cap in caps:
            value = getattr(config, name)
            if isinstance(value, int) and not isinstance(value, bool):  # bad values: as written
                object.__setattr__(config, name, min(value, cap))
        object.__setattr__(config, "size", None)
        original(config)

    monkeypatch.setattr(RunConfig, "__post_init__", tiny_post_init)


def test_tiny_run_configs_cap_every_run(tiny_run_configs):
    """The cap reaches configs built directly and through ``replace`` (as the drop-in does)."""
    if os.environ.get(TINY_VARIABLE, "1") == "0":
        pytest.skip(f"{TINY_VARIABLE}=0: blocks run as written")
    from maco_tf.core.config import RunConfig

    config = RunConfig(steps=64, crops=8, size=320, seed=3)
    assert (config.steps, config.crops, config.size, config.seed) == (2, 2, None, 3)
    assert config.replace(steps=256, crops=32).steps == TINY_STEPS


def test_docs_have_python_blocks():
    """The extraction finds the blocks (a broken pattern would silently test nothing)."""
    pages = {page.name for page, _, _ in (param.values for param in DOC_BLOCKS)}
    assert {"README.md", "getting-started.md", "objectives.md"} <= pages
    for param in DOC_BLOCKS:
        page, line, source = param.values
        compile(source, f"{page.name}:{line}", "exec")  # a syntax error names its page and line


@pytest.mark.slow
@pytest.mark.parametrize("page, line, source", DOC_BLOCKS)
def test_doc_block_runs_on_its_own(page, line, source, tiny_run_configs, tmp_path, monkeypatch):
    """A reader can paste any block into a fresh interpreter: it defines all it uses."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__main__"}
    try:
        exec(compile(source, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
    finally:
        if "matplotlib.pyplot" in sys.modules:
            sys.modules["matplotlib.pyplot"].close("all")


def test_mkdocs_build_strict(tmp_path):
    missing = _missing("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (pip install -r docs/requirements.txt)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    index = (site / "index.html").read_text()
    assert "MACO" in index
    reference = (site / "reference" / "combine" / "index.html").read_text()
    assert "explain_class" in reference
    for page in ("getting-started", "maco", "objectives", "attributions", "cli", "faq"):
        assert (site / page / "index.html").exists(), page


def _main(argv: list[str]) -> int:
    """``python -m tests.test_docs [STEPS] [NOTEBOOK...]``: execute and save notebooks."""
    steps = int(argv[0]) if argv else 64
    paths = [Path(p) for p in argv[1:]] or NOTEBOOKS
    for path in paths:
        _, elapsed = execute_notebook(path, steps, write=True)
        size = path.stat().st_size
        print(f"{path.name}: {elapsed:.0f} s at {steps} steps, {size / 1e6:.2f} MB")
        if size > MAX_NOTEBOOK_BYTES:
            print(f"  warning: over {MAX_NOTEBOOK_BYTES / 1e6:.0f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
