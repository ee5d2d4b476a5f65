"""WordNet 3.0 from the Debian packages ``wordnet-base`` + ``wordnet-sense-index``, read with
nltk's own ``WordNetCorpusReader`` (no nltk downloader, no network).

The Debian packages put the database files (``index.*``, ``data.*``, ``*.exc``,
``index.sense``) in ``/usr/share/wordnet``. Two things differ from the folder that nltk's
downloader makes, and are bridged here without writing anything to disk:

- Debian ships no ``lexnames`` file (only its man page, lexnames(5WN)); nltk reads it at
  start-up, so :class:`DebianWordNetReader` serves the 45 fixed WordNet 3.0 lexicographer
  file names from the table below (as listed in lexnames(5WN)).
- nltk maps every WordNet to its own downloaded ``wordnet`` corpus for multilingual (OMW)
  look-ups; that is not needed (English synonyms only), so the mapping is skipped.

nltk only opens files under the roots of ``nltk.data.path``; the WordNet folder is added
there when the reader is built.

Folder: ``$WNSEARCHDIR`` (WordNet's own variable) if set, else ``/usr/share/wordnet``.
"""

from __future__ import annotations

import io
import os
import warnings
from functools import lru_cache
from pathlib import Path

from evalharness.errors import UserError

DEFAULT_FOLDER = "/usr/share/wordnet"
INSTALL_HINT = ("install WordNet with 'apt-get install wordnet-base wordnet-sense-index' "
                "(or 'make system-deps'), or set WNSEARCHDIR to a folder holding the WordNet "
                "3.0 database files")
REQUIRED = ("index.noun", "index.verb", "index.adj", "index.adv",
            "data.noun", "data.verb", "data.adj", "data.adv",
            "noun.exc", "verb.exc", "adj.exc", "adv.exc")

# lexnames(5WN): file number, name, syntactic category (1 noun, 2 verb, 3 adj, 4 adv)
LEXNAMES = (
    ("adj.all", 3), ("adj.pert", 3), ("adv.all", 4), ("noun.Tops", 1), ("noun.act", 1),
    ("noun.animal", 1), ("noun.artifact", 1), ("noun.attribute", 1), ("noun.body", 1),
    ("noun.cognition", 1), ("noun.communication", 1), ("noun.event", 1),
    ("noun.feeling", 1), ("noun.food", 1), ("noun.group", 1), ("noun.location", 1),
    ("noun.motive", 1), ("noun.object", 1), ("noun.person", 1), ("noun.phenomenon", 1),
    ("noun.plant", 1), ("noun.possession", 1), ("noun.process", 1), ("noun.quantity", 1),
    ("noun.relation", 1), ("noun.shape", 1), ("noun.state", 1), ("noun.substance", 1),
    ("noun.time", 1), ("verb.body", 2), ("verb.change", 2), ("verb.cognition", 2),
    ("verb.communication", 2), ("verb.competition", 2), ("verb.consumption", 2),
    ("verb.contact", 2), ("verb.creation", 2), ("verb.emotion", 2), ("verb.motion", 2),
    ("verb.perception", 2), ("verb.possession", 2), ("verb.social", 2), ("verb.stative", 2),
    ("verb.weather", 2), ("adj.ppl", 3),
)
LEXNAMES_TEXT = "".join(f"{i:02d}\t{name}\t{cat}\n" for i, (name, cat) in enumerate(LEXNAMES))


def wordnet_folder() -> Path:
    return Path(os.environ.get("WNSEARCHDIR") or DEFAULT_FOLDER)


def _reader_class():
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    class DebianWordNetReader(WordNetCorpusReader):
        """nltk's reader over a Debian WordNet folder (see the module docstring)."""

        def open(self, file):
            if file == "lexnames" and not os.path.exists(os.path.join(str(self._root.path),
                                                                      "lexnames")):
                return io.StringIO(LEXNAMES_TEXT)
            return super().open(file)

        def map_wn(self, version="wordnet"):
            return None  # no OMW mapping: English synonyms only

    return DebianWordNetReader


@lru_cache(maxsize=4)
def _load(folder: str):
    import nltk.data

    root = str(Path(folder).resolve())
    if root not in nltk.data.path:
        nltk.data.path.append(root)  # nltk's documented way to authorise a data root
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available"
        return _reader_class()(root, None)


def load_wordnet(folder: str | Path | None = None):
    """nltk ``WordNetCorpusReader`` over ``folder`` (default: :func:`wordnet_folder`).

    Raises a :class:`UserError` that says how to install WordNet when the files are missing.
    """
    folder = Path(folder) if folder is not None else wordnet_folder()
    missing = [f for f in REQUIRED if not (folder / f).is_file()]
    if missing:
        what = "does not exist" if not folder.is_dir() else \
            f"lacks {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}"
        raise UserError(f"the synonym perturbation needs WordNet, but {folder} {what}",
                        hint=INSTALL_HINT)
    try:
        return _load(str(folder))
    except (OSError, ValueError, LookupError, AssertionError) as exc:
        raise UserError(f"could not read WordNet from {folder}: {type(exc).__name__}: {exc}",
                        hint=INSTALL_HINT) from None
