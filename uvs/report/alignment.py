"""The page of `uvs align show -o FILE.html`: the photo with its phrases' boxes and the
phrases' table, styled as the other reports (same template, inline CSS)."""

from __future__ import annotations

import base64

from uvs.report import page


def alignment_page(output: str, png: bytes, result: dict, colours: list[str],
                   inputs: tuple[str, ...] = ()) -> str:
    """Write OUTPUT: `png` (the drawn photo) and `result`'s phrases (`align_sentence`), each
    with the colour of its box (colours[i] for phrase i); returns OUTPUT."""
    phrases = [{**p, "colour": c} for p, c in zip(result["phrases"], colours, strict=True)]
    html = page.render("uvs align show: " + " ".join(result["words"]), alignment={
        "photo": "data:image/png;base64," + base64.b64encode(png).decode("ascii"),
        "phrases": phrases, "words": len(result["words"]), "beta": result["beta"],
        "energy": result["energy"]})
    return page.write(output, html, inputs=inputs)
