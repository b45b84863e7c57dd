"""The unit atlas website: ``index.html`` with a card per unit, ``units/<slug>.html`` per unit.

The pages come from the templates ``unit_index.html``, ``unit.html`` and ``unit_fragments.html``
of ``maco_tf/atlas/site/`` and share the class atlas's stylesheet, search script, thumbnails and
figure, top-5 and settings parts (:mod:`maco_tf.atlas.site`). A unit page shows the unit's
visualization (image, transparency, importance), its diverse images, its top-activating patches
and its trust score when they were made, and the model's top-5 on the visualization.
"""

from __future__ import annotations

import os
from pathlib import Path
from string import Template

from maco_tf.atlas.shards import results_paths
from maco_tf.atlas.site import (
    ASSET_DIR,
    SITE_ASSETS,
    THUMB_SIDE,
    SiteSummary,
    _asset,
    _duration,
    _esc,
    _objective,
    _Pages,
    _parts,
    _remove_stale_pages,
    _settings_rows,
    _thumbnail,
    _url,
)
from maco_tf.atlas.site_data import Site, collect
from maco_tf.errors import MacoError
from maco_tf.files import OutputFolder
from maco_tf.runs.results import read_results

__all__ = ["UNIT_DIR", "UNIT_KINDS", "build_unit_site", "holds_classes", "holds_units"]

#: Sub-folder of ``--out`` with the unit pages.
UNIT_DIR = "units"
#: Record kinds the unit atlas shows, in index order within a layer.
UNIT_KINDS = ("channel", "neuron", "direction")
#: Trust scores at or above this count as "natural" on the pages.
TRUSTED = 0.5


def _kinds_in(out: Path) -> set[str]:
    kinds = set()
    for path in results_paths(out):
        try:
            kinds.update(r.get("kind") for r in read_results(path).records.values())
        except MacoError:
            continue
    return kinds


def holds_units(out: Path) -> bool:
    """Whether a results file of ``out`` records channels, neurons or directions."""
    return bool(_kinds_in(out) & set(UNIT_KINDS))


def holds_classes(out: Path) -> bool:
    """Whether a results file of ``out`` records classes (a class atlas)."""
    return "class" in _kinds_in(out)


def _kind_name(record: dict) -> str:
    return f"{record['kind']} {record['index']}"


def _verdict(score: float | None) -> tuple[str, str]:
    """CSS class and words for a trust score."""
    if score is None:
        return "", "undefined: the top photos are no closer to one another than the baseline"
    if score >= TRUSTED:
        return "ok", "reached much like the photos that excite the unit"
    if score >= 0:
        return "off", "closer to the unit's photos than unrelated photos are, but not by much"
    return "off", "further from the unit's photos than unrelated photos: suspect"


def _score_text(score: float | None) -> str:
    return "n/a" if score is None else f"{score:.2f}"


class _UnitPages(_Pages):
    """The class atlas's pages, with the unit parts and the unit index and unit pages."""

    def __init__(self, site: Site) -> None:
        super().__init__(site)
        self.parts = {**self.parts, **_parts("unit_fragments.html")}
        self.folder = OutputFolder(site.out)

    def label(self, record: dict) -> str:
        """Pager names: ``channel 12``."""
        return _kind_name(record)

    def footer(self) -> str:
        site = self.site
        return _esc(
            f"Made with maco_tf {site.version} (MACO: Fel et al., NeurIPS 2023). "
            f"{len(site.classes)} units, {_duration(site.total_time_s)} of compute recorded."
        )

    def card(self, record: dict, thumb: str) -> str:
        trust = record.get("trust")
        if trust is not None:
            css, _ = _verdict(trust.get("score"))
            meta = self.part("meta_trust", verdict=css, score=_score_text(trust.get("score")))
        else:
            value = _objective(record)
            meta = self.part("meta_objective", value=f"{value:.3g}")
        name = _kind_name(record)
        return self.part(
            "card",
            search=_esc(" ".join([name, record["layer"], record["name"], record["slug"]])),
            href=_url(f"{UNIT_DIR}/{record['slug']}.html"),
            thumb=_url(thumb),
            side=THUMB_SIDE,
            name=_esc(name),
            layer=_esc(record["layer"]),
            meta=meta,
        )

    def index_page(self, template: Template, thumbs: dict[str, str]) -> str:
        site = self.site
        count = len(site.classes)
        layers = sorted({r["layer"] for r in site.classes})
        model = site.settings.get("model")
        noun = "unit" if count == 1 else "units"
        extras = [
            text
            for key, text in (
                ("diverse", "its diverse images"),
                ("patches", "the photo patches that drive it most"),
                ("trust", "a trust score"),
            )
            if any(r.get(key) for r in site.classes)
        ]
        lede = (
            f"Feature visualizations (MACO) of {count} {noun} of {model} (layer "
            f"{', '.join(layers)}): the image each unit likes best"
            + "".join(f", {text}" for text in extras)
            + "."
        )
        return template.substitute(
            title=_esc(f"MACO unit atlas: {model}"),
            lede=_esc(lede),
            settings=self.definition_list(_settings_rows(site)),
            count_text=_esc(f"{count} {noun}"),
            cards="\n".join(self.card(r, thumbs[r["slug"]]) for r in site.classes),
            footer=self.footer(),
        )

    def diverse(self, record: dict) -> str:
        diverse = record.get("diverse") or {}
        files = [f for f in diverse.get("files") or [] if self.folder.is_file(f)]
        if not files:
            return ""
        values = diverse.get("objective_values") or [None] * len(files)
        name = _kind_name(record)
        items = []
        for number, (path, value) in enumerate(zip(files, values, strict=False), start=1):
            label = f"Copy {number}" + ("" if value is None else f", objective {value:.3g}")
            alt = f"Diverse MACO visualization {number} of {name} of {record['layer']}"
            items.append(
                self.part("diverse_image", src=_url("../" + path), alt=_esc(alt), label=_esc(label))
            )
        weight = diverse.get("setting", "?x?").split("x", 1)[-1]
        intro = (
            f"{len(files)} images optimised together for the same unit, with a diversity term "
            f"(weight {weight}) that pushes their Gram matrices apart: facets of what it "
            f"responds to."
        )
        return self.part("diverse", intro=_esc(intro), items="\n".join(items))

    def patches(self, record: dict) -> str:
        entry = record.get("patches") or {}
        files = entry.get("files") or []
        if not files or not all(self.folder.is_file(name) for name in files):
            return ""
        name = _kind_name(record)
        items = []
        for rank, (path, photo, value) in enumerate(
            zip(files, entry["photos"], entry["values"], strict=True), start=1
        ):
            alt = f"Patch {rank} of photo {photo}, response {value:.3g} of {name}"
            label = f"{photo}: {value:.3g}"
            src = _url("../" + path)
            items.append(self.part("patch", src=src, alt=_esc(alt), label=_esc(label)))
        side = entry.get("field")
        intro = (
            f"The {len(files)} photos of the examples folder with the strongest response of this "
            f"unit (its largest value over the layer's positions), each cropped to the unit's "
            f"effective receptive field ({side} px of the model input) around the strongest "
            f"position. Captions: photo and response."
        )
        return self.part("patches", intro=_esc(intro), items="\n".join(items))

    def trust(self, record: dict) -> str:
        if "patches" not in record:
            return ""
        trust = record.get("trust")
        if trust is None:
            return self.part(
                "trust_none",
                text=_esc(
                    "No trust score: it needs at least 3 readable photos in the examples folder."
                ),
            )
        score = trust.get("score")
        css, words = _verdict(score)
        rows = []
        profiles = (trust["visualization"], trust["natural"], trust["baseline"])
        for layer, vis, nat, base in zip(trust["layers"], *profiles, strict=True):
            rows.append(
                self.part(
                    "trust_row",
                    row_class=self.part("trust_below") if vis < base else "",
                    layer=_esc(layer),
                    visualization=f"{vis:.2f}",
                    natural=f"{nat:.2f}",
                    baseline=f"{base:.2f}",
                )
            )
        intro = (
            f"Geirhos et al. (ICML 2024): does the visualization reach the unit along the path "
            f"natural images take? Layer by layer, the rank correlation of its activations with "
            f"those of the unit's {trust['references']} top photos, against how alike those "
            f"photos are (natural) and how alike {trust['baseline_photos']} other photos are to "
            f"them (baseline). Score: the visualization's gap to the baseline over the natural "
            f"gap, summed over layers; 1 is as natural as the photos, 0 no better than unrelated "
            f"photos."
        )
        return self.part(
            "trust",
            verdict=css,
            score=_score_text(score),
            verdict_text=_esc(words),
            intro=_esc(intro),
            caption=_esc(
                "Mean Spearman correlation with the top photos (rows below the baseline shaded)."
            ),
            rows="\n".join(rows),
        )

    def unit_page(self, template: Template, position: int) -> str:
        site = self.site
        record = site.classes[position]
        name = _kind_name(record)
        objective = _objective(record)
        rows = _settings_rows(site) + [
            ("objective (last 10 % of steps)", f"{objective:.4g}"),
            ("image seed", f"{record.get('seed')} (position {record.get('batch_position')})"),
            ("time per image", f"{record.get('wall_time_s', 0):.1f} s"),
        ]
        if record.get("dead"):
            rows.append(("warning", "no usable gradient: the image stayed at its random start"))
        about = f"{record['kind'].capitalize()} {record['index']} of layer {record['layer']}"
        if record["kind"] == "direction":
            about += f" ({record['name']})"
        model = site.settings.get("model")
        return template.substitute(
            title=_esc(f"{name} of {record['layer']}: MACO unit atlas of {model}"),
            pager=self.pager(position),
            heading=self.part("heading", name=_esc(name), layer=_esc(record["layer"])),
            about=_esc(about + "."),
            figures=self.figures(record),
            diverse=self.diverse(record),
            patches=self.patches(record),
            trust=self.trust(record),
            top5=self.top5(record, {}),
            settings=self.definition_list(rows),
            footer=self.footer(),
        )


def build_unit_site(out: str | os.PathLike, settings: dict | None = None) -> SiteSummary:
    """Write the unit atlas website into ``out`` from the results files found there.

    Parameters
    ----------
    out
        The unit atlas folder.
    settings
        Show the results made with these settings; default: the settings of most results.

    Returns
    -------
    summary
        The index path, the number of unit pages (``classes``) and notes on skipped files.

    Raises
    ------
    MacoError
        If ``out`` holds no readable unit results.
    """
    out = Path(out)
    folder = OutputFolder(out)
    site, notes = collect(out, settings, kinds=UNIT_KINDS)
    if not site.classes:
        raise MacoError(f"no finished units in {out} to build a unit atlas from")
    for name in SITE_ASSETS:
        folder.write_text(f"{ASSET_DIR}/{name}", _asset(name))
    thumbs = {record["slug"]: _thumbnail(folder, record) for record in site.classes}
    pages = _UnitPages(site)
    template = Template(_asset("unit.html"))
    for position, record in enumerate(site.classes):
        text = pages.unit_page(template, position)
        folder.write_text(f"{UNIT_DIR}/{record['slug']}.html", text)
    _remove_stale_pages(folder, {record["slug"] for record in site.classes}, UNIT_DIR)
    index = folder.write_text(
        "index.html", pages.index_page(Template(_asset("unit_index.html")), thumbs)
    )
    return SiteSummary(index=index, classes=len(site.classes), notes=tuple(notes))
