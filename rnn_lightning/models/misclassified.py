"""The test reviews a classifier got wrong, as markdown for TensorBoard's Text tab."""

from __future__ import annotations

from torch import Tensor

ROWS = 50  # enough to see what the mistakes have in common; the whole list would be hundreds
MARKDOWN = str.maketrans({c: "\\" + c for c in "\\`*_[]#"} | {"<": "&lt;"})  # a review's characters, as text


def misclassified_markdown(
    texts: list[str], predictions: Tensor, positive: Tensor, labels: Tensor, names: list[str], rows: int = ROWS
) -> str:
    """The most confident mistakes first, one numbered line each, under a line that says how many of how many.

    ``predictions`` and ``labels`` are (N,) class indices into ``names``, ``positive`` (N,) the model's probability
    of class 1, for the first N of ``texts``. A list, not a table: TensorBoard's text view lets a table cell break
    anywhere inside a word, which squeezed the short columns of a table into one letter per line.
    """
    wrong = (predictions != labels).nonzero().flatten().tolist()
    wrong.sort(key=lambda i: -abs(float(positive[i]) - 0.5))
    shown = wrong[:rows]
    if not wrong:
        return f"No misclassified reviews among the {len(labels)} test reviews."
    which = f"the {len(shown)} most confident" if len(shown) < len(wrong) else "all of them"
    lines = [
        f"{len(wrong)} of the {len(labels)} test reviews are misclassified; here {which}, most confident first "
        f"(true → predicted label, p({names[1]}), the review).",
        "",
    ]
    for rank, i in enumerate(shown, start=1):
        verdict = f"**{names[labels[i]]} → {names[predictions[i]]}**, {float(positive[i]):.3f}"
        lines.append(f"{rank}. {verdict}: {texts[i].translate(MARKDOWN)}")
    return "\n".join(lines)
