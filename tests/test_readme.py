"""Every Python example in the README runs as written (except blocks marked as illustrations,
which need the user's own data), prints what its ``# prints: ...`` comments show, and the README
shows the two set-up commands."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = "`" * 3
BLOCKS = re.findall(FENCE + r"python\n(.*?)" + FENCE, README.read_text(), flags=re.S)
RUNNABLE = [b for b in BLOCKS if not b.lstrip().startswith("# illustration")]
#: ``# prints: TEXT`` (after a print call, or on its own line below a loop that prints)
SHOWN = re.compile(r"#\s*prints:\s*(.*?)\s*$", flags=re.M)


def shown_output(code: str):
    """The lines a block says it prints, in order."""
    return SHOWN.findall(code)


def matches(shown: str, printed: str) -> bool:
    """Whether a printed line is the one shown; ``...`` in the shown text stands for any text."""
    pattern = ".*".join(re.escape(part) for part in shown.split("..."))
    return re.fullmatch(pattern, printed.strip()) is not None


def test_readme_starts_with_the_two_commands():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert text.index("make demo") < text.index("## The command line")


def test_shown_output_is_compared_with_wildcards():
    assert shown_output("print(1)   # prints: {0: 8, 1: 12}\nx = 2\n# prints: a b") == [
        "{0: 8, 1: 12}", "a b"]
    assert matches("[5.e-09] [314.159...]", "[5.e-09] [314.15926536]")
    assert not matches("Ghosts(1 ghost: ...)", "Ghosts(1 ghost(s): attracting=1)")
    assert not matches("stable=8", "stable=8, saddle=19")


def test_readme_shows_some_output():
    assert sum(len(shown_output(b)) for b in RUNNABLE) >= 6


@pytest.mark.parametrize("code", RUNNABLE, ids=[f"block{i}" for i in range(len(RUNNABLE))])
def test_readme_python_example_runs(code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
    printed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    shown = shown_output(code)
    assert len(printed) == len(shown), (
        f"the example prints {len(printed)} line(s) but shows {len(shown)}: {printed}")
    for want, got in zip(shown, printed):
        assert matches(want, got), f"the README shows {want!r} but the example prints {got!r}"
