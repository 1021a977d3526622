"""First pipeline step: clean the raw text a collector found, detect its language, derive its keys.

The de-duplication key decides what "the same mention" means, so it must be stable across runs,
machines and Python versions: it is a SHA-256 over normalised fields, never ``hash()``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import datetime
from functools import lru_cache
from typing import Any

from w3lib.html import remove_tags, remove_tags_with_content, replace_entities

# Block-level tags separate words: "<p>a<p>b" is "a b", not "ab".
_BLOCK_TAGS = re.compile(
    r"<\s*/?\s*(br|p|div|li|ul|ol|h[1-6]|blockquote|tr|td|th|article|section)\b[^>]*>",
    re.IGNORECASE,
)
_LOOKS_LIKE_MARKUP = re.compile(r"<[a-zA-Z/!]")
# Languages a mention is likely to be in; restricting the detector to them avoids the wild
# guesses (e.g. Latin, Luxembourgish) an unrestricted model makes on short review text.
LANGUAGES = (
    "en",
    "fr",
    "de",
    "es",
    "it",
    "nl",
    "pt",
    "pl",
    "sv",
    "da",
    "no",
    "fi",
    "cs",
    "tr",
    "ru",
    "uk",
    "ar",
    "zh",
    "ja",
    "ko",
    "hi",
    "el",
    "hu",
    "ro",
)
# Below this many letters a language guess is noise; such text is taken as the default language.
_MIN_LETTERS_FOR_DETECTION = 24
_MIN_CONFIDENCE = 0.80


def _without_controls(text: str) -> str:
    """Control, format, private-use and unassigned characters dropped; line breaks as spaces."""
    if text.isprintable():  # printable text has none of them: skip the loop
        return text
    return "".join(
        ch if unicodedata.category(ch)[0] != "C" else (" " if ch in "\n\r\t\v\f" else "")
        for ch in text
    )


def clean_text(raw: str | None) -> str:
    """Plain text from whatever a source gave: markup stripped, entities decoded, spaces folded.

    Scripts and styles are removed with their content; other tags are removed but their text
    kept. Control characters (other than line breaks, which become spaces) are dropped — first,
    so that one hidden inside a tag (``<\x00script>``) cannot keep it from being seen as a tag,
    and again after decoding entities (``&#1;``).
    """
    if not raw:
        return ""
    text = _without_controls(raw)
    if _LOOKS_LIKE_MARKUP.search(text):
        text = remove_tags_with_content(text, which_ones=("script", "style"))
        text = _BLOCK_TAGS.sub(" ", text)
        text = remove_tags(text)
    if "&" in text:
        text = _without_controls(replace_entities(text))
    text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())  # the same as folding r"\s+" and stripping, only faster


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(LANGUAGES))
    return identifier


# Words so common in English that text made of them is English: checked before the (0.1–0.5 ms)
# statistical detector, which then only sees text that may be something else.
_ENGLISH_WORDS = frozenset(
    [
        "the",
        "and",
        "was",
        "were",
        "is",
        "are",
        "to",
        "of",
        "it",
        "in",
        "for",
        "with",
        "but",
        "not",
        "they",
        "this",
        "that",
        "my",
        "we",
        "our",
        "you",
        "i",
        "had",
        "have",
        "very",
        "so",
        "at",
        "on",
        "be",
        "no",
        "just",
        "would",
        "will",
        "there",
        "their",
        "them",
        "from",
        "an",
        "as",
        "all",
    ]
)
_WORD = re.compile(r"[a-z']+")  # ASCII words only: text in other scripts goes to the model
_OPENING_CHARS = 400


def detect_language(text: str, default: str = "en") -> str:
    """ISO 639-1 code of the text's language; short or uncertain text gets ``default``."""
    # The opening words are enough to call text plainly English.
    words = _WORD.findall(text[:_OPENING_CHARS].lower())
    english = sum(map(_ENGLISH_WORDS.__contains__, words))
    if len(words) >= 6 and english >= 0.25 * len(words):
        return "en"  # plainly English: no need to ask the model
    if sum(ch.isalpha() for ch in text) < _MIN_LETTERS_FOR_DETECTION:
        return default
    language, confidence = _identifier().classify(text)
    return str(language) if confidence >= _MIN_CONFIDENCE else default


def _fold(value: str | None) -> str:
    return " ".join(unicodedata.normalize("NFKC", value or "").split()).casefold()


def _digest(*parts: str) -> str:
    # \x1f (unit separator) cannot occur in folded text, so ("ab", "c") and ("a", "bc") differ.
    return hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def content_hash(text: str) -> str:
    """Identifies the words of a mention, whatever its source: same folded text, same hash."""
    return _digest(_fold(text))


def dedup_key(
    business: str,
    external_id: str | None,
    text: str,
    author: str | None,
    published_at: datetime | None,
) -> str:
    """The key on which a mention is stored once.

    A platform id identifies a mention wherever it is seen (an edit keeps the key). Without one,
    the folded text, author and publication day do: the same words by the same person on the same
    day are one mention, even if a page was re-paginated between runs.
    """
    if external_id:
        return _digest(_fold(business), "id", external_id.strip())
    day = published_at.date().isoformat() if published_at else ""
    return _digest(_fold(business), "text", _fold(text), _fold(author), day)
