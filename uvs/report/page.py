"""The page itself: one HTML file from `page.html` (jinja2), its CSS and script inlined."""

from __future__ import annotations

import datetime
import os
from importlib import resources

from uvs import __version__
from uvs.errors import UVSError, os_reason
from uvs.fileio import check_not_input, write_text
from uvs.report import need

GENERATOR = '<meta name="generator" content="uvs report">'


def _asset(name: str) -> str:
    return resources.files("uvs.report").joinpath(name).read_text(encoding="utf-8")


def render(title: str, **sections) -> str:
    """The page's HTML: `sections` are the template's variables (training, retrieval, ...)."""
    jinja2 = need("jinja2")
    from markupsafe import Markup  # jinja2's own dependency
    env = jinja2.Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True,
                             undefined=jinja2.StrictUndefined)
    template = env.from_string(_asset("page.html"))
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return template.render(
        title=title, generated=f"uvs {__version__}, {when}",
        css=Markup(_asset("report.css")), script=Markup(_asset("report.js")),
        **{k: sections.get(k) for k in ("training", "retrieval", "search", "gallery",
                                        "alignment")})


def check_output(path: str, inputs: tuple[str, ...] = ()) -> None:
    """Refuse to write over one of the inputs, or over a file that is no uvs report."""
    check_not_input(path, inputs)
    if os.path.lexists(path):
        if not os.path.isfile(path):
            raise UVSError(path, "exists and is not a regular file: give the report another name")
        try:
            with open(path, "rb") as f:
                head = f.read(4096)
        except OSError as err:
            raise UVSError(path, f"cannot read: {os_reason(err)}") from None
        if GENERATOR.encode() not in head:
            raise UVSError(path, "exists and is not a uvs report: refusing to overwrite it")


def write(path: str, html: str, inputs: tuple[str, ...] = ()) -> str:
    """Write the page atomically (an older uvs report at `path` is replaced); returns `path`."""
    check_output(path, inputs)
    write_text(path, html)
    return path
