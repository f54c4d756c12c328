"""The documentation names only what exists: every ``snia COMMAND`` and every ``--flag`` that the
README and docs/*.md show in code (code spans and code blocks) is in ``snia COMMAND --help``; every
command of the parser is on docs/usage.md; the README stays short and its test command is the one
CI runs.

A flag is checked against the command it follows (``snia train STORE --teachers ...``); a code
span that holds only flags (``--on-error skip``) must name an option of some snia command, or of
another program that the docs name (``FOREIGN_FLAGS``). Other programs' command lines
(``snakemake --profile ...``, ``python bench/train.py --store ...``) are not snia's and are left
alone.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from snia.cli.parser import build_parser

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LINES = 150

# Options of other programs that the docs name on their own, in a code span without the program.
FOREIGN_FLAGS = {
    "--profile": "snakemake", "--workflow-profile": "snakemake", "--set-resources": "snakemake",
    "--lint": "snakemake", "--forcerun": "snakemake", "--smoke": "bench/device_check.sh", "--store": "bench/*.py",
    "--steps": "bench/train.py", "--repeat": "bench/train.py", "--backend": "bench/train.py",
    "--batch-size": "bench/train.py", "--compare-with": "bench/infer.py", "--compile": "bench/infer.py",
    "--boosted": "bench/forest_reobserved.py",
}

FLAG = re.compile(r"(?<![\w-])(--?[A-Za-z][\w-]*)")
SEPARATORS = re.compile(r"\s(?:\|\||&&|[|;>])\s|;|\s#")


def code_of(text: str) -> list[str]:
    """The code of a Markdown page: each fenced block's lines (continuations joined) and each
    inline code span."""
    pieces = []

    def block(match):
        body = match.group(1).replace("\\\n", " ")
        pieces.extend(body.splitlines())
        return "\n"

    rest = re.sub(r"^```[^\n]*\n(.*?)^```", block, text, flags=re.S | re.M)
    pieces += [m.replace("\n", " ") for m in re.findall(r"`([^`]+)`", rest)]
    return [p.replace("\\|", "|") for p in pieces]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _commands(parser, prefix=()) -> dict[tuple, argparse.ArgumentParser]:
    """Every command path (('store', 'info'), ('train',), ...) -> its parser, the top one at ()."""
    found = {prefix: parser}
    for name, sub in _subparsers(parser).items():
        found.update(_commands(sub, prefix + (name,)))
    return found


COMMANDS = _commands(build_parser())


def _resolve(words: list[str]) -> tuple[list[tuple], list[str]]:
    """The command path(s) that words after 'snia' name (``store info|verify`` is two) and the
    words left; a word that is no command of its parent is an error unless it is an argument."""
    paths, i = [()], 0
    while i < len(words):
        subs = _subparsers(COMMANDS[paths[0]])
        word = words[i].strip("[]()")
        if not subs or not re.fullmatch(r"[a-z][a-z|-]*", word):
            break
        names = word.split("|")
        if not all(n in subs for n in names):
            raise AssertionError(f"'snia {' '.join(paths[0] + (word,))}': no such command "
                                 f"(snia {' '.join(paths[0])} has {', '.join(subs)})")
        paths, i = [p + (n,) for p in paths for n in names], i + 1
    return paths, words[i:]


def paragraphs(text: str) -> list[str]:
    """A page cut where a reader's eye would: each fenced block whole, then the prose at blank
    lines, list items and table rows."""
    blocks = re.findall(r"^```[^\n]*\n.*?^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "\n\n", text, flags=re.S | re.M)
    return blocks + re.split(r"\n\s*\n|\n(?=\s*(?:[-*] |\d+\. |\|))", prose)


def mentions() -> list[tuple[str, tuple, list[str]]]:
    """(page, command paths, flags) for every 'snia ...' in the docs' code: the flags that follow
    a command are its own; flags alone in a span belong to the commands named in code in the
    same paragraph (any snia command where it names none)."""
    found = []
    for page in PAGES:
        name = page.relative_to(ROOT).as_posix()
        for paragraph in paragraphs(page.read_text()):
            named, alone = [], []
            for code in code_of(paragraph):
                for segment in SEPARATORS.split(code):
                    words = segment.split()
                    if words and words[0].startswith("--"):
                        alone += FLAG.findall(segment)
                    for start in [i for i, w in enumerate(words) if w == "snia"]:
                        rest = words[start + 1:]
                        end = next((j for j, w in enumerate(rest) if w == "snia"), len(rest))
                        try:
                            paths, args = _resolve(rest[:end])
                        except AssertionError as exc:
                            raise AssertionError(f"{name}: {exc} in `{code.strip()}`") from None
                        flags = [f for w in args for f in FLAG.findall(w.split("=")[0])
                                 if w.lstrip("[(").startswith("-")]
                        found += [(name, (path,), flags) for path in paths]
                        named += [p for p in paths if p]
            if alone:
                found.append((name, tuple(named) or None, alone))
    return found


def help_text(path: tuple) -> str:
    return COMMANDS[path].format_help()


def test_the_docs_find_their_commands():
    """The reader works: it finds snia commands in blocks and spans, with their flags."""
    text = ("x `snia store info|verify S --json` y\n```bash\nsnia train S -o R \\\n  --teachers "
            "m*/best.pt  # comment --nothing\nmpiexec -n 2 snia ingest F [--split train]\n```\n"
            "`--on-error skip` and `snakemake --lint`")
    codes = code_of(text)
    assert "snia train S -o R    --teachers m*/best.pt  # comment --nothing" in codes
    assert "--on-error skip" in codes and "snakemake --lint" in codes
    assert _resolve("store info|verify S".split()) == ([("store", "info"), ("store", "verify")],
                                                        ["S"])
    with pytest.raises(AssertionError, match="'snia store infos': no such command"):
        _resolve(["store", "infos"])


def test_every_command_and_flag_the_docs_name_exists():
    found = mentions()
    assert len({p for _, paths, _ in found for p in paths or ()}) >= 10, "finds the commands"
    missing = []
    for page, paths, flags in found:
        for flag in flags:
            if flag in FOREIGN_FLAGS and not paths:
                continue
            where = paths or tuple(COMMANDS)
            if not any(re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", help_text(p))
                       for p in where):
                named = " or ".join(f"'snia {' '.join(p)} --help'" for p in where) \
                    if paths else "no snia command"
                missing.append(f"{page}: {named} has no {flag}" if paths else
                               f"{page}: `{flag}` is an option of {named}")
    assert not missing, "\n".join(sorted(set(missing)))


def test_the_usage_page_names_every_command():
    usage = " ".join(code_of((ROOT / "docs" / "usage.md").read_text()))
    leaves = [p for p in COMMANDS if p and not _subparsers(COMMANDS[p])]
    absent = [" ".join(p) for p in leaves
              if not re.search(r"snia " + r"\s+".join(
                  rf"(?:[\w-]+\|)*{re.escape(w)}(?:\|[\w-]+)*" for w in p) + r"(?![\w-])", usage)]
    assert not absent, f"docs/usage.md should show these commands: {absent}"


def test_readme_is_short_and_its_commands_are_what_ci_and_make_run():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= README_LINES
    commands = [code.split("#")[0].strip() for code in code_of(readme)
                if code.strip().startswith("make ")]
    assert "make test" in commands and "make run" in commands
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert "make test" in ci, ".ci/run runs the README's test command as it is written"
    targets = re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), flags=re.M)
    assert {"test", "run"} <= set(targets)
    for page in PAGES:  # every docs page that the README links exists
        for link in re.findall(r"\]\((docs/[^)#]+)", page.read_text()):
            assert (ROOT / link).exists(), f"{page.name} links {link}, which is missing"
