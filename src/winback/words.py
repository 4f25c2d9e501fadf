"""How winback compares the words a person or a file wrote: column headers, enum words
(a status, a reason), an SMS reply's STOP. One rule, used by the importers and by the
refusal rule alike.

>>> fold("Téléphone"), fold(" E-mail Address "), fold("ARRÊT.")
('telephone', 'emailaddress', 'arret')
"""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Lower case, no accents, only letters and digits: how headers and enum words are
    compared (``Téléphone`` and ``telephone`` and ``TELEPHONE`` are one word)."""
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return "".join(char for char in decomposed if char.isalnum())
