"""The one number formatter of every output: terminal tables, HTML, Markdown, JUnit, the
gate summary, the index of runs and figure labels.

Call sites differ only in the parameters they pass:

=====================  ===============================================================
report (HTML/Markdown)  ``fmt(v)``: ``style="auto"``, ``missing="–"``, thousands grouped
terminal tables         ``fmt(v, style="fixed", missing="-", grouping=False)``
gate summary            ``fmt(v, style="fixed", missing="—", grouping=False)``
JUnit XML               ``fmt(v, style="general", missing="missing", grouping=False)``
p-values                ``fmt(p, 3, style="p")`` (``< 0.001`` below 10^-digits)
retention               ``fmt(r, 2, style="percent")``
differences             ``sign=True`` (``+0.0123``)
=====================  ===============================================================
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Literal

Style = Literal["auto", "fixed", "general", "p", "percent"]


def fmt(v: Any, digits: int = 4, *, style: Style = "auto", missing: str = "–",
        sign: bool = False, grouping: bool = True) -> str:
    """``v`` as text.

    * ``None``, NaN and infinities are ``missing``; booleans are ``yes``/``no``;
    * integers are exact (``1,379`` with ``grouping``), except for the ``p`` and
      ``percent`` styles, which treat them as floats;
    * floats by ``style``:

      - ``fixed``: ``digits`` decimals;
      - ``general``: ``digits`` significant digits (``:g``);
      - ``auto``: ``digits`` decimals, but whole numbers of 10 and more stay whole
        (counts: components, ranks), float noise below 1e-12 is ``0.0000``, and values
        below 10^-(digits-1) or of 1e6 and more take scientific notation;
      - ``p``: a p-value, ``< 0.001`` (for ``digits=3``) below 10^-digits;
      - ``percent``: ``100 * v`` with ``digits`` decimals and ``%``;

    * lists and tuples are ``[a, b]``, mappings ``k: a, l: b``, each element formatted
      with the same parameters; anything else is ``str(v)``.

    ``sign`` writes ``+`` in front of positive numbers; ``grouping`` separates thousands.
    """
    if v is None:
        return missing
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple, dict)):
        same = {"style": style, "missing": missing, "sign": sign, "grouping": grouping}
        if isinstance(v, dict):
            return ", ".join(f"{k}: {fmt(x, digits, **same)}" for k, x in v.items())
        return "[" + ", ".join(fmt(x, digits, **same) for x in v) + "]"
    if not isinstance(v, Real):
        return str(v)
    plus = "+" if sign else ""
    group = "," if grouping else ""
    if isinstance(v, Integral) and style not in ("p", "percent"):
        return f"{int(v):{plus}{group}}"
    v = float(v)
    if not math.isfinite(v):
        return missing
    if style == "p":
        floor = 10.0 ** -digits
        return f"< {floor:.{digits}f}" if v < floor else f"{v:{plus}.{digits}f}"
    if style == "percent":
        return f"{100 * v:{plus}{group}.{digits}f}%"
    if style == "general":
        return f"{v:{plus}{group}.{digits}g}"
    if style == "auto":
        if v.is_integer() and abs(v) >= 10:
            return f"{int(v):{plus}{group}}"
        if abs(v) < 1e-12:
            v = 0.0
        elif abs(v) < 10 ** -(digits - 1) or abs(v) >= 1e6:
            return f"{v:{plus}.{max(digits - 2, 0)}e}"
    return f"{v:{plus}{group}.{digits}f}"
