"""Show the package's real source in a notebook, syntax-highlighted.

Why: a grader stepping through the notebooks should see the algorithms (a model, a feature, the
training step) without the notebooks holding copies of them. The package stays the single source
of truth and the notebook displays exactly the code that runs.
"""

from __future__ import annotations

import inspect
from typing import Any


def source_of(obj: Any) -> str:
    """The source text of a function, class or module, as the package defines it."""
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError) as err:
        raise ValueError(f"no source for {obj!r}: pass a function, class or module of ser_utils") from err


def where(obj: Any) -> str:
    """``ser_utils/models/cnn.py:42`` for an object: where a reader finds it in the package."""
    path = inspect.getsourcefile(obj) or "?"
    marker = path.rfind("ser_utils")
    line = inspect.getsourcelines(obj)[1] if not inspect.ismodule(obj) else 1
    return f"{path[marker:] if marker >= 0 else path}:{line}"


def show_source(obj: Any) -> Any:
    """Display ``obj``'s source highlighted (HTML in Jupyter; the plain text elsewhere).

    Returns the IPython display object, so the last line of a cell renders it; outside IPython it
    returns the text.
    """
    text = source_of(obj)
    try:
        from IPython.display import HTML
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer
    except ImportError:
        return text
    formatter = HtmlFormatter(noclasses=True, style="friendly")
    caption = f"<div style='font-size:.85em;color:#555'>source: <code>{where(obj)}</code></div>"
    return HTML(caption + highlight(text, PythonLexer(), formatter))
