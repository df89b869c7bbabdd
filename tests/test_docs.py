"""The documentation site (docs/, mkdocs.yml): its code runs, and it builds without a warning.

Every ```python block of docs/index.md and docs/guides/*.md is executed, page by page: the
blocks of one page share one namespace and run in order, with a temporary folder of the page's
own as the working directory. The pages that must start their own program (one splits the CPU
into devices before the backend starts, one imports PyTorch before TensorFlow, as a user's
program would) run each in a fresh Python process; the others run one after another in one more
fresh process (a fresh namespace and a cleared Keras session each), which spares seven
TensorFlow start-ups. A block whose fence is immediately
preceded by the line ``<!-- no-run -->`` is shown, not run (real datasets, GPUs, the network,
several hosts). A block that raises fails the test of its page; the traceback names the
Markdown file and line.

The pages are run once, on the TensorFlow pass of scripts/test.sh (they exercise the API the
unit tests check on every backend; keras_seg.data needs TensorFlow in any case). One page by
hand: ``KERAS_BACKEND=tensorflow python tests/test_docs.py docs/guides/phone.md [more pages]`` (in
a scratch folder: it writes files).
"""

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
NO_RUN = "<!-- no-run -->"
BACKEND = "tensorflow"
PAGES = ["index.md"] + sorted(f"guides/{p.name}" for p in (DOCS / "guides").glob("*.md"))
# The pages that need a program of their own; the rest share one process.
OWN_PROCESS = {
    "guides/multi-gpu.md": "splits the CPU into devices before the backend runs anything",
    "guides/from-pytorch.md": "imports PyTorch (and triton) before TensorFlow",
}
GROUPS = {"shared": [p for p in PAGES if p not in OWN_PROCESS], **{p: [p] for p in OWN_PROCESS}}
PAGE_TIMEOUT = 300  # seconds a page may take

_OPEN = re.compile(r"^(?P<indent>[ \t]*)```python[ \t]*$")


def code_blocks(path):
    """``[(first_line, code, runs), ...]`` for each ```python block of a Markdown file (1-based line numbers)."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        opening = _OPEN.match(lines[i])
        if not opening:
            i += 1
            continue
        indent = opening.group("indent")
        runs = not (i > 0 and lines[i - 1].strip() == NO_RUN)
        start, j = i + 1, i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if j == len(lines):
            raise ValueError(f"{path}:{i + 1}: a ```python block that is never closed")
        body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[start:j]]
        blocks.append((start + 1, textwrap.dedent("\n".join(body)) + "\n", runs))
        i = j + 1
    return blocks


def run_page(path):
    """Execute the runnable blocks of one page in this process and the current directory; 0 if all pass."""
    path = Path(path).resolve()
    shown = os.path.relpath(path, ROOT)
    namespace = {"__name__": "__main__"}
    for number, (line, code, runs) in enumerate(code_blocks(path), 1):
        if not runs:
            print(f"[docs] {shown}:{line} block {number}: not run ({NO_RUN})", flush=True)
            continue
        start = time.perf_counter()
        try:  # padded with blank lines so that a traceback's line numbers are the Markdown file's
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
        except BaseException:  # noqa: BLE001 - SystemExit from a block is a failure too
            print(f"[docs] {shown}:{line} block {number}: FAILED after {time.perf_counter() - start:.1f} s",
                  flush=True)  # fmt: skip
            traceback.print_exc()
            return 1
        print(f"[docs] {shown}:{line} block {number}: ok in {time.perf_counter() - start:.1f} s", flush=True)
    return 0


def run_pages(paths):
    """Run each page in its own subfolder of the current directory, one after another; the number that failed."""
    here, failed = Path.cwd(), 0
    for path in paths:
        folder = here / Path(path).stem
        folder.mkdir(exist_ok=True)
        os.chdir(folder)
        try:
            failed += run_page(path) != 0
        finally:
            os.chdir(here)
            if "keras" in sys.modules:  # the next page starts from a cleared session and the float32 policy
                sys.modules["keras"].utils.clear_session()
                sys.modules["keras"].config.set_dtype_policy("float32")
    return failed


if __name__ == "__main__":  # python tests/test_docs.py PAGE.md [PAGE.md ...]: run the pages' blocks here
    if len(sys.argv) < 2:
        sys.exit("usage: python tests/test_docs.py docs/PAGE.md [docs/PAGE.md ...]")
    sys.exit(min(run_pages(sys.argv[1:]), 1))


import keras  # noqa: E402 - below the runner, which a page's process must start without
import pytest  # noqa: E402

pytestmark = pytest.mark.skipif(keras.backend.backend() != BACKEND,
                                reason=f"the documentation is checked once, on the {BACKEND} pass")  # fmt: skip


def test_every_guide_has_a_runnable_block():
    for page in PAGES:
        blocks = code_blocks(DOCS / page)
        assert any(runs for _, _, runs in blocks), f"docs/{page} has no ```python block that runs"


def test_every_page_runs_in_exactly_one_group():
    assert sorted(p for pages in GROUPS.values() for p in pages) == sorted(PAGES)


def test_a_failing_block_fails_its_page_and_the_next_pages_still_run(tmp_path, capsys, monkeypatch):
    pages = []
    for name, code in (("first", "x = 1"), ("broken", "x = 1\nraise RuntimeError('boom')"), ("last", "import os\nopen('here.txt', 'w').close()")):
        page = tmp_path / f"{name}.md"
        page.write_text(f"# {name}\n\n```python\n{code}\n```\n", encoding="utf-8")
        pages.append(page)
    monkeypatch.chdir(tmp_path)
    assert run_pages(pages) == 1
    out = capsys.readouterr()
    assert "broken.md:4 block 1: FAILED" in out.out and "RuntimeError: boom" in out.err
    assert "last.md:4 block 1: ok" in out.out and (tmp_path / "last" / "here.txt").is_file()  # its own folder


@pytest.mark.slow
@pytest.mark.parametrize("group", sorted(GROUPS))
def test_page_code_runs(group, tmp_path):
    pages = GROUPS[group]
    env = dict(os.environ, KERAS_BACKEND=BACKEND, MPLBACKEND="Agg",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), *(str(DOCS / p) for p in pages)],
                          cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=PAGE_TIMEOUT * len(pages))  # fmt: skip
    seconds = time.perf_counter() - start
    report = "\n".join(line for line in done.stdout.splitlines() if line.startswith("[docs]"))
    failed = [p for p in pages if any(line.startswith(f"[docs] docs/{p}:") and "FAILED" in line for line in report.splitlines())]
    assert done.returncode == 0, (f"{', '.join(failed) or ', '.join(pages)}: a code block failed ({seconds:.0f} s)\n"
                                  f"{report}\n{done.stderr[-6000:]}")  # fmt: skip
    print(f"{', '.join(pages)}: {seconds:.1f} s\n{report}")


def test_mkdocs_build_is_strict_clean(tmp_path):
    missing = [m for m in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(m.split(".")[0]) is None or importlib.util.find_spec(m) is None]  # fmt: skip
    if missing:
        pytest.skip(f"the docs tools are not installed ({', '.join(missing)}): pip install -e \".[docs]\"")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    assert (tmp_path / "site" / "index.html").is_file()
    for page in PAGES:
        assert (tmp_path / "site" / page.replace(".md", "") / "index.html").is_file() or page == "index.md", page
