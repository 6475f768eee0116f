"""Writing a benchmark's results into a marked section of a doc (``<!-- name:start -->`` ...
``<!-- name:end -->``), replacing the previous run's, or appending the section the first time."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def write_section(doc: str, name: str, body: str, intro_if_new: str = "") -> None:
    path = ROOT / "docs" / doc
    text = path.read_text() if path.exists() else ""
    section = f"<!-- {name}:start -->\n{body.rstrip()}\n<!-- {name}:end -->"
    pattern = rf"<!-- {name}:start -->.*?<!-- {name}:end -->"
    if re.search(pattern, text, flags=re.S):
        text = re.sub(pattern, lambda _: section, text, flags=re.S)
    else:
        text += "\n" + intro_if_new + section + "\n"
    path.write_text(text)
