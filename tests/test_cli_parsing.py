"""maco_tf.cli.parsing and maco_tf.runs.index_lists: flag values, negative numbers, index ranges."""

from __future__ import annotations

import pytest

from maco_tf.cli.main import main
from maco_tf.cli.parser import build_parser
from maco_tf.cli.parsing import join_negative_values, value_flags
from maco_tf.runs.index_lists import MAX_INDICES, IndexListError, expand_class_spec, parse_indices


def _parse(*words: str):
    parser = build_parser()
    return parser.parse_args(join_negative_values(list(words), value_flags(parser)))


@pytest.mark.parametrize("command", ["visualize", "atlas", "layers"])
def test_negative_values_range_is_a_value(command):
    args = _parse(command, "--values-range", "-1,1")
    assert args.values_range == (-1.0, 1.0)
    assert _parse(command, "--values-range", "-.5,.5").values_range == (-0.5, 0.5)


def test_only_values_of_value_flags_are_joined():
    flags = value_flags(build_parser())
    assert {"--values-range", "--channel", "--seed", "--shard", "--out"} <= flags
    assert "--quiet" not in flags and "--overwrite" not in flags
    words = ["visualize", "--seed", "-3", "--quiet", "-1", "--", "--out", "-2"]
    assert join_negative_values(words, flags) == [
        "visualize", "--seed=-3", "--quiet", "-1", "--", "--out", "-2"
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("words", "fragment"),
    [
        (["--seed", "-1"], "must be >= 0, got -1"),
        (["--values-range", "-1,-2"], "expected finite LOW < HIGH"),
        (["--channel", "0,5-3"], "reversed range 5-3"),
        (["--channel", "0-2000000000"], f"more than the {MAX_INDICES}"),
        (["--neuron", "1,x"], "ranges like 0,3,10-12"),
        (["--values-range=-1e308,1e308"], "finite in float32"),
        (["--values-range=-3e38,3e38"], "their difference"),
        (["--values-range", "0,1e39"], "finite in float32"),
        (["--noise", "1e308"], "the float32 limit"),
        (["--phase-spread", "1e39"], "the float32 limit"),
    ],
)
def test_bad_values_are_one_line_exit_2(capsys, words, fragment):
    assert main(["visualize", *words]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "expected one argument" not in err and "Traceback" not in err


def test_parse_indices():
    assert parse_indices("0,3,10-12") == [0, 3, 10, 11, 12]
    assert parse_indices(" 4 , 2-2,-1") == [4, 2, -1]
    with pytest.raises(IndexListError, match="reversed range 5-3 .*write 3-5"):
        parse_indices("0,5-3")
    with pytest.raises(IndexListError, match="2000000001 indices"):
        parse_indices("0-2000000000")  # refused by counting, without building the list
    for bad in ("", "a", "1-", "1--2", "0,,1"):
        with pytest.raises(IndexListError):
            parse_indices(bad)


def test_expand_class_spec():
    assert expand_class_spec("espresso,0-2,black-and-tan coonhound") == [
        "espresso", "0", "1", "2", "black-and-tan coonhound"
    ]  # fmt: skip
    assert len(expand_class_spec("0-99")) == 100
    with pytest.raises(IndexListError, match="reversed"):
        expand_class_spec("9-3")
    with pytest.raises(IndexListError, match="indices"):
        expand_class_spec("0-9999999999")
