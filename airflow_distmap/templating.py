"""Jinja templating of ASL: keep JSONata expressions (``"{% ... %}"``) away from Airflow's Jinja.

JSONata states write expressions as ``"{% $states.input.key %}"`` (spec: QueryLanguage JSONata), which is
Jinja's statement syntax: a templated field holding such a definition would fail to render. Each string that
is one JSONata expression is wrapped in ``{% raw %}...{% endraw %}``, which Jinja renders back to the
expression unchanged, while ``{{ ds }}`` and Jinja statements (``{% if ... %}``) elsewhere still render.
"""

from __future__ import annotations

import re
from typing import Any, Final

#: Jinja's statement names: a ``{% ... %}`` string starting with one of these is Jinja's, not JSONata.
JINJA_STATEMENTS: Final = frozenset(
    {
        "autoescape",
        "block",
        "break",
        "call",
        "continue",
        "do",
        "elif",
        "else",
        "endautoescape",
        "endblock",
        "endcall",
        "endfilter",
        "endfor",
        "endif",
        "endmacro",
        "endraw",
        "endset",
        "endtrans",
        "endwith",
        "extends",
        "filter",
        "for",
        "from",
        "if",
        "import",
        "include",
        "macro",
        "pluralize",
        "raw",
        "set",
        "trans",
        "with",
    }
)
#: A JSON string literal holding one ``{% ... %}`` expression, in JSON text.
_QUOTED_EXPRESSION: Final = re.compile(r'"(\{%(?:[^"\\]|\\.)*%\})"', re.DOTALL)
_FIRST_WORD: Final = re.compile(r"\{%[-+]?\s*([A-Za-z_]\w*)")
#: A ``{% raw %}...{% endraw %}`` block; ``split`` keeps it as every second part.
_RAW_BLOCK: Final = re.compile(r"(\{%[-+]?\s*raw\s*[-+]?%\}.*?\{%[-+]?\s*endraw\s*[-+]?%\})", re.DOTALL)


def _is_jsonata(text: str) -> bool:
    stripped = text.strip()
    if not (stripped.startswith("{%") and stripped.endswith("%}")):
        return False
    first = _FIRST_WORD.match(stripped)
    return first is None or first.group(1) not in JINJA_STATEMENTS


def _raw(text: str) -> str:
    return "{% raw %}" + text + "{% endraw %}"


def keep_jsonata(value: Any) -> Any:
    """``value`` with every JSONata expression string wrapped so that Jinja renders it unchanged.

    Works on ASL as dicts and lists, and on JSON text (a definition given as a string). A string that already
    holds ``{% raw %}`` blocks keeps them as they are. Jinja inside a JSONata expression (``{{ ds }}``) is not
    rendered: pass such values in the execution input. Returns new objects; ``value`` itself is not changed.

    :param value: a definition, an ItemReader or any JSON-like value.
    """
    if isinstance(value, dict):
        return {key: keep_jsonata(item) for key, item in value.items()}
    if isinstance(value, list):
        return [keep_jsonata(item) for item in value]
    if isinstance(value, str) and "{%" in value:
        # Raw blocks the text holds already stay as they are; expressions outside them are wrapped.
        parts = _RAW_BLOCK.split(value)
        return "".join(part if index % 2 else _keep_outside_raw(part) for index, part in enumerate(parts))
    return value


def _keep_outside_raw(text: str) -> str:
    if _is_jsonata(text):
        return _raw(text)
    # JSON text: wrap the expressions inside its string literals.
    return _QUOTED_EXPRESSION.sub(
        lambda m: f'"{_raw(m.group(1))}"' if _is_jsonata(m.group(1)) else m.group(0), text
    )
