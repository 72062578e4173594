"""Every Python example in the README runs as written (except blocks marked as illustrations,
which need the user's own data), and the README shows the two set-up commands."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = "`" * 3
BLOCKS = re.findall(FENCE + r"python\n(.*?)" + FENCE, README.read_text(), flags=re.S)
RUNNABLE = [b for b in BLOCKS if not b.lstrip().startswith("# illustration")]


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert text.index("make demo") < text.index("## The command line")


@pytest.mark.parametrize("code", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_python_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
