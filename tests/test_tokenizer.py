"""Tests for the review tokenizer's written-down rules."""

from __future__ import annotations

import pytest

from rnn_lightning.data.tokenizer import TOKENIZER_VERSION, tokenize


def _words(spaced: str) -> list[str]:
    """Expected tokens written as one space-separated string."""
    return spaced.split(" ")


def test_version_is_a_nonempty_string() -> None:
    assert isinstance(TOKENIZER_VERSION, str)
    assert TOKENIZER_VERSION == "v1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("isn't", ["is", "n't"]),
        ("can't", ["ca", "n't"]),
        ("film's", ["film", "'s"]),
        ("you're we've i'd you'll i'm", ["you", "'re", "we", "'ve", "i", "'d", "you", "'ll", "i", "'m"]),
        ("o'brien's", ["o'brien", "'s"]),
        # An already split clitic stays one token; a quote that opens a word is punctuation.
        ("it 's", ["it", "'s"]),
        ("'jackass'", ["'", "jackass", "'"]),
        ("burns' best", ["burns", "'", "best"]),
    ],
)
def test_clitics(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_lower_case() -> None:
    assert tokenize("The FILM Isn't") == ["the", "film", "is", "n't"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a reason to <b>want</b> to", ["a", "reason", "to", "want", "to"]),
        ("liking showgirls</> . ", ["liking", "showgirls", "."]),
        ("<em>ash wednesday</em> is", ["ash", "wednesday", "is"]),
        ("<I>Big</I><br/>fish", ["big", "fish"]),
    ],
)
def test_html_tags_removed(text: str, expected: list[str]) -> None:
    assert tokenize(text) == expected


def test_comparison_signs_in_prose_are_kept() -> None:
    assert tokenize("a < b > c") == ["a", "<", "b", ">", "c"]


def test_punctuation_is_separated() -> None:
    assert tokenize('wow!great,"fun"(really)?yes;no:maybe.') == [
        "wow", "!", "great", ",", '"', "fun", '"', "(", "really", ")",
        "?", "yes", ";", "no", ":", "maybe", ".",
    ]  # fmt: skip


def test_inner_hyphens_and_numbers_stay_whole() -> None:
    assert tokenize("a rom-com in 3-d , 9/11 , 3.5 stars") == [
        "a", "rom-com", "in", "3-d", ",", "9/11", ",", "3.5", "stars",
    ]  # fmt: skip


def test_slash_between_words_is_split() -> None:
    assert tokenize("writer/directors") == ["writer", "/", "directors"]


def test_cp1252_punctuation_and_accents() -> None:
    assert tokenize("amélie … bender — and – clichés") == [
        "amélie",
        "…",
        "bender",
        "—",
        "and",
        "–",
        "clichés",
    ]


def test_nfc_normalisation_merges_combining_accents() -> None:
    assert tokenize("ame\u0301lie") == ["amélie"]


def test_curly_quotes_and_backtick_become_ascii() -> None:
    assert tokenize("it’s ‘warm’ `hey'") == ["it", "'s", "'", "warm", "'", "'", "hey", "'"]


def test_html_entities_split_by_the_corpus_tokenizer() -> None:
    # Real lines: neg 1694 and neg 4590.
    assert tokenize("the director can&#8217 ; t do") == ["the", "director", "ca", "n't", "do"]
    assert tokenize("val kilmer&#8217 ; s two") == ["val", "kilmer", "'s", "two"]
    assert tokenize("ambition&#133 ; whole") == ["ambition", "…", "whole"]
    assert tokenize("r&amp;b") == ["r", "&", "b"]


def test_editorial_brackets_inside_words() -> None:
    assert tokenize("[h]ad i") == ["had", "i"]
    assert tokenize("[t]here's") == ["there", "'s"]
    assert tokenize("[garbus] discards") == ["[", "garbus", "]", "discards"]


def test_special_forms() -> None:
    assert tokenize("rock 'n' roll") == ["rock", "'n'", "roll"]
    assert tokenize("a mid-'70s flick") == ["a", "mid", "-", "'70s", "flick"]


@pytest.mark.parametrize("text", ["", "   ", "\t \n ", "<b></b>", " <em> </em> "])
def test_nothing_left_gives_empty_list(text: str) -> None:
    assert tokenize(text) == []


def test_uneven_whitespace_is_harmless() -> None:
    assert tokenize("  a   good\tfilm .  \n") == tokenize("a good film .") == ["a", "good", "film", "."]


def test_bytes_are_rejected_with_a_hint() -> None:
    with pytest.raises(TypeError, match="decode bytes first"):
        tokenize(b"a film")  # type: ignore[arg-type]


def test_real_lines(polarity_dir) -> None:
    neg = (polarity_dir / "rt-polarity.neg").read_bytes().decode("cp1252").split("\n")
    pos = (polarity_dir / "rt-polarity.pos").read_bytes().decode("cp1252").split("\n")
    assert tokenize(neg[4665]) == _words("and people make fun of me for liking showgirls .")
    assert tokenize(pos[4282])[:6] == ["imagine", "o", ".", "henry", "'s", "the"]
    assert "<b>" not in tokenize(pos[4282]) and "b" not in tokenize(pos[4282])
    assert tokenize(pos[272]) == _words(
        "münch 's genuine insight makes the film 's occasional overindulgence forgivable ."
    )
    # Every token of the corpus is non-empty and has no whitespace in it.
    for line in neg + pos:
        for token in tokenize(line):
            assert token and not any(ch.isspace() for ch in token)
