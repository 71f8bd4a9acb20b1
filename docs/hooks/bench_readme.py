"""mkdocs hook: append the repository's bench/README.md to the Benchmarks page.

The README lives outside the docs and links to files beside it (bench scripts, plots), which
the site does not carry; those links become plain text naming the file, so a strict build
stays clean whatever the README links to. Headings move down one level under the page's own.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

PAGE = "benchmarks.md"
MARKER = "<!-- bench-readme -->"
SOURCE = Path("bench") / "README.md"
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _relative_links_as_text(line: str) -> str:
    def replace(m: re.Match[str]) -> str:
        bang, text, target = m.groups()
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return m.group(0)
        name = f"`bench/{target}`"
        return f"{text} ({name})" if text and not bang else f"{bang and 'image '}{name}"

    return _LINK.sub(replace, line)


def bench_readme(root: Path) -> str:
    path = root / SOURCE
    if not path.is_file():
        return "*`bench/README.md` is not in this checkout yet.*"
    out, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            line = "#" + line if line.startswith("#") else _relative_links_as_text(line)
        out.append(line)
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE or MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, bench_readme(Path(config.config_file_path).parent))
