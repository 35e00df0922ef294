"""Prefix builders: named datasets from local copies (offline), task builders and their answers, user
files, seeds and dedupe."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from harness import InputError
from harness.data import prefixes
from harness.data.prefixes import build_prefixes, dedupe, read_prefix_file

pytestmark = pytest.mark.torch  # CI's numpy-1 run has no torch


@pytest.fixture
def wiki_jsonl(tmp_path):
    path = tmp_path / "wiki.jsonl"
    articles = [{"id": str(i), "title": f"T{i}", "text": " ".join(f"a{i}w{k}" for k in range(30))} for i in range(50)]
    articles[7]["text"] = ""  # empty articles are skipped, not prefixes
    path.write_text("\n".join(json.dumps(a) for a in articles) + "\n")
    return path


def glue_tsv(path, pairs):
    """A GLUE RTE TSV of (premise, hypothesis, entailed) rows, indexed from 0."""
    rows = ["index\tsentence1\tsentence2\tlabel"]
    rows += [
        f"{i}\t{premise}\t{hypothesis}\t{'' if entailed else 'not_'}entailment"
        for i, (premise, hypothesis, entailed) in enumerate(pairs)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture
def rte_tsv(tmp_path):
    return glue_tsv(
        tmp_path / "rte.tsv", [(f'Premise "{i}" says so.', f"Hypothesis {i}.", i % 2 == 0) for i in range(30)]
    )


def test_wikipedia_openings_are_10_to_20_words_and_seeded(wiki_jsonl):
    built = build_prefixes("wikipedia", 20, seed=3, dataset_path=str(wiki_jsonl))
    prefixes, rule = built.prefixes, built.record
    assert len(prefixes) == 20 == rule["num_prefixes"] and rule["seed"] == 3 and built.answers is None
    counts = [len(p.split()) for p in prefixes]
    assert min(counts) >= 10 and max(counts) <= 20 and len(set(counts)) > 3
    assert all(p.split()[0].endswith("w0") for p in prefixes)  # each is an article's opening
    assert build_prefixes("wikipedia", 20, seed=3, dataset_path=str(wiki_jsonl)).prefixes == prefixes
    assert build_prefixes("wikipedia", 20, seed=4, dataset_path=str(wiki_jsonl)).prefixes != prefixes


def test_glue_rte_prompt_template_from_a_tsv(rte_tsv):
    built = build_prefixes("glue-rte", 5, seed=0, dataset_path=str(rte_tsv))
    prefixes = built.prefixes
    assert len(prefixes) == 5 and len(set(prefixes)) == 5
    i = int(prefixes[0].split('"')[1])
    assert prefixes[0] == f'Premise "{i}" says so.\nQuestion: Hypothesis {i}. True or False?\nAnswer:'
    assert build_prefixes("glue-rte", 5, seed=0, dataset_path=str(rte_tsv)).prefixes == prefixes
    # The gold answer is the label's: the fixture's odd rows are not_entailment.
    assert built.answers == [" True" if int(p.split('"')[1]) % 2 == 0 else " False" for p in prefixes]
    assert "shots" not in built.record  # without --shots: the original zero-shot set


def test_dataset_path_folder_reads_every_file_in_name_order(tmp_path):
    for name in ("b.jsonl", "a.jsonl"):
        articles = [{"text": " ".join(f"{name[0]}{i}w{k}" for k in range(30))} for i in range(5)]
        (tmp_path / name).write_text("\n".join(json.dumps(a) for a in articles) + "\n")
    (tmp_path / "README.md").write_text("not a data file")
    prefixes = build_prefixes("wikipedia", 10, dataset_path=str(tmp_path)).prefixes
    assert sorted(p.split()[0] for p in prefixes) == [f"{f}{i}w0" for f in "ab" for i in range(5)]
    # The seeded draw over a folder is the draw over its files concatenated in name order.
    joined = tmp_path.parent / "joined.jsonl"
    joined.write_text((tmp_path / "a.jsonl").read_text() + (tmp_path / "b.jsonl").read_text())
    drawn = build_prefixes("wikipedia", 4, dataset_path=str(tmp_path)).prefixes
    assert drawn == build_prefixes("wikipedia", 4, dataset_path=str(joined)).prefixes
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
        assert build_prefixes(str(txt)).prefixes == ["one", "two", "three"]
    assert build_prefixes(str(txt), num_prefixes=2).prefixes == ["one", "two"]
    assert read_prefix_file(jsonl) == (["a\nb", "c"], None)  # jsonl keeps newlines, as RTE prompts need


def test_wikipedia_words_are_split_on_spaces_only(tmp_path):
    text = "Paris\u00a0(French:\u00a0[paʁi]) is the capital\nand largest city of France, " + " ".join(["word"] * 30)
    path = tmp_path / "wiki.jsonl"
    path.write_text(json.dumps({"text": text}) + "\n")
    [prefix] = build_prefixes("wikipedia", 1, dataset_path=str(path)).prefixes
    words = prefix.split(" ")
    assert 10 <= len(words) <= 20 and prefix == " ".join(text.split(" ")[: len(words)])
    assert prefix.startswith("Paris\u00a0(French:\u00a0[paʁi]) is the capital\nand largest")


def test_txt_lines_end_at_newlines_only_and_blank_lines_are_skipped(tmp_path):
    path = tmp_path / "p.txt"
    path.write_bytes("\ufeffone\u2028two\r\nthree\x85four\x0cfive\n\n   \nsix\n\n".encode())
    with pytest.warns(UserWarning, match="p.txt: 3 blank lines skipped"):
        assert read_prefix_file(path) == (["one\u2028two", "three\x85four\x0cfive", "six"], None)


def test_jsonl_with_a_byte_order_mark_and_a_raw_line_separator(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('\ufeff{"text": "a\u2028b"}\n\n{"text": "c"}\n', encoding="utf-8")
    with pytest.warns(UserWarning, match="1 blank line skipped"):
        assert read_prefix_file(path) == (["a\u2028b", "c"], None)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "ok"}\nnot json\n', "p.jsonl:2: not a JSON object"),
        ('{"text": "\\ud800"}\n', "p.jsonl:1: not valid Unicode text .* lone surrogate"),
        ('{"text": "ok", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "p.jsonl:1: JSON nested too deeply"),
        ("[1]\n", "p.jsonl:1: not a JSON object"),
        ('{"text": ""}\n', "p.jsonl:1: empty prefix"),
        ('{"text": 3}\n', 'p.jsonl:1: "text" must be a string'),
        ("", "p.jsonl: no prefixes"),
    ],
)
def test_bad_jsonl_lines(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_prefix_file(path)


def test_dedupe_keeps_first_seen_order():
    with pytest.warns(UserWarning):
        assert dedupe(["b", "a", "b", "c", "a"], "x") == (["b", "a", "c"], None)


def test_bad_arguments():
    with pytest.raises(InputError, match="unknown dataset"):
        build_prefixes("imagenet")
    with pytest.raises(InputError, match="at least 1"):
        build_prefixes("wikipedia", num_prefixes=0)


# ---- Task builders: prefixes that carry their gold answer

QUESTION = re.compile(r"Question: What is (\d+) (plus|minus|times) (\d+)\?\nAnswer:(?: (-?\d+))?")
PYTHON_OPERATORS = {"plus": "+", "minus": "-", "times": "*"}


def solve(text: str) -> int:
    """An arithmetic question's words as a Python expression (times before plus and minus)."""
    for word, operator in PYTHON_OPERATORS.items():
        text = text.replace(f" {word} ", f" {operator} ")
    return eval(text)  # digits and + - * only: the regexes below match nothing else


def test_arithmetic_hand_checked_prompts_for_each_operation():
    expected = {"add": (" 68", "55", "111"), "subtract": (" 34", "-27", "53"), "multiply": (" 867", "574", "2378")}
    for operation, (answer, first, second) in expected.items():
        word = {"add": "plus", "subtract": "minus", "multiply": "times"}[operation]
        built = build_prefixes("arithmetic", 3, seed=1, operation=operation, shots=2)
        # The same seed draws the same operands (14, 41), (82, 29) and question (51, 17) for each operation.
        assert built.prefixes[0] == (
            f"Question: What is 14 {word} 41?\nAnswer: {first}\n\n"
            f"Question: What is 82 {word} 29?\nAnswer: {second}\n\n"
            f"Question: What is 51 {word} 17?\nAnswer:"
        )
        assert built.answers[0] == answer
        assert built.record == {
            "dataset": "arithmetic",
            "source": "synthetic",
            "rule": built.record["rule"],
            "seed": 1,
            "num_prefixes": 3,
            "shots": 2,
            "digits": 2,
            "operation": operation,
        }
    zero_shot = build_prefixes("arithmetic", 5, seed=2)  # the defaults: lm-evaluation-harness's arithmetic_2da
    assert all(QUESTION.fullmatch(p) and " plus " in p for p in zero_shot.prefixes)
    assert zero_shot.record["shots"] == 0 and zero_shot.record["digits"] == 2


@pytest.mark.parametrize("operation", ["add", "subtract", "multiply"])
def test_arithmetic_answers_shots_and_examples_are_never_the_question(operation):
    # 1 digit: 100 questions, 5 examples each; drawn without the exclusion, ~5 would repeat their question.
    built = build_prefixes("arithmetic", 100, seed=0, digits=1, operation=operation, shots=5)
    queries = set()
    for prefix, answer in zip(built.prefixes, built.answers):
        blocks = prefix.split("\n\n")
        assert len(blocks) == 6
        parsed = [QUESTION.fullmatch(block).groups() for block in blocks]
        *examples, (a, word, b, none) = parsed
        assert none is None and word == {"add": "plus", "subtract": "minus", "multiply": "times"}[operation]
        assert answer == f" {solve(f'{a} {word} {b}')}"
        for x, _, y, c in examples:
            assert int(c) == solve(f"{x} {word} {y}") and (x, y) != (a, b)
        queries.add((a, b))
    assert queries == {(str(a), str(b)) for a in range(10) for b in range(10)}  # each of the 100 questions once
    with pytest.warns(UserWarning, match="only 100 prefixes available, fewer than the 150"):
        assert len(build_prefixes("arithmetic", 150, digits=1, operation=operation).prefixes) == 100


def test_arithmetic_operands_have_the_digits_asked_and_seeds_reproduce():
    built = build_prefixes("arithmetic", 200, seed=5, digits=3)
    operands = np.array([[int(x) for x in QUESTION.fullmatch(p).groups()[::2][:2]] for p in built.prefixes])
    assert operands.max() < 1000 and (operands >= 100).mean() > 0.8  # uniform in [0, 1000): 90% have 3 digits
    assert len(set(built.prefixes)) == 200
    assert build_prefixes("arithmetic", 200, seed=5, digits=3).prefixes == built.prefixes
    assert build_prefixes("arithmetic", 200, seed=6, digits=3).prefixes != built.prefixes
    big = build_prefixes("arithmetic", 10, seed=0, digits=5, operation="multiply")
    assert all(
        int(answer) == solve(QUESTION.fullmatch(prefix).group(0)[len("Question: What is ") : -len("?\nAnswer:")])
        for prefix, answer in zip(big.prefixes, big.answers)
    )  # no int64 overflow at 5 digits


WORKED = re.compile(
    r"Question: What is (\d+ \w+ \d+ \w+ \d+)\?\nAnswer: (-?\d+) (\w+) (-?\d+) is (-?\d+)\. "
    r"(-?\d+) (\w+) (-?\d+) is (-?\d+)\. The answer is(?: (-?\d+)\.)?"
)


def test_cot_arithmetic_worked_steps_and_answers():
    built = build_prefixes("cot-arithmetic", 200, seed=0)
    assert built.record["shots"] == 3 and built.record["digits"] == 1
    assert built.prefixes[0].endswith("The answer is") and built.answers[0].startswith(" ")
    times_first = 0
    for prefix, answer in zip(built.prefixes, built.answers):
        blocks = prefix.split("\n\n")
        assert len(blocks) == 4
        matches = [WORKED.fullmatch(block) for block in blocks]
        assert all(matches[:-1]) and matches[-1] is not None
        questions = [m.group(1) for m in matches]
        assert questions[-1] not in questions[:-1]  # no example is the question itself
        for m in matches:
            question, x, op1, y, d, u, op2, v, e, stated = m.groups()
            # Each step is right, the second uses the first's result, and the result is the question's value.
            assert int(d) == solve(f"{x} {op1} {y}") and int(e) == solve(f"{u} {op2} {v}") and d in (u, v)
            assert int(e) == solve(question)
            times_first += d == v
            if m is matches[-1]:
                assert stated is None and answer == f" {e}"
            else:
                assert stated == e
    assert times_first > 10  # "A plus B times C" works B times C first
    with_steps = build_prefixes("cot-arithmetic", 1, seed=0, shots=1)
    assert with_steps.prefixes == [
        "Question: What is 6 times 3 times 6?\nAnswer: 6 times 3 is 18. 18 times 6 is 108. The answer is 108.\n\n"
        "Question: What is 8 minus 5 times 0?\nAnswer: 5 times 0 is 0. 8 minus 0 is 8. The answer is"
    ]
    assert with_steps.answers == [" 8"]
    assert build_prefixes("cot-arithmetic", 20, seed=1).prefixes != build_prefixes("cot-arithmetic", 20).prefixes


@pytest.fixture
def rte_premises_tsv(tmp_path):
    """40 labelled pairs, two hypotheses per premise; pair i is entailment unless i % 3 == 0."""
    return glue_tsv(
        tmp_path / "rte.tsv", [(f"Premise {i // 2} holds.", f"Hypothesis {i}.", i % 3 != 0) for i in range(40)]
    )


RTE_BLOCK = re.compile(r"Premise (\d+) holds\.\nQuestion: Hypothesis (\d+)\. True or False\?\nAnswer:( True| False)?")


def test_glue_rte_shots_demonstrations_from_other_premises_gold_from_the_label(rte_premises_tsv):
    built = build_prefixes("glue-rte", 30, seed=0, dataset_path=str(rte_premises_tsv), shots=2)
    assert built.record["shots"] == 2 and built.record["demonstration_rows"] == 20 == built.record["query_rows"]
    assert "split in half by premise" in built.record["split"]
    assert len(built.prefixes) == 20  # the query half, each pair once
    demo_premises, query_premises = set(), set()
    for prefix, answer in zip(built.prefixes, built.answers):
        blocks = [RTE_BLOCK.fullmatch(block).groups() for block in prefix.split("\n\n")]
        assert len(blocks) == 3
        *demos, (premise, hypothesis, none) = blocks
        assert none is None and answer == (" False" if int(hypothesis) % 3 == 0 else " True")
        for _, demo_hypothesis, demo_answer in demos:
            assert demo_answer == (" False" if int(demo_hypothesis) % 3 == 0 else " True")
        assert demos[0] != demos[1]  # distinct demonstrations
        demo_premises |= {d[0] for d in demos}
        query_premises.add(premise)
    assert not demo_premises & query_premises and len(query_premises) == 10  # no premise gives both
    assert (
        build_prefixes("glue-rte", 30, seed=0, dataset_path=str(rte_premises_tsv), shots=2).prefixes == built.prefixes
    )
    assert (
        build_prefixes("glue-rte", 30, seed=1, dataset_path=str(rte_premises_tsv), shots=2).prefixes != built.prefixes
    )
    zero = build_prefixes("glue-rte", 30, seed=0, dataset_path=str(rte_premises_tsv), shots=0)
    assert all(RTE_BLOCK.fullmatch(p) for p in zero.prefixes) and len(zero.answers) == 20
    with pytest.raises(InputError, match="--shots 21: only 20 labelled demonstration rows"):
        build_prefixes("glue-rte", 5, dataset_path=str(rte_premises_tsv), shots=21)


def test_glue_rte_shots_from_the_hub_take_demonstrations_from_train_and_queries_from_validation(monkeypatch):
    """The hub path, offline: `_stream` stands in for nyu-mll/glue, whose labels are ids (0 entailment)."""

    def hub(name, config, local_path, seed, split="train"):
        assert (name, config, local_path, seed) == ("nyu-mll/glue", "rte", None, None)
        return [
            {"sentence1": f"{split} premise {i}.", "sentence2": f"{split} hypothesis {i}.", "label": i % 2, "idx": i}
            for i in range(8)
        ]

    monkeypatch.setattr(prefixes, "_stream", hub)
    built = build_prefixes("glue-rte", 8, seed=0, shots=3)
    assert "train" in built.record["source"] and "validation" in built.record["split"]
    for prefix, answer in zip(built.prefixes, built.answers):
        *demos, query = prefix.split("\n\n")
        assert len(demos) == 3 and all(d.startswith("train premise ") for d in demos)
        assert query.startswith("validation premise ") and query.endswith("True or False?\nAnswer:")
        i = int(query.split()[2].rstrip("."))
        assert answer == (" True", " False")[i % 2]
        assert all(d.endswith((" True", " False")[int(d.split()[2].rstrip(".")) % 2]) for d in demos)


def test_glue_rte_without_labels_has_no_answers(tmp_path):
    path = tmp_path / "unlabelled.tsv"
    path.write_text("sentence1\tsentence2\n" + "".join(f"P{i}.\tH{i}.\n" for i in range(5)))
    assert build_prefixes("glue-rte", 5, dataset_path=str(path)).answers is None
    with pytest.raises(InputError, match="unlabelled.tsv: no column 'label'"):
        build_prefixes("glue-rte", 5, dataset_path=str(path), shots=1)


def test_copy_repeats_a_span_and_the_gold_is_its_next_word(tmp_path):
    path = tmp_path / "wiki.jsonl"
    articles = [{"text": "\n".join(f"a{i}w{k}" for k in range(60))} for i in range(40)]
    articles.append({"text": " ".join(f"short{k}" for k in range(19))})  # shorter than any span: never used
    path.write_text("\n".join(json.dumps(a) for a in articles) + "\n")
    built = build_prefixes("copy", 30, seed=0, dataset_path=str(path))
    lengths, ks = set(), set()
    for prefix, answer in zip(built.prefixes, built.answers):
        words = prefix.split(" ")  # the article's newlines are gone: words are joined by single spaces
        length = words.index(words[0], 1)  # where the repeat starts: the span's words are distinct
        k = len(words) - length
        span = words[:length]
        assert 20 <= length <= 30 and 1 <= k < length and words[length:] == span[:k]
        article, start = span[0][1:].split("w")
        assert span == [f"a{article}w{int(start) + j}" for j in range(length)]  # consecutive words of one article
        assert answer == " " + span[k]
        lengths.add(length)
        ks.add(k)
    assert len(lengths) > 5 and len(ks) > 5
    assert "short" not in " ".join(built.prefixes)
    assert build_prefixes("copy", 30, seed=0, dataset_path=str(path)).prefixes == built.prefixes
    assert build_prefixes("copy", 30, seed=1, dataset_path=str(path)).prefixes != built.prefixes


def test_jsonl_answers_all_lines_or_none(tmp_path):
    path = tmp_path / "qa.jsonl"
    rows = [
        {"text": "2 + 2 =", "answer": " 4"},
        {"text": "The sky is", "answer": " blue"},
        {"text": "2 + 2 =", "answer": " 4"},
        {"text": "Paris is in", "answer": " France"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.warns(UserWarning, match="1 duplicate prefix dropped"):
        built = build_prefixes(str(path))
    assert built.prefixes == ["2 + 2 =", "The sky is", "Paris is in"]
    assert built.answers == [" 4", " blue", " France"] and "answer" in built.record["rule"]
    with pytest.warns(UserWarning):
        assert build_prefixes(str(path), num_prefixes=2).answers == [" 4", " blue"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"text": "a", "answer": " b"}\n{"text": "c"}\n', 'qa.jsonl:2: no "answer", unlike the first line'),
        ('{"text": "a"}\n\n{"text": "c", "answer": " d"}\n', 'qa.jsonl:3: an "answer", unlike the first line'),
        ('{"text": "a", "answer": 4}\n', 'qa.jsonl:1: "answer" must be a string'),
        ('{"text": "a", "answer": ""}\n', "qa.jsonl:1: empty answer"),
        ('{"text": "a", "answer": "\\udc00"}\n', "qa.jsonl:1: not valid Unicode text"),
        (
            '{"text": "a", "answer": " b"}\n{"text": "a", "answer": " c"}\n',
            "qa.jsonl: the prefix 'a' twice, with the answers ' b' and ' c'",
        ),
    ],
)
def test_bad_jsonl_answers(tmp_path, content, message):
    path = tmp_path / "qa.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=re.escape(message)):
        build_prefixes(str(path))


@pytest.mark.parametrize(
    "dataset, options, message",
    [
        ("arithmetic", {"digits": 6}, "--digits must be 1 to 5, got 6"),
        ("cot-arithmetic", {"digits": 0}, "--digits must be 1 to 5, got 0"),
        ("arithmetic", {"shots": -1}, "--shots must be at least 0, got -1"),
        ("glue-rte", {"shots": -1}, "--shots must be at least 0, got -1"),
        ("arithmetic", {"operation": "divide"}, "--operation must be one of add, subtract, multiply, got 'divide'"),
        ("wikipedia", {"shots": 2}, "--shots is for --dataset glue-rte or arithmetic or cot-arithmetic, not wikipedia"),
        ("glue-rte", {"digits": 2}, "--digits is for --dataset arithmetic or cot-arithmetic, not glue-rte"),
        ("cot-arithmetic", {"operation": "add"}, "--operation is for --dataset arithmetic, not cot-arithmetic"),
        (
            "arithmetic",
            {"dataset_path": "x.tsv"},
            "--dataset-path is for --dataset wikipedia, glue-rte, copy, not arithmetic",
        ),
        ("p.txt", {"dataset_path": "x.tsv"}, "--dataset-path is for --dataset wikipedia, glue-rte, copy, not p.txt"),
    ],
)
def test_bad_task_options_are_one_line_errors(dataset, options, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}$"):
        build_prefixes(dataset, 5, **options)
