import json
import re
from importlib import resources

import numpy as np
import pytest

from maco_tf.models.zoo.imagenet import (
    NUM_IMAGENET_CLASSES,
    AmbiguousClassError,
    ClassIndexError,
    ImageNetClassError,
    ImageNetClasses,
    UnknownClassError,
    _normalize,
    get_imagenet_classes,
    resolve_classes,
)


@pytest.fixture(scope="module")
def classes() -> ImageNetClasses:
    return get_imagenet_classes()


# ------------------------------------------------------------------ data file


def test_data_file_ships_with_package_and_is_small():
    resource = resources.files("maco_tf").joinpath("data").joinpath("imagenet_classes.json")
    text = resource.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 100_000
    data = json.loads(text)
    assert data["fields"] == ["wnid", "name", "synonyms"]
    assert len(data["classes"]) == NUM_IMAGENET_CLASSES
    assert "MIT" in data["source"]


def test_wnids_are_the_standard_sorted_ilsvrc_order(classes):
    wnids = [classes.wnid(i) for i in range(len(classes))]
    assert wnids == sorted(wnids)
    assert len(set(wnids)) == NUM_IMAGENET_CLASSES
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert classes.wnid(0) == "n01440764"
    assert classes.wnid(967) == "n07920052"
    assert classes.wnid(999) == "n15075141"


def test_names_and_synonyms_are_clean(classes):
    names = list(classes)
    assert len({_normalize(n) for n in names}) == NUM_IMAGENET_CLASSES
    for i in range(len(classes)):
        assert "," not in classes.name(i)
        syns = classes.synonyms(i)
        assert isinstance(syns, tuple) and syns
        for s in syns:
            assert s == s.strip() and s and "," not in s


def test_every_display_name_resolves_to_its_own_class(classes):
    for i, name in enumerate(classes):
        assert classes.index(name) == i


def test_every_synonym_resolves_or_is_reported_ambiguous(classes):
    for i in range(len(classes)):
        for syn in classes.synonyms(i):
            try:
                assert classes.index(syn) == i or _normalize(syn) in {
                    _normalize(n) for n in classes
                }
            except AmbiguousClassError as err:
                assert i in err.indices


# ------------------------------------------------------------------ known classes


@pytest.mark.parametrize(
    ("index", "name", "first_synonym"),
    [
        (0, "tench", "tench"),
        (1, "goldfish", "goldfish"),
        (2, "great white shark", "great white shark"),
        (281, "tabby cat", "tabby"),
        (282, "tiger cat", "tiger cat"),
        (967, "espresso", "espresso"),
        (999, "toilet paper", "toilet tissue"),
    ],
)
def test_known_indices(classes, index, name, first_synonym):
    assert classes.name(index) == name
    assert classes[index] == name
    assert classes.synonyms(index)[0] == first_synonym


def test_synonyms_are_the_classic_labels(classes):
    assert classes.synonyms(0) == ("tench", "Tinca tinca")
    assert classes.synonyms(1) == ("goldfish", "Carassius auratus")
    assert classes.synonyms(281) == ("tabby", "tabby cat")
    assert classes.synonyms(999) == ("toilet tissue", "toilet paper", "bathroom tissue")
    assert "man-eater" in classes.synonyms(2)


def test_len_iter_repr(classes):
    assert len(classes) == 1000
    names = list(classes)
    assert names[0] == "tench" and names[999] == "toilet paper"
    assert "1000" in repr(classes)


def test_shared_instance_is_cached_and_equivalent():
    assert get_imagenet_classes() is get_imagenet_classes()
    assert list(ImageNetClasses()) == list(get_imagenet_classes())


# ------------------------------------------------------------------ index()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (967, 967),
        (0, 0),
        (np.int64(281), 281),
        ("967", 967),
        (" 1 ", 1),
        ("+5", 5),
        ("espresso", 967),
        ("Espresso", 967),
        ("  ESPRESSO  ", 967),
        ("tabby", 281),
        ("tabby cat", 281),
        ("tabby_cat", 281),
        ("Tabby-Cat", 281),
        ("great white shark", 2),
        ("great_white_shark", 2),
        ("great-white  shark", 2),
        ("white shark", 2),
        ("man eater", 2),
        ("Carassius auratus", 1),
        ("carassius_auratus", 1),
        ("Tinca tinca", 0),
        ("toilet tissue", 999),
        ("toilet paper", 999),
        ("n07920052", 967),
        ("N01440764", 0),
        ("jack-o'-lantern", 607),
        ("jack o lantern", 607),
        ("potters wheel", 739),
        ("RV", 757),
        ("r.v.", 757),
        ("crane bird", 134),
        ("construction crane", 517),
        ("one-piece bathing suit", 639),
        ("tank suit", 639),
        ("leotard", 638),
        # aliases derived from display names with parentheses / slashes
        ("kite (bird of prey)", 21),
        ("Mexican hairless dog", 268),
        ("baluster", 421),
    ],
)
def test_index_lookup(classes, query, expected):
    assert classes.index(query) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # a display name wins over another class's synonym
        ("cardigan", 474),
        ("Cardigan Welsh corgi", 264),
        ("harp", 594),
        ("harmonica", 593),
        ("partridge", 86),
        ("missile", 657),
        ("projectile", 744),
        ("sunglasses", 837),
        ("sunglass", 836),
    ],
)
def test_display_name_takes_precedence(classes, query, expected):
    assert classes.index(query) == expected


@pytest.mark.parametrize("bad", [True, 1.0, None, 3.5, [1]])
def test_index_rejects_non_int_types(classes, bad):
    with pytest.raises(TypeError):
        classes.index(bad)


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize("bad", [1000, -1, "1000", "-1", 10**9])
def test_out_of_range_index(classes, bad):
    with pytest.raises(ClassIndexError, match=r"out of range; valid indices are 0-999") as info:
        classes.index(bad)
    err = info.value
    assert isinstance(err, UnknownClassError)
    assert isinstance(err, ImageNetClassError)
    assert isinstance(err, ValueError)
    assert isinstance(err, IndexError)
    assert err.index == int(bad)


@pytest.mark.parametrize("method", ["name", "synonyms", "wnid", "__getitem__"])
def test_accessors_check_range(classes, method):
    with pytest.raises(ClassIndexError, match="0-999"):
        getattr(classes, method)(1000)
    with pytest.raises(ClassIndexError, match="0-999"):
        getattr(classes, method)(-1)
    with pytest.raises(TypeError):
        getattr(classes, method)("1")


def test_unknown_class_suggests_espresso(classes):
    with pytest.raises(UnknownClassError) as info:
        classes.index("expresso")
    err = info.value
    message = str(err)
    assert "\n" not in message
    assert message.startswith("unknown ImageNet class 'expresso'; did you mean: espresso")
    assert message.endswith("?")
    assert err.query == "expresso"
    assert err.suggestions[0] == "espresso"
    assert 1 <= len(err.suggestions) <= 5
    assert not isinstance(err, AmbiguousClassError)


def test_unknown_class_suggests_cats(classes):
    with pytest.raises(UnknownClassError) as info:
        classes.index("cat")
    assert info.value.suggestions == (
        "tabby cat",
        "tiger cat",
        "Persian cat",
        "Siamese cat",
        "Egyptian cat",
    )
    assert "did you mean: tabby cat, tiger cat, Persian cat, Siamese cat, Egyptian cat?" in str(
        info.value
    )


@pytest.mark.parametrize(
    ("query", "expected_first"),
    [("goldfsh", "goldfish"), ("tabby cats", "tabby cat"), ("shark", "great white shark")],
)
def test_suggestion_ranking(classes, query, expected_first):
    assert classes.suggest(query)[0] == expected_first


@pytest.mark.parametrize("query", ["expresso", "cat", "dog", "fish", "cranes", "panda bears", "x"])
def test_suggestions_are_unique_and_resolvable(classes, query):
    suggestions = classes.suggest(query)
    assert len(suggestions) <= 5
    resolved = [classes.index(s) for s in suggestions]  # never ambiguous/unknown
    assert len(set(resolved)) == len(resolved)


def test_suggestion_for_ambiguous_synonym_uses_display_names(classes):
    # "cranes" is closest to the ambiguous synonym "crane": suggest the distinct names
    suggestions = classes.suggest("cranes")
    assert "crane bird" in suggestions and "construction crane" in suggestions
    assert "crane" not in suggestions


def test_suggest_limit(classes):
    assert len(classes.suggest("terrier", limit=3)) == 3
    assert classes.suggest("terrier", limit=0) == ()
    assert classes.suggest("") == ()


def test_unknown_without_suggestions(classes):
    with pytest.raises(UnknownClassError, match=r"unknown ImageNet class 'xyzzy' \(no similar"):
        classes.index("xyzzy")


@pytest.mark.parametrize("query", ["", "   ", "_-_"])
def test_empty_query(classes, query):
    with pytest.raises(UnknownClassError, match="empty"):
        classes.index(query)


def test_unknown_wnid(classes):
    with pytest.raises(UnknownClassError, match="WordNet id 'n00000000'"):
        classes.index("n00000000")


@pytest.mark.parametrize(
    ("query", "indices", "names"),
    [
        ("crane", (134, 517), ("crane bird", "construction crane")),
        ("Crane", (134, 517), ("crane bird", "construction crane")),
        ("maillot", (638, 639), ("leotard / tights", "one-piece bathing suit")),
        ("panda", (387, 388), ("red panda", "giant panda")),
        ("tub", (435, 876), ("bathtub", "hot tub")),
    ],
)
def test_ambiguous(classes, query, indices, names):
    with pytest.raises(AmbiguousClassError) as info:
        classes.index(query)
    err = info.value
    assert err.indices == indices
    assert err.candidates == tuple(zip(indices, names, strict=True))
    message = str(err)
    assert "\n" not in message
    assert f"ambiguous ImageNet class {query!r}" in message
    for index, name in zip(indices, names, strict=True):
        assert f"{name} ({index})" in message
    assert "index" in message
    assert isinstance(err, ImageNetClassError) and isinstance(err, ValueError)
    assert not isinstance(err, UnknownClassError)


def test_ambiguous_names_resolve_by_index_or_specific_name(classes):
    assert classes.index("134") == 134
    assert classes.index("crane bird") == 134
    assert classes.index("construction_crane") == 517


# ------------------------------------------------------------------ resolve_classes


def test_resolve_classes_keeps_order_and_repeats():
    assert resolve_classes("espresso,goldfish,1,tabby cat") == [967, 1, 1, 281]
    assert resolve_classes(" espresso , Goldfish,  0 ") == [967, 1, 0]
    assert resolve_classes("999,0") == [999, 0]


def test_resolve_classes_single_entries():
    assert resolve_classes("espresso") == [967]
    assert resolve_classes("967") == [967]
    assert resolve_classes(967) == [967]


def test_resolve_classes_sequences():
    assert resolve_classes(["tabby_cat", 0, "Carassius auratus"]) == [281, 0, 1]
    assert resolve_classes((np.int32(5), "5")) == [5, 5]
    assert resolve_classes([]) == []


def test_resolve_classes_sequence_entries_are_not_split():
    with pytest.raises(UnknownClassError) as info:
        resolve_classes(["tench, Tinca tinca"])
    assert "Tinca tinca" in info.value.suggestions


def test_resolve_classes_raises_on_first_bad_entry():
    with pytest.raises(UnknownClassError) as info:
        resolve_classes("espresso,expresso,crane,1000")
    assert info.value.query == "expresso"
    assert "espresso" in str(info.value)

    with pytest.raises(AmbiguousClassError) as info:
        resolve_classes("espresso,crane,expresso")
    assert info.value.indices == (134, 517)

    with pytest.raises(ClassIndexError, match="valid indices are 0-999"):
        resolve_classes("goldfish,1000,crane")

    with pytest.raises(ClassIndexError):
        resolve_classes([1, -1])


@pytest.mark.parametrize("spec", ["", "espresso,,goldfish", "espresso,", " , "])
def test_resolve_classes_rejects_empty_entries(spec):
    with pytest.raises(ImageNetClassError, match="empty ImageNet class entry"):
        resolve_classes(spec)


def test_resolve_classes_raw_comma_joined_label_is_split():
    # A raw ILSVRC label "tench, Tinca tinca" splits into two synonyms of the same class.
    assert resolve_classes("tench, Tinca tinca") == [0, 0]


def test_resolve_method_matches_function(classes):
    assert classes.resolve("crane bird,517") == resolve_classes("crane bird,517") == [134, 517]
