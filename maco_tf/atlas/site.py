"""The atlas website: ``index.html``, one page per class, thumbnails and assets, written into --out.

All HTML lives in the templates of ``maco_tf/atlas/site/`` (pages in ``index.html`` and
``class.html``, their parts in ``fragments.html``), filled with :class:`string.Template`; every
value is HTML-escaped and every link is relative (the site works from ``file://`` and from any
static server, and loads nothing from the network). Every file is read and written through
:class:`maco_tf.files.OutputFolder`, so no record of a results file makes the site touch a path
outside the folder.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

from maco_tf.atlas.examples import is_imagenet
from maco_tf.atlas.photo_copies import photo_size, reduced_copy
from maco_tf.atlas.site_data import Site, collect
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.models.zoo import get_imagenet_classes

__all__ = ["SiteSummary", "build_site"]

#: Sub-folders of ``--out`` written by the site build (besides ``index.html``).
CLASS_DIR, THUMB_DIR, ASSET_DIR = "classes", "thumbs", "assets"
SITE_ASSETS = ("style.css", "search.js")
THUMB_SIDE = 192
_PART_RE = re.compile(r"^<!-- == (\w+) == -->\n", re.MULTILINE)


@dataclass(frozen=True)
class SiteSummary:
    """What :func:`build_site` wrote.

    Attributes
    ----------
    index
        Path of ``index.html``.
    classes
        Number of class pages.
    notes
        Results files that were skipped (unreadable, or made with other settings).
    """

    index: Path
    classes: int
    notes: tuple[str, ...] = ()


def _asset(name: str) -> str:
    return (
        resources.files("maco_tf.atlas").joinpath("site").joinpath(name).read_text(encoding="utf-8")
    )


def _parts(name: str = "fragments.html") -> dict[str, Template]:
    """The parts of a fragments template by name (each without its final newline)."""
    pieces = _PART_RE.split(_asset(name))[1:]
    names, texts = pieces[0::2], (text.removesuffix("\n") for text in pieces[1::2])
    return {name: Template(text) for name, text in zip(names, texts, strict=True)}


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _url(path: str) -> str:
    """A relative URL for a site path (``/``-separated, percent-encoded)."""
    return quote(path, safe="/")


def _percent(probability: float) -> str:
    value = 100.0 * probability
    return f"{value:.0f}%" if value >= 9.5 else f"{value:.1f}%"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _objective(record: dict) -> float:
    """The record's objective value; NaN when it is missing or null (a diverged run)."""
    value = record.get("objective_value")
    return float("nan") if value is None else float(value)


def _synonyms(record: dict) -> tuple[tuple[str, ...], str | None]:
    """ImageNet synonyms and WordNet id of a class record (empty for other models)."""
    index, name = int(record["index"]), str(record["name"])
    if not is_imagenet(index, name):
        return (), None
    classes = get_imagenet_classes()
    return tuple(s for s in classes.synonyms(index) if s != name), classes.wnid(index)


def _top1(record: dict) -> tuple[bool, dict] | None:
    top5 = record.get("top5")
    if not top5:
        return None
    return int(top5[0]["index"]) == int(record["index"]), top5[0]


def _pair(value: object) -> list[str]:
    """A recorded ``[low, high]`` pair (or one number for both) as text; ``?`` when missing."""
    if isinstance(value, int | float):
        value = [value, value]
    return [f"{v:g}" for v in value] if isinstance(value, list) else ["?", "?"]


def _settings_rows(site: Site) -> list[tuple[str, str]]:
    """The run's settings under their knob names (those of the flags and ``RunConfig``)."""
    s = site.settings
    box, values = _pair(s.get("box_size")), _pair(s.get("values_range"))
    size = s.get("size")
    height, width = size if isinstance(size, list) else (size, size)  # older records: an int
    return [
        ("model", f"{s.get('model')} ({s.get('model_source', '?')})"),
        ("method", str(s.get("method"))),
        ("steps", str(s.get("steps"))),
        ("crops", f"{s.get('crops')} per step"),
        ("size", f"{height} × {width} px"),
        ("box_size", f"{box[0]} → {box[1]} of the image side"),
        ("whole_views", f"{s.get('whole_views', '?')} of the {s.get('crops')} crops per step"),
        ("noise", f"{s.get('noise', '?')} (std, for a value range of width 2)"),
        ("seed", str(s.get("seed"))),
        ("values_range", f"{values[0]} … {values[1]}"),
        ("maco_tf", site.version),
    ]


def _thumbnail(folder: OutputFolder, record: dict) -> str:
    """``thumbs/<slug>.jpg`` (made if missing or older than the image); its site path."""
    source = folder.path(record["files"]["image"])
    name = f"{THUMB_DIR}/{record['slug']}.jpg"
    if not reduced_copy(source, folder.path(name), THUMB_SIDE):
        raise MacoError(f"cannot read {source}")
    return name


class _Pages:
    """The HTML of the site's pages, from the templates and the site's data."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.parts = _parts()

    def part(self, part: str, **values: object) -> str:
        return self.parts[part].substitute(**values)

    def label(self, record: dict) -> str:
        """How the pager names a page's target."""
        return record["name"]

    def definition_list(self, rows: Sequence[tuple[str, str]]) -> str:
        items = "\n".join(self.part("definition", term=_esc(k), value=_esc(v)) for k, v in rows)
        return self.part("definition_list", items=items)

    def footer(self) -> str:
        site = self.site
        return _esc(
            f"Made with maco_tf {site.version} (MACO: Fel et al., NeurIPS 2023). "
            f"{len(site.classes)} classes, {_duration(site.total_time_s)} of compute recorded."
        )

    # -------------------------------------------------------------------------- index page

    def card(self, record: dict, thumb: str) -> str:
        slug, name, index = record["slug"], record["name"], int(record["index"])
        synonyms, wnid = _synonyms(record)
        top1 = _top1(record)
        if top1 is None:
            meta = self.part("meta_none")
        elif top1[0]:
            meta = self.part("meta_recognised", percent=_percent(top1[1]["probability"]))
        else:
            seen = f"seen as {top1[1]['name']}, {_percent(top1[1]['probability'])}"
            meta = self.part("meta_seen_as", seen=_esc(seen))
        return self.part(
            "card",
            search=_esc(" ".join([str(index), name, *synonyms, wnid or "", slug])),
            href=_url(f"{CLASS_DIR}/{slug}.html"),
            thumb=_url(thumb),
            side=THUMB_SIDE,
            name=_esc(name),
            index=index,
            meta=meta,
        )

    def index_page(self, template: Template, thumbs: dict[str, str]) -> str:
        site = self.site
        recognised = sum(1 for r in site.classes if (_top1(r) or (False,))[0])
        with_top5 = sum(1 for r in site.classes if _top1(r) is not None)
        count = len(site.classes)
        noun = "class" if count == 1 else "classes"
        model = site.settings.get("model")
        lede = (
            f"Feature visualizations (MACO) of {count} {noun} of {model}: the image each class "
            f"logit likes best."
        )
        if with_top5:
            lede += (
                f" The model's top-1 on the image is its own class for {recognised} of {with_top5}."
            )
        return template.substitute(
            title=_esc(f"MACO atlas: {model}"),
            lede=_esc(lede),
            settings=self.definition_list(_settings_rows(site)),
            count_text=_esc(f"{count} {noun}"),
            cards="\n".join(self.card(r, thumbs[r["slug"]]) for r in site.classes),
            footer=self.footer(),
        )

    # -------------------------------------------------------------------------- class pages

    def pager(self, position: int) -> str:
        parts = [self.part("pager_home")]
        for offset, rel, arrow in ((-1, "prev", "← previous"), (1, "next", "next →")):
            other = position + offset
            if 0 <= other < len(self.site.classes):
                record = self.site.classes[other]
                href, name = _url(record["slug"] + ".html"), _esc(self.label(record))
                parts.append(self.part("pager_link", rel=rel, href=href, arrow=arrow, name=name))
            else:
                parts.append(self.part("pager_none", arrow=arrow))
        return "\n".join(parts)

    def figure(self, path: str, alt: str, caption: str, checker: bool = False) -> str:
        width, height = photo_size(OutputFolder(self.site.out).path(path))
        shown = min(width, 320) if width else 320
        image = self.part(
            "figure_image",
            src=_url("../" + path),
            width=shown,
            height=round(shown * height / width) if width else shown,
            alt=_esc(alt),
        )
        if checker:
            image = self.part("checker", image=image)
        return self.part("figure", image=image, caption=_esc(caption))

    def figures(self, record: dict) -> str:
        name, files = record["name"], record["files"]
        return "\n".join(
            [
                self.figure(
                    files["image"], f"MACO visualization of {name}", "The optimised image."
                ),
                self.figure(
                    files["rgba"],
                    f"MACO visualization of {name} with its transparency map as alpha, over a "
                    f"checkerboard",
                    "With transparency: pixels whose gradient mattered little fade out.",
                    checker=True,
                ),
                self.figure(
                    files["heatmap"],
                    f"Importance heatmap of the MACO visualization of {name}",
                    "Importance: accumulated input gradients (bright = important).",
                ),
            ]
        )

    def top5(self, record: dict, pages: dict[int, str]) -> str:
        top5 = record.get("top5")
        if not top5:
            return self.part("top5_none")
        rows = []
        own = int(record["index"])
        for rank, entry in enumerate(top5, start=1):
            index, probability = int(entry["index"]), float(entry["probability"])
            label = _esc(str(entry["name"]))
            if index in pages and index != own:
                label = self.part("top5_link", href=_url(pages[index] + ".html"), label=label)
            rows.append(
                self.part(
                    "top5_row",
                    row_class=self.part("top5_target_class") if index == own else "",
                    rank=rank,
                    label=label,
                    index=index,
                    width=max(1, round(120 * probability)),
                    percent=_percent(probability),
                )
            )
        caption = (
            f"Top-5 classes of {self.site.settings.get('model')} on the whole image, resized to "
            f"its input (softmax probabilities)."
        )
        return self.part("top5_table", caption=_esc(caption), rows="\n".join(rows))

    def examples(self, record: dict) -> str:
        examples = self.site.examples.get(record["slug"], [])
        if not examples:
            return ""
        name = _esc(record["name"])
        items = "\n".join(
            self.part("example", src=_url("../" + path), number=number, name=name)
            for number, path in enumerate(examples, start=1)
        )
        return self.part("examples", count=len(examples), name=name, items=items)

    def concepts(self, record: dict) -> str:
        concepts = self.site.concepts.get(record["slug"], [])
        if not concepts:
            return ""
        items = []
        for concept in concepts:
            importance = concept.get("importance")
            label = f"Concept {concept['index']}"
            if importance is not None:
                label += f", importance {importance:.3f}"
            alt = (
                f"MACO visualization of CRAFT concept {concept['index']} of {record['name']}, "
                f"with transparency"
            )
            src = _url("../" + concept["files"]["rgba"])
            items.append(self.part("concept", src=src, alt=_esc(alt), label=_esc(label)))
        intro = (
            f"CRAFT factorised the model's last spatial activations on crops of "
            f"{concepts[0].get('examples', '?')} example images into {len(concepts)} concepts; "
            f"each is shown as the MACO image that maximises it, most important first (Sobol "
            f"total index)."
        )
        return self.part("concepts", intro=_esc(intro), items="\n".join(items))

    def class_page(self, template: Template, position: int, pages: dict[int, str]) -> str:
        site = self.site
        record = site.classes[position]
        name, index = record["name"], int(record["index"])
        synonyms, wnid = _synonyms(record)
        about = []
        if synonyms:
            about.append("Also: " + ", ".join(synonyms) + ".")
        if wnid:
            about.append(f"WordNet id {wnid}.")
        about.append(f"Class {index} of the model's logits.")
        objective = _objective(record)
        rows = _settings_rows(site) + [
            ("objective (last 10 % of steps)", f"{objective:.4g}"),
            ("image seed", f"{record.get('seed')} (position {record.get('batch_position')})"),
            ("time per image", f"{record.get('wall_time_s', 0):.1f} s"),
        ]
        if record.get("dead"):
            rows.append(("warning", "no usable gradient: the image stayed at its random start"))
        return template.substitute(
            title=_esc(f"{name}: MACO atlas of {site.settings.get('model')}"),
            pager=self.pager(position),
            heading=self.part("heading", name=_esc(name), index=index),
            synonyms=_esc(" ".join(about)),
            figures=self.figures(record),
            top5=self.top5(record, pages),
            examples=self.examples(record),
            concepts=self.concepts(record),
            settings=self.definition_list(rows),
            footer=self.footer(),
        )


def _remove_stale_pages(folder: OutputFolder, slugs: set[str], pages: str = CLASS_DIR) -> None:
    """Delete the pages in ``pages/`` of targets without results (after ``--overwrite``, say).

    A page whose image exists is kept: another shard may have just finished that target.
    """
    if folder.path(pages).is_dir():
        for page in folder.path(pages).glob("*.html"):
            if page.stem not in slugs and not folder.is_file(f"{page.stem}.png"):
                folder.remove(f"{pages}/{page.name}")


def build_site(out: str | os.PathLike, settings: dict | None = None) -> SiteSummary:
    """Write the atlas website into ``out`` from the results files found there.

    Parameters
    ----------
    out
        The atlas folder (holding ``results.json`` and/or ``results.I-of-N.json``).
    settings
        Show the results made with these settings; default: the settings of most results.

    Returns
    -------
    summary
        The index path, the number of class pages and notes on skipped results files.

    Raises
    ------
    MacoError
        If ``out`` holds no readable results.
    """
    out = Path(out)
    folder = OutputFolder(out)
    site, notes = collect(out, settings)
    for name in SITE_ASSETS:
        folder.write_text(f"{ASSET_DIR}/{name}", _asset(name))
    thumbs = {record["slug"]: _thumbnail(folder, record) for record in site.classes}
    pages = {int(r["index"]): r["slug"] for r in site.classes}
    html_pages = _Pages(site)
    template = Template(_asset("class.html"))
    for position, record in enumerate(site.classes):
        text = html_pages.class_page(template, position, pages)
        folder.write_text(f"{CLASS_DIR}/{record['slug']}.html", text)
    _remove_stale_pages(folder, {record["slug"] for record in site.classes})
    index = folder.write_text(
        "index.html", html_pages.index_page(Template(_asset("index.html")), thumbs)
    )
    return SiteSummary(index=index, classes=len(site.classes), notes=tuple(notes))
