"""Prefix builders: named datasets from local copies (offline), user files, seeds and dedupe."""

from __future__ import annotations

import json

import pytest

from harness import InputError
from harness.prefixes import build_prefixes, dedupe, read_prefix_file


@pytest.fixture
def wiki_jsonl(tmp_path):
    path = tmp_path / "wiki.jsonl"
    articles = [{"id": str(i), "title": f"T{i}", "text": " ".join(f"a{i}w{k}" for k in range(30))} for i in range(50)]
    articles[7]["text"] = ""  # empty articles are skipped, not prefixes
    path.write_text("\n".join(json.dumps(a) for a in articles) + "\n")
    return path


@pytest.fixture
def rte_tsv(tmp_path):
    path = tmp_path / "rte.tsv"
    rows = ["index\tsentence1\tsentence2\tlabel"]
    rows += [f'{i}\tPremise "{i}" says so.\tHypothesis {i}.\tentailment' for i in range(30)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_wikipedia_openings_are_10_to_20_words_and_seeded(wiki_jsonl):
    prefixes, rule = build_prefixes("wikipedia", 20, seed=3, dataset_path=str(wiki_jsonl))
    assert len(prefixes) == 20 == rule["num_prefixes"] and rule["seed"] == 3
    counts = [len(p.split()) for p in prefixes]
    assert min(counts) >= 10 and max(counts) <= 20 and len(set(counts)) > 3
    assert all(p.split()[0].endswith("w0") for p in prefixes)  # each is an article's opening
    assert build_prefixes("wikipedia", 20, seed=3, dataset_path=str(wiki_jsonl))[0] == prefixes
    assert build_prefixes("wikipedia", 20, seed=4, dataset_path=str(wiki_jsonl))[0] != prefixes


def test_glue_rte_prompt_template_from_a_tsv(rte_tsv):
    prefixes, rule = build_prefixes("glue-rte", 5, seed=0, dataset_path=str(rte_tsv))
    assert len(prefixes) == 5 and len(set(prefixes)) == 5
    i = int(prefixes[0].split('"')[1])
    assert prefixes[0] == f'Premise "{i}" says so.\nQuestion: Hypothesis {i}. True or False?\nAnswer:'
    assert build_prefixes("glue-rte", 5, seed=0, dataset_path=str(rte_tsv))[0] == prefixes


def test_dataset_path_folder_reads_every_file_in_name_order(tmp_path):
    for name in ("b.jsonl", "a.jsonl"):
        articles = [{"text": " ".join(f"{name[0]}{i}w{k}" for k in range(30))} for i in range(5)]
        (tmp_path / name).write_text("\n".join(json.dumps(a) for a in articles) + "\n")
    (tmp_path / "README.md").write_text("not a data file")
    prefixes, _ = build_prefixes("wikipedia", 10, dataset_path=str(tmp_path))
    assert sorted(p.split()[0] for p in prefixes) == [f"{f}{i}w0" for f in "ab" for i in range(5)]
    # The seeded draw over a folder is the draw over its files concatenated in name order.
    joined = tmp_path.parent / "joined.jsonl"
    joined.write_text((tmp_path / "a.jsonl").read_text() + (tmp_path / "b.jsonl").read_text())
    drawn = build_prefixes("wikipedia", 4, dataset_path=str(tmp_path))[0]
    assert drawn == build_prefixes("wikipedia", 4, dataset_path=str(joined))[0]
    (tmp_path / "c.tsv").write_text("sentence1\tsentence2\n")
    with pytest.raises(InputError, match=r"mixes file types \(.jsonl, .tsv\)"):
        build_prefixes("wikipedia", 10, dataset_path=str(tmp_path))


def test_missing_column_names_the_file(tmp_path):
    path = tmp_path / "wrong.jsonl"
    path.write_text(json.dumps({"body": "no text column"}) + "\n")
    with pytest.raises(InputError, match="wrong.jsonl: no column 'text'"):
        build_prefixes("wikipedia", 1, dataset_path=str(path))


def test_user_files(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text("one\ntwo\none\nthree\n")
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": t}) for t in ["a\nb", "c"]) + "\n")
    with pytest.warns(UserWarning, match="1 duplicate prefix dropped"):
        assert build_prefixes(str(txt))[0] == ["one", "two", "three"]
    assert build_prefixes(str(txt), num_prefixes=2)[0] == ["one", "two"]
    assert read_prefix_file(jsonl) == ["a\nb", "c"]  # jsonl keeps newlines, as RTE prompts need


def test_wikipedia_words_are_split_on_spaces_only(tmp_path):
    text = "Paris\u00a0(French:\u00a0[paʁi]) is the capital\nand largest city of France, " + " ".join(["word"] * 30)
    path = tmp_path / "wiki.jsonl"
    path.write_text(json.dumps({"text": text}) + "\n")
    [prefix], _ = build_prefixes("wikipedia", 1, dataset_path=str(path))
    words = prefix.split(" ")
    assert 10 <= len(words) <= 20 and prefix == " ".join(text.split(" ")[:len(words)])
    assert prefix.startswith("Paris\u00a0(French:\u00a0[paʁi]) is the capital\nand largest")


def test_txt_lines_end_at_newlines_only_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeffone\u2028two\r\nthree\x85four\x0cfive\n\n   \nsix\n\n".encode())
    with pytest.warns(UserWarning, match="p.txt: 3 blank lines skipped"):
        assert read_prefix_file(path) == ["one\u2028two", "three\x85four\x0cfive", "six"]


def test_jsonl_with_a_byte_order_mark_and_a_raw_line_separator(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('\ufeff{"text": "a\u2028b"}\n\n{"text": "c"}\n', encoding="utf-8")
    with pytest.warns(UserWarning, match="1 blank line skipped"):
        assert read_prefix_file(path) == ["a\u2028b", "c"]


@pytest.mark.parametrize("content, message", [
    ('{"text": "ok"}\nnot json\n', "p.jsonl:2: not a JSON object"),
    ('{"text": "\\ud800"}\n', "p.jsonl:1: not valid Unicode text .* lone surrogate"),
    ('{"text": "ok", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "p.jsonl:1: JSON nested too deeply"),
    ("[1]\n", "p.jsonl:1: not a JSON object"),
    ('{"text": ""}\n', "p.jsonl:1: empty prefix"),
    ('{"text": 3}\n', 'p.jsonl:1: "text" must be a string'),
    ("", "p.jsonl: no prefixes"),
])
def test_bad_jsonl_lines(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_prefix_file(path)


def test_dedupe_keeps_first_seen_order():
    with pytest.warns(UserWarning):
        assert dedupe(["b", "a", "b", "c", "a"], "x") == ["b", "a", "c"]


def test_bad_arguments():
    with pytest.raises(InputError, match="unknown dataset"):
        build_prefixes("imagenet")
    with pytest.raises(InputError, match="at least 1"):
        build_prefixes("wikipedia", num_prefixes=0)
