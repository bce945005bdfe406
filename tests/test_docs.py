"""The README and docs/ hold only what is true: every relative link resolves, every `stst` command is one the CLI
takes as written (the quick ones run), every script they name takes the options they give it."""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from stst.cli import main

from conftest import PHOTOS, STYLES, make_clip

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "models" / "README.md"]
IMAGES = {".jpg", ".jpeg", ".png", ".webp", ".tif", ".bmp"}
CLIPS = {".mp4", ".mov", ".mkv", ".webm", ".avi"}


def slug(heading: str) -> str:
    """A heading's anchor as GitHub makes it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def outside_code(page: Path) -> list[str]:
    lines, fenced = [], False
    for line in page.read_text().splitlines():
        fenced ^= line.startswith("```")
        if not fenced and not line.startswith("```"):
            lines.append(line)
    return lines


def anchors(page: Path) -> set[str]:
    return {slug(m.group(1)) for line in outside_code(page) if (m := re.match(r"#+ (.*)", line))}


def shell_lines() -> list[tuple[str, str]]:
    """``(page, command)`` for each line of the pages' bash blocks, continuation lines joined."""
    found = []
    for page in PAGES:
        for block in re.findall(r"```(?:bash|sh)\n(.*?)```", page.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    found.append((page.name, line.strip()))
    return found


def stst_commands() -> list[tuple[str, list[str]]]:
    """The `stst ...` commands of the pages' shell blocks, as argument lists (pipes and redirections split off)."""
    commands = []
    for page, line in shell_lines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        part: list[str] = []
        for word in [*lexer, "|"]:
            if word and set(word) <= set("|&;<>()"):
                if part[:1] == ["stst"]:
                    commands.append((page, part[1:]))
                part = [] if word != ">" else ["redirected"]
            else:
                part.append(word)
    return commands


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", "\n".join(outside_code(page))):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path) if path else page
            if not dest.exists() or (anchor and dest.suffix == ".md" and anchor not in anchors(dest)):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert broken == []


def test_the_readme_stays_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 400


@pytest.fixture
def named_files(tmp_path, monkeypatch):
    """A folder holding every file and folder the commands name, as real photos, paintings and clips."""
    (tmp_path / "pages").mkdir()
    monkeypatch.chdir(tmp_path / "pages")
    for _, words in stst_commands():
        for word in words:
            if word.startswith(("-", "/")) or "=" in word:
                continue
            path = tmp_path / "pages" / word  # the commands run in pages/, so ../shared/data lands in tmp_path
            path.parent.mkdir(parents=True, exist_ok=True)
            if word.endswith("/"):
                path.mkdir(exist_ok=True)
                shutil.copy(PHOTOS / "kodim05.jpg", path / "kodim05.jpg")
            elif path.suffix.lower() in IMAGES and not path.exists():
                Image.open(STYLES / "starry_night.jpg" if "painting" in word else PHOTOS / "kodim05.jpg").save(path)
            elif path.suffix.lower() in CLIPS and not path.exists():
                make_clip(path, frames=4, size=(64, 48))
    return tmp_path / "pages"


def test_every_stst_command_is_one_the_cli_takes(named_files):
    """Each command's subcommand, options and values parse as the CLI parses them (without running)."""
    commands = stst_commands()
    assert len(commands) >= 20 and {words[0] for _, words in commands} >= {
        "stylize", "train", "serve", "distill", "models"}
    for page, words in commands:
        with main.make_context("stst", list(words), resilient_parsing=False) as ctx:
            name, command, rest = main.resolve_command(ctx, list(words))
            try:
                command.make_context(name, rest, parent=ctx)
            except Exception as exc:
                pytest.fail(f"{page}: stst {shlex.join(words)}: {exc}")


def test_the_readme_quick_start_runs_as_written(named_files, stst_home):
    for line in ("stst stylize --example", "stst stylize photo.jpg", "stst models"):
        done = CliRunner().invoke(main, shlex.split(line)[1:])
        assert done.exit_code == 0, (line, done.output)
    assert Image.open("kodim23-starry_night.jpg").size == (768, 512)
    assert Image.open("photo-starry_night.jpg").size == Image.open("photo.jpg").size
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"  # the stst of this Python
    piped = subprocess.run("cat photo.jpg | stst stylize - -o - --tier realtime > out.png", shell=True,
                           capture_output=True, text=True, env={**os.environ, "PATH": path})
    assert piped.returncode == 0, piped.stderr
    assert Image.open("out.png").size == Image.open("photo.jpg").size


def test_every_script_the_pages_run_exists_and_takes_the_options_given():
    for page, line in shell_lines():
        words = shlex.split(line, comments=True)
        if words[:1] != ["python"] or not words[1:2] or not words[1].startswith("scripts/"):
            continue
        script = ROOT / words[1]
        assert script.is_file(), f"{page}: {line}"
        for option in (w.split("=")[0] for w in words[2:] if w.startswith("--")):
            assert f'"{option}"' in script.read_text(), f"{page}: {line}: {script.name} has no {option}"
