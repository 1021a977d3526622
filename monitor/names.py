"""Does a text name the business? Whole words, any case, after removing look-alikes.

Used wherever a source returns more than mentions of the business: feeds, social searches.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def mention_pattern(names: Iterable[str]) -> re.Pattern[str]:
    """Whole-word, case-insensitive match of any of the business's names."""
    alternatives = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
    escaped = "|".join(re.escape(n) for n in alternatives)
    # \b fails next to '@' or '#', so the boundaries are spelled out.
    return re.compile(rf"(?<![\w@#])(?:{escaped})(?!\w)", re.IGNORECASE)


def names_business(text: str, pattern: re.Pattern[str], exclusions: Iterable[str]) -> bool:
    """True when the text names the business once the excluded look-alikes are blanked out."""
    for phrase in exclusions:
        text = re.sub(re.escape(phrase), " ", text, flags=re.IGNORECASE)
    return bool(pattern.search(text))


def search_query(names: Iterable[str]) -> str:
    """A search query for any of the names: quoted phrases joined with OR."""
    return " OR ".join(f'"{n}"' if " " in n else n for n in dict.fromkeys(names) if n.strip())
