"""MkDocs hooks of the docs site (mkdocs.yml): add the generated reference pages to the nav.

``docs/reference/`` holds plugin reference pages generated from docstrings. When it exists, its
Markdown files are listed under "Reference" (``index.md`` first, then by name); when it does
not, the site builds without that section.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").replace("_", " ").capitalize()


def reference_nav(docs_dir: Path) -> list[dict[str, str]]:
    folder = docs_dir / "reference"
    if not folder.is_dir():
        return []
    pages = sorted(folder.rglob("*.md"), key=lambda p: (p.name != "index.md", p.relative_to(folder).as_posix()))
    return [{_title(p): p.relative_to(docs_dir).as_posix()} for p in pages]


def on_config(config: Any, **_: Any) -> Any:
    entries = reference_nav(Path(config["docs_dir"]))
    if entries and config["nav"] is not None:
        config["nav"].append({"Reference": entries})
    return config


# -- links that leave the docs folder -----------------------------------------------------------

_LINK = re.compile(r"(?<!!)\[([^\]\n]+)\]\(([^()\s]+)\)")
log = logging.getLogger("mkdocs.hooks.guanxi")


def rewrite_links(markdown: str, page_path: Path, docs_dir: Path, repo_root: Path) -> str:
    """Links in the Markdown are relative paths that work on a forge. For the site: a link to a
    folder of the docs goes to its README.md; a link out of the docs folder (to code, the
    benchmarks' README, a test fixture) becomes the repository path in code type, and one whose
    target does not exist is reported (a warning, which fails ``--strict``)."""

    def replace(match: re.Match[str]) -> str:
        text, target = match.group(1), match.group(2)
        if re.match(r"^[a-z]+:|^#|^/", target):
            return match.group(0)
        path_part, _, anchor = target.partition("#")
        resolved = (page_path.parent / path_part).resolve()
        if resolved.is_relative_to(docs_dir.resolve()):
            readme = resolved / "README.md"
            if resolved.is_dir() and readme.is_file():
                new = Path(os.path.relpath(readme, page_path.parent.resolve())).as_posix()
                return f"[{text}]({new}{'#' + anchor if anchor else ''})"
            return match.group(0)
        if not resolved.exists():
            log.warning("%s links to %s, which does not exist", page_path.relative_to(docs_dir.resolve()), target)
            return match.group(0)
        shown = resolved.relative_to(repo_root.resolve()).as_posix() + ("/" if resolved.is_dir() else "")
        return f"{text} (`{shown}` in the repository)" if f"`{shown}`" not in text else text

    return _LINK.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, **_: Any) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    return rewrite_links(markdown, docs_dir / page.file.src_path, docs_dir, Path(config["config_file_path"]).parent)
