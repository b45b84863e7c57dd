"""maco_tf.runs.records: results files read as untrusted data, on resume and by the atlas site.

Each row of the hostile-records table is a test here; the property test feeds mutated results
files to the readers, which accept each or refuse it with the project's error.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from maco_tf.atlas.site import build_site
from maco_tf.atlas.site_data import collect
from maco_tf.atlas.unit_site import build_unit_site
from maco_tf.errors import MacoError
from maco_tf.runs.records import MAX_DEPTH, ResultsFormatError, json_safe, parse_bounded
from maco_tf.runs.results import RESULTS_FILE, Results, open_results, read_results, total_time

_ENDINGS = {"image": "", "rgba": "_rgba", "heatmap": "_heatmap"}
SETTINGS = {"model": "tiny", "method": "maco", "steps": 2, "values_range": [0.0, 1.0]}


def _record(slug: str, kind: str = "class", index: int = 1) -> dict:
    return {
        "slug": slug,
        "name": f"{kind} {index}",
        "kind": kind,
        "layer": "logits" if kind == "class" else "conv1",
        "index": index,
        "key": f"{kind}:{index}",
        "files": {
            k: f"{slug}{s}.png"
            for k, s in (("image", ""), ("rgba", "_rgba"), ("heatmap", "_heatmap"))
        },
        "objective_value": 1.5,
        "dead": False,
        "top5": [{"index": index, "name": f"{kind} {index}", "probability": 0.5}],
        "seed": 3,
        "image_id": index,
        "batch_position": 0,
        "wall_time_s": 0.2,
        "batch_wall_time_s": 0.4,
    }


def _write_folder(out: Path, records: list[dict], runs: object = None) -> Path:
    """``out`` with a results file of ``records`` and the PNGs their (well-typed) files name."""
    out.mkdir(parents=True, exist_ok=True)
    pixels = np.full((8, 8, 3), 128, np.uint8)
    for record in records:
        files = record.get("files")
        for name in files.values() if isinstance(files, dict) else ():
            if isinstance(name, str) and "/" not in name and name.endswith(".png"):
                Image.fromarray(pixels).save(out / name)
    data = {"settings": SETTINGS, "targets": records, "runs": runs or [{"time_s": 1.0}]}
    (out / RESULTS_FILE).write_text(json.dumps(data))
    return out / RESULTS_FILE


# ------------------------------------------------------------------------ run history


@pytest.mark.parametrize("runs", ["abc", [1, 2], [{"time_s": "1 s"}], [{"time_s": -5}], {"a": 1}])
def test_a_bad_run_history_is_reset_with_a_warning_and_saving_works(tmp_path, runs, capsys):
    path = _write_folder(tmp_path, [_record("c1")], runs=runs)
    results = open_results(path, SETTINGS, overwrite=False)
    assert results.runs == [] and "c1" in results.targets
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "run history reset" in err
    results.runs.append({"time_s": 2.0})
    results.save()  # the crash after computing, before
    assert json.loads(path.read_text())["total_time_s"] == 2.0


def test_times_that_add_past_the_float_range_stay_finite_and_standard(tmp_path):
    results = Results(tmp_path / RESULTS_FILE, SETTINGS)
    results.runs = [{"time_s": 1e308}, {"time_s": 1e308}, {"time_s": float("inf")}]
    results.targets["c1"] = {**_record("c1"), "objective_value": float("nan")}
    results.save()

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    data = json.loads((tmp_path / RESULTS_FILE).read_text(), parse_constant=refuse)
    assert np.isfinite(data["total_time_s"]) and data["targets"][0]["objective_value"] is None
    assert np.isfinite(total_time([{"time_s": 1e308}] * 3))


def test_infinity_in_a_file_is_read_as_null_and_its_history_reset(tmp_path, capsys):
    path = _write_folder(tmp_path, [_record("c1")])
    path.write_text(path.read_text().replace('"time_s": 1.0', '"time_s": Infinity'))
    found = read_results(path)
    assert found.runs == [] and "run history reset" in found.warnings[0]


# ------------------------------------------------------------------------ bounded parse


def test_a_file_nested_100000_deep_is_refused_without_recursion(tmp_path):
    path = tmp_path / RESULTS_FILE
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ResultsFormatError, match="nests 100000 levels deep"):
        read_results(path)
    with pytest.raises(MacoError, match="delete it, use another --out folder"):
        open_results(path, SETTINGS, overwrite=False)


def test_brackets_inside_strings_do_not_count_as_depth():
    text = json.dumps({"name": "[" * 100 + '\\"{{{', "deep": [[[1]]]})
    assert parse_bounded(text.encode(), "r.json")["deep"] == [[[1]]]
    with pytest.raises(ResultsFormatError, match="levels deep"):
        parse_bounded(("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)).encode(), "r.json")


def test_json_safe_replaces_non_finite_floats():
    value = {"a": [1.0, float("nan")], "b": (float("-inf"), "x")}
    assert json_safe(value) == {"a": [1.0, None], "b": [None, "x"]}


# ------------------------------------------------------------------------ wrong types

_TRUST = {
    "score": 0.5,
    "layers": ["a"],
    "visualization": [1.0],
    "natural": [1.0],
    "baseline": [0.0],
}
#: 14+ kinds of wrong types in one record: each is skipped, with one line naming it.
WRONG = {
    "index string": {"index": "abc"},
    "index float": {"index": 1.5},
    "index bool": {"index": True},
    "name number": {"name": 3},
    "kind list": {"kind": ["class"]},
    "layer null": {"layer": None},
    "files string": {"files": "x.png"},
    "file number": {"files": {"image": 7, "rgba": "a.png", "heatmap": "b.png"}},
    "top5 string": {"top5": "goldfish"},
    "top5 items numbers": {"top5": [1, 2]},
    "top5 probability string": {"top5": [{"index": 1, "name": "a", "probability": "0.5"}]},
    "objective string": {"objective_value": "1.0"},
    "dead string": {"dead": "no"},
    "wall time string": {"wall_time_s": "fast"},
    "seed string": {"seed": "abc"},
    "trust score string": {"trust": {**_TRUST, "score": "high"}},
    "trust lengths differ": {"trust": {**_TRUST, "natural": [1.0, 2.0]}},
    "trust not an object": {"trust": [0.5]},
    "patches values strings": {"patches": {"files": ["p.jpg"], "photos": ["a"], "values": ["x"]}},
    "diverse files string": {"diverse": {"files": "abc"}},
    "concept without class": {"kind": "concept"},
}


@pytest.mark.parametrize("wrong", WRONG, ids=list(WRONG))
def test_build_only_skips_a_wrongly_typed_record_with_one_line(tmp_path, wrong):
    bad = {**_record("c2", index=2), **WRONG[wrong]}
    _write_folder(tmp_path, [_record("c1"), bad])
    site, notes = collect(tmp_path, None)
    assert [r["slug"] for r in site.classes] == ["c1"]
    assert [n for n in notes if "record 'c2' skipped" in n] == notes and len(notes) == 1
    summary = build_site(tmp_path)
    assert summary.classes == 1 and (tmp_path / "classes" / "c1.html").exists()


@pytest.mark.parametrize("wrong", WRONG, ids=list(WRONG))
def test_resume_recomputes_a_wrongly_typed_record(tmp_path, wrong, capsys):
    bad = {**_record("c2", index=2), **WRONG[wrong]}
    path = _write_folder(tmp_path, [_record("c1"), bad])
    results = open_results(path, SETTINGS, overwrite=False)
    assert list(results.targets) == ["c1"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "record 'c2' skipped" in err[0] and "computed again" in err[0]


def test_unit_build_only_skips_wrong_types(tmp_path):
    records = [_record("u0", "channel", 0), {**_record("u1", "channel", 1), "index": "abc"}]
    records[0]["trust"] = {**_TRUST, "references": 2, "baseline_photos": 3}
    records[0]["patches"] = {"files": [], "photos": [], "values": []}
    records[0]["objective_value"] = None
    _write_folder(tmp_path, records)
    summary = build_unit_site(tmp_path)
    assert summary.classes == 1 and any("record 'u1' skipped" in n for n in summary.notes)


@pytest.mark.parametrize(
    "settings_value", [{"values_range": "0,1"}, {"box_size": [0.1, "x"]}, {"size": "big"}]
)
def test_wrongly_typed_settings_make_the_file_unreadable(tmp_path, settings_value):
    path = _write_folder(tmp_path, [_record("c1")])
    data = json.loads(path.read_text())
    data["settings"].update(settings_value)
    path.write_text(json.dumps(data))
    with pytest.raises(ResultsFormatError, match="malformed"):
        read_results(path)


# ------------------------------------------------------------------------ property test

_VALID = {"settings": SETTINGS, "targets": [_record("c1"), _record("c2", "channel", 2)],
          "runs": [{"time_s": 1.0}]}  # fmt: skip
_ATOMS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.sampled_from([[], {}, [1, 2], {"a": "b"}, "abc", "1e999"]),
)


def _paths(value: object, prefix: tuple = ()) -> list[tuple]:
    """Every path (keys and indices) to a value nested in ``value``."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _paths(item, (*prefix, index))
    return found


@st.composite
def mutated_files(draw) -> bytes:
    """A valid results file with a few values replaced, deleted, or its text cut or nested."""
    data = copy.deepcopy(_VALID)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(data)
        path = draw(st.sampled_from(paths[1:]))
        parent = data
        for step in path[:-1]:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(_ATOMS)
    text = json.dumps(data, allow_nan=True)
    how = draw(st.sampled_from(["whole", "cut", "nest", "bytes"]))
    if how == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif how == "nest":
        depth = draw(st.integers(1, 5000))
        text = text.replace('"runs": ', '"runs": ' + "[" * depth, 1) + "]" * depth
    data_bytes = text.encode()
    if how == "bytes":
        at = draw(st.integers(0, len(data_bytes)))
        data_bytes = data_bytes[:at] + draw(st.binary(max_size=8)) + data_bytes[at:]
    return data_bytes


@settings(
    max_examples=300,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(content=mutated_files())
def test_mutated_results_files_are_accepted_or_refused_with_the_project_error(tmp_path, content):
    out = tmp_path / "site"
    _write_folder(out, [_record("c1"), _record("c2", "channel", 2)])
    (out / RESULTS_FILE).write_bytes(content)
    try:
        found = read_results(out / RESULTS_FILE)
    except MacoError:
        event("refused")
        return
    event(f"accepted with {len(found.records)} of 2 records")
    assert all(isinstance(r, dict) for r in found.records.values())
    for build in (build_site, build_unit_site):  # --build-only, classes and units
        try:
            build(out)
        except MacoError:
            pass
    results = open_results(out / RESULTS_FILE, found.settings, overwrite=False)
    results.save()  # what resume writes back is standard JSON, read back alike
    json.loads((out / RESULTS_FILE).read_bytes(), parse_constant=pytest.fail)
    assert read_results(out / RESULTS_FILE).records.keys() == found.records.keys()
