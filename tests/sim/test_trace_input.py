"""Trace files as operators bring them: other layouts, encodings, compression and bad values.

Each bad file is refused with one ``InputError`` naming the file, the row or line, the field and
the value; each good variant loads to the same requests as the plain file.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import SIM_DIR, TRACES

from hetero_opt.cli import main
from hetero_opt.cli_simulate import load_cli_trace
from hetero_opt.errors import InputError
from hetero_opt.sim.trace import RateTrace, RequestTrace, load_trace, scale_rates, scale_trace

AZURE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
AZURE_ROWS = "2023-11-16 18:15:46.5,374,44\n2023-11-16 18:15:50.0,396,109\n2023-11-16 18:15:50.0,20,7\n"
MOONCAKE = (
    '{"timestamp": 0, "input_length": 1024, "output_length": 6, "hash_ids": [0, 1]}\n'
    '{"timestamp": 3500, "input_length": 600, "output_length": 4, "hash_ids": [0, 2]}\n'
)
SERVEGEN_HEADER = (
    "category,model,window_start_s,window_s,is_gap,rate_rps,active_clients,mean_input_tokens,"
    "mean_output_tokens,input_tokens_per_s,output_tokens_per_s,token_coverage\n"
)
SERVEGEN_ROW = "language,m-large,{start},{window},{gap},{rate},4,{mi},300,1,1,1\n"
DATA = Path(__file__).resolve().parent / "data"
BURSTGPT = DATA / "burstgpt.csv"
BURSTGPT_HEADER = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, str):
        p.write_text(text, encoding="utf-8", newline="")
    else:
        p.write_bytes(text)
    return p


def _requests(trace: object) -> tuple[list[float], list[int], list[int]]:
    assert isinstance(trace, RequestTrace)
    return trace.arrival_s.tolist(), trace.input_tokens.tolist(), trace.output_tokens.tolist()


def _servegen(*rows: dict[str, object]) -> str:
    base = {"start": 0, "window": 600, "gap": 0, "rate": 2.5, "mi": 350}
    return SERVEGEN_HEADER + "".join(SERVEGEN_ROW.format(**(base | r)) for r in rows)


# ------------------------------------------------------------------ request traces that load


def test_azure_variants_load_to_the_same_requests(tmp_path: Path) -> None:
    plain = _requests(load_trace(_write(tmp_path, "plain.csv", AZURE_HEADER + AZURE_ROWS)))
    assert plain == ([0.0, 3.5, 3.5], [374, 396, 20], [44, 109, 7])
    variants = {
        "bom.csv": "\ufeff" + AZURE_HEADER + AZURE_ROWS,
        "crlf.csv": (AZURE_HEADER + AZURE_ROWS).replace("\n", "\r\n"),
        "reordered.csv": "GeneratedTokens,TIMESTAMP,ContextTokens\n"
        "44,2023-11-16 18:15:46.5,374\n109,2023-11-16 18:15:50.0,396\n7,2023-11-16 18:15:50.0,20\n",
        "zulu.csv": AZURE_HEADER
        + "2023-11-16T18:15:46.5Z,374,44\n2023-11-16T18:15:50Z,396,109\n2023-11-16T18:15:50Z,20,7\n",
        # the same instants written in another time zone, one of them in UTC
        "offset.csv": AZURE_HEADER
        + "2023-11-16 20:15:46.5+02:00,374,44\n2023-11-16 18:15:50+00:00,396,109\n2023-11-16 20:15:50+02:00,20,7\n",
        "whole.csv": AZURE_HEADER + AZURE_ROWS.replace(",374,", ",374.0,"),
        # a space after each comma, as hand-edited CSVs have
        "spaced.csv": (AZURE_HEADER + AZURE_ROWS).replace(",", ", "),
        # header names with another case or spaces around them
        "lower.csv": "timestamp,contexttokens,generatedtokens\n" + AZURE_ROWS,
        "padded.csv": "TIMESTAMP , ContextTokens\t,\tGeneratedTokens \n" + AZURE_ROWS,
    }
    for name, text in variants.items():
        assert _requests(load_trace(_write(tmp_path, name, text))) == plain, name
    gz = _write(tmp_path, "plain.csv.gz", gzip.compress((AZURE_HEADER + AZURE_ROWS).encode()))
    assert _requests(load_trace(gz)) == plain


def test_azure_numeric_timestamps_are_seconds(tmp_path: Path) -> None:
    # a relative or epoch time in seconds, not nanoseconds since 1970
    text = AZURE_HEADER + "1700154000,10,5\n1700154000.25,10,5\n1700154090,1,1\n"
    trace = load_trace(_write(tmp_path, "t.csv", text))
    assert _requests(trace)[0] == [0.0, 0.25, 90.0]


def test_azure_2024_week_trace_loads() -> None:
    # 2024 stamps carry a +00:00 offset, with a fraction or none: 0.25 - 0.00993 = 0.24007
    trace = load_trace(DATA / "azure_llm_2024.csv")
    arrivals, inputs, outputs = _requests(trace)
    assert arrivals == pytest.approx([0.0, 0.24007, 0.99007, 2.5])
    assert (inputs, outputs) == ([2000, 150, 800, 4100], [5, 12, 1, 64])


def test_burstgpt_loads_without_its_failed_requests() -> None:
    # rows 3 and 5 have Response tokens = 0 (failed); kept rows 1, 2, 4, 6 at 10, 40, 75, 190 s
    trace = load_trace(BURSTGPT)
    assert _requests(trace) == ([0.0, 30.0, 65.0, 180.0], [300, 512, 90, 45], [20, 128, 300, 6])
    assert isinstance(trace, RequestTrace)
    assert trace.num_failed_skipped == 2
    assert trace.name == "burstgpt"


@pytest.mark.parametrize(
    ("model", "expected", "failed"),
    [
        # ChatGPT rows 1, 3 (failed), 4, 6 at 10, 75, 190 s
        ("ChatGPT", ([0.0, 65.0, 180.0], [300, 90, 45], [20, 300, 6]), 1),
        # GPT-4 rows 2 and 5 (failed)
        ("GPT-4", ([0.0], [512], [128]), 1),
    ],
)
def test_burstgpt_model_keeps_one_model(
    model: str, expected: tuple[list[float], list[int], list[int]], failed: int
) -> None:
    trace = load_trace(BURSTGPT, model=model)
    assert _requests(trace) == expected
    assert isinstance(trace, RequestTrace)
    assert trace.num_failed_skipped == failed
    assert trace.name == f"burstgpt:{model}"


def test_burstgpt_model_values_are_read_without_surrounding_spaces(tmp_path: Path) -> None:
    # as column names are: a padded 'GPT-4 ' is GPT-4, not a model of its own silently left out
    text = BURSTGPT_HEADER + "5,GPT-4,10,5,15,API log\n6,GPT-4 ,20,6,26,API log\n7, ChatGPT,30,7,37,API log\n"
    trace = load_trace(_write(tmp_path, "padded.csv", text), model="GPT-4")
    assert _requests(trace) == ([0.0, 1.0], [10, 20], [5, 6])


def test_burstgpt_variants_load_to_the_same_requests(tmp_path: Path) -> None:
    text = BURSTGPT.read_text()
    plain = _requests(load_trace(BURSTGPT))
    lines = text.splitlines()
    # the Hugging Face export's column order: Log Type, Timestamp, Request tokens, Response tokens, Total tokens, Model
    order = [5, 0, 2, 3, 4, 1]
    reordered = "".join(",".join(line.split(",")[i] for i in order) + "\n" for line in lines)
    # release 2.0 adds Session ID (conversation log only) and Elapsed time (s), not read
    v2 = lines[0] + ",Session ID,Elapsed time\n" + "".join(
        f"{line},{'' if 'API' in line else 's1'},{k + 0.5}\n" for k, line in enumerate(lines[1:]))
    variants = {
        "reordered.csv": reordered,
        "v2.csv": v2,
        "lower.csv": text.replace(BURSTGPT_HEADER, BURSTGPT_HEADER.lower()),
        "squeezed.csv": text.replace(BURSTGPT_HEADER, BURSTGPT_HEADER.replace(" ", "")),
        "crlf.csv": text.replace("\n", "\r\n"),
        "fractional_seconds.csv": text.replace("\n75,", "\n75.0,"),
    }
    for name, variant in variants.items():
        assert _requests(load_trace(_write(tmp_path, name, variant))) == plain, name
    assert _requests(load_trace(_write(tmp_path, "b.csv.gz", gzip.compress(text.encode())))) == plain


def test_cli_says_how_many_failed_requests_were_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    load_cli_trace(BURSTGPT, None)
    assert f"note: {BURSTGPT}: 2 failed requests (Response tokens = 0) left out" in capsys.readouterr().err
    load_cli_trace(DATA / "azure_llm_2024.csv", None)
    assert capsys.readouterr().err == ""


def test_simulate_writes_the_failed_requests_left_out_in_its_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code = main(["simulate", "--trace", str(BURSTGPT), "--config", str(SIM_DIR / "sim.yaml"), "--cluster",
                 str(SIM_DIR / "cluster.yaml"), "--out-dir", str(out), "--no-plots", "--scale", "2"])
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["trace_failed_requests_skipped"] == 2


@pytest.mark.parametrize("flag", ["--trace-model", "--servegen-model"])
def test_simulate_passes_the_trace_model(tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str) -> None:
    out = tmp_path / "out"
    code = main(["simulate", "--trace", str(BURSTGPT), "--config", str(SIM_DIR / "sim.yaml"), "--cluster",
                 str(SIM_DIR / "cluster.yaml"), "--out-dir", str(out), "--no-plots", flag, "gpt-4"])
    assert code == 2
    assert "model='gpt-4' has no rows (models: ['ChatGPT', 'GPT-4'])" in capsys.readouterr().err
    assert not out.exists()


def test_mooncake_conversation_trace_loads() -> None:
    # FAST'25 conversation layout: several requests per time stamp (ms), block 0 shared by all
    trace = load_trace(DATA / "mooncake_conversation.jsonl")
    assert _requests(trace) == ([0.0, 0.0, 3.0], [1100, 530, 1600], [40, 7, 210])
    assert trace.hash_ids == ((0, 1, 2), (0, 3), (0, 1, 2, 4))


def test_mooncake_variants_load_to_the_same_requests(tmp_path: Path) -> None:
    plain = load_trace(_write(tmp_path, "plain.jsonl", MOONCAKE))
    assert _requests(plain) == ([0.0, 3.5], [1024, 600], [6, 4])
    assert plain.hash_ids == ((0, 1), (0, 2))
    for name, data in {
        "bom.jsonl": ("\ufeff" + MOONCAKE).encode(),
        "crlf.jsonl": MOONCAKE.replace("\n", "\r\n").encode(),
        "blank.jsonl": ("\n" + MOONCAKE + "\n\n").encode(),
        "plain.jsonl.gz": gzip.compress(MOONCAKE.encode()),
    }.items():
        other = load_trace(_write(tmp_path, name, data))
        assert _requests(other) == _requests(plain), name
        assert other.hash_ids == plain.hash_ids, name


# ------------------------------------------------------------------ request traces refused


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("header.csv", AZURE_HEADER, "no requests (the file has a header and no rows)"),
        ("frac.csv", AZURE_HEADER + "2023-11-16 18:15:46,10.7,5\n",
         "row 1: ContextTokens=10.7 must be a whole number of tokens from 1 to 1e+09"),
        ("huge.csv", AZURE_HEADER + "2023-11-16 18:15:46,10,1e30\n",
         "row 1: GeneratedTokens=1e+30 must be a whole number of tokens"),
        ("inf.csv", AZURE_HEADER + "2023-11-16 18:15:46,inf,5\n", "row 1: ContextTokens=inf must be a whole number"),
        ("word.csv", AZURE_HEADER + "2023-11-16 18:15:46,10,5\n2023-11-16 18:15:47,ten,5\n",
         "row 2: ContextTokens='ten' is not a number"),
        ("nan_time.csv", AZURE_HEADER + "0,10,5\n1e400,10,5\n", "row 2: TIMESTAMP=inf is not a finite time"),
        ("empty.jsonl", "\n\n", "no requests (the file has no JSON lines)"),
        ("hash.jsonl", '{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": "ab"}\n',
         "line 1: hash_ids='ab' must be a list of integer block ids"),
        ("hash_null.jsonl", '{"timestamp": 0, "input_length": 10, "output_length": 5, "hash_ids": [1, null]}\n',
         "line 1: hash_ids=[1, None] must be a list of integer block ids"),
        ("inf.jsonl", '{"timestamp": Infinity, "input_length": 10, "output_length": 5}\n',
         "line 1: timestamp=inf must be a finite time in ms"),
        ("big.jsonl", '{"timestamp": 0, "input_length": 100000000000000000000000, "output_length": 5}\n',
         "line 1: input_length=100000000000000000000000 must be a whole number of tokens from 1 to 1e+09"),
        ("frac.jsonl", '{"timestamp": 0, "input_length": 10, "output_length": 0.5}\n',
         "line 1: output_length=0.5 must be a whole number of tokens"),
        ("back.jsonl", MOONCAKE + '\n{"timestamp": 100, "input_length": 10, "output_length": 5}\n',
         "line 4: timestamp goes back in time (100 ms after 3500 ms)"),
    ],
)
def test_bad_request_trace_is_one_clear_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    p = _write(tmp_path, name, text)
    with pytest.raises(InputError) as err:
        load_trace(p)
    assert str(err.value).startswith(f"{p}: "), err.value
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("negative.csv", BURSTGPT_HEADER + "-5,ChatGPT,10,5,15,API log\n6,ChatGPT,10,5,15,API log\n",
         "row 1: Timestamp=-5 must be at least 0 s (s from 0:00 of the first day)"),
        ("word.csv", BURSTGPT_HEADER + "5,ChatGPT,10,5,15,API log\n6,ChatGPT,ten,5,15,API log\n",
         "row 2: Request tokens='ten' is not a number"),
        ("word_failed.csv", BURSTGPT_HEADER + "5,ChatGPT,10,none,15,API log\n",
         "row 1: Response tokens='none' is not a number"),
        ("datetime.csv", BURSTGPT_HEADER + "2023-11-16 18:15:46,ChatGPT,10,5,15,API log\n",
         "row 1: Timestamp='2023-11-16 18:15:46' is not a number"),
        ("missing_time.csv", BURSTGPT_HEADER + "5,ChatGPT,10,5,15,API log\n,ChatGPT,10,5,15,API log\n",
         "row 2: Timestamp is missing"),
        ("back.csv", BURSTGPT_HEADER + "50,ChatGPT,10,5,15,API log\n40,GPT-4,10,5,15,API log\n",
         "row 2: Timestamp goes back in time (40.0 after 50.0)"),
        ("negative_tokens.csv", BURSTGPT_HEADER + "5,ChatGPT,10,-3,7,API log\n",
         "row 1: Response tokens=-3 must be a whole number of tokens from 0 (a failed request) to 1e+09"),
        # a prompt of no tokens that got an answer is no failure BurstGPT defines: refused, not guessed
        ("no_prompt.csv", BURSTGPT_HEADER + "5,ChatGPT,10,5,15,API log\n6,ChatGPT,0,5,5,API log\n",
         "row 2: Request tokens=0.0 must be at least 1"),
        ("frac.csv", BURSTGPT_HEADER + "5,ChatGPT,10.5,5,15,API log\n",
         "row 1: Request tokens=10.5 must be a whole number of tokens from 1 to 1e+09"),
        ("all_failed.csv", BURSTGPT_HEADER + "5,ChatGPT,0,0,0,API log\n9,GPT-4,20,0,20,API log\n",
         "no requests (all 2 rows are failed requests, Response tokens = 0)"),
        ("header.csv", BURSTGPT_HEADER, "no requests (the file has a header and no rows)"),
        ("extra.csv", "Timestamp,Request tokens,Response tokens,User\n5,10,5,u1\n",
         "column='User' is unknown (expected ['Timestamp', 'Request tokens', 'Response tokens', 'Model'"),
        ("twice.csv", "Timestamp,Request tokens,Response tokens,request tokens\n5,10,5,10\n",
         "columns 'Request tokens' and 'request tokens' are both Request tokens (case and spaces"),
        ("twice_azure.csv", "TIMESTAMP,ContextTokens,GeneratedTokens,Timestamp\n0,1,1,0\n",
         "columns 'TIMESTAMP' and 'Timestamp' are both TIMESTAMP"),
        ("multimodal.csv", "TIMESTAMP,NumImages,ContextTokens,GeneratedTokens\n2024-10-15T12:00:00.269Z,1,949,126\n",
         "column='NumImages': the Azure 2025 multimodal trace is not read"),
        ("neither.csv", "time,prompt,output\n0,1,1\n", "are neither Azure ['TIMESTAMP', 'ContextTokens', "
         "'GeneratedTokens'], BurstGPT ['Timestamp', 'Request tokens', 'Response tokens'] nor ServeGen"),
    ],
)
def test_bad_burstgpt_or_header_is_one_clear_error(tmp_path: Path, name: str, text: str, message: str) -> None:
    p = _write(tmp_path, name, text)
    with pytest.raises(InputError) as err:
        load_trace(p)
    assert str(err.value).startswith(f"{p}: "), err.value
    assert message in str(err.value), err.value
    assert "\n" not in str(err.value)


_SERVEGEN_TWO = _servegen({}, {"start": 600})


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        # pandas read the extra fields of a first row as an index, or dropped them: every value moved
        ("azure.csv", AZURE_HEADER + "2023-11-16 18:15:46.5,374,44,5\n", "row 1 has 4 fields but the header has 3"),
        # a comma ending every row but not the header: was "row 1: GeneratedTokens=nan must be at least 1"
        ("azure_commas.csv", AZURE_HEADER + AZURE_ROWS.replace("\n", ",\n"),
         "row 1 has 4 fields but the header has 3 (the row ends with a comma, the header does not)"),
        # was "row 6: Timestamp='ChatGPT' is not a number"
        ("burstgpt_commas.csv", BURSTGPT.read_text().replace("\n", ",\n").replace("Log Type,", "Log Type", 1),
         "row 1 has 7 fields but the header has 6 (the row ends with a comma, the header does not)"),
        # a later row: refused by pandas by its line in the file (6); the data row does not count blank lines
        ("burstgpt.csv", BURSTGPT_HEADER + "5,ChatGPT,10,5,15,API log\n\n\n6,ChatGPT,10,5,15,API log,x\n",
         "row 2 has 7 fields but the header has 6"),
        ("servegen.csv", _SERVEGEN_TWO[:-1] + ",1\n", "row 2 has 13 fields but the header has 12"),
        ("servegen_first.csv", _SERVEGEN_TWO.replace("350,300", "350,0,300", 1),
         "row 1 has 13 fields but the header has 12"),
        # pandas renamed the second one: was "column='Timestamp.1' is unknown"
        ("twice_exact.csv", "Timestamp,Timestamp,Request tokens,Response tokens,Model\n5,5,10,5,a\n",
         "column 'Timestamp' appears twice"),
    ],
)
def test_a_row_with_more_fields_than_the_header_is_refused(tmp_path: Path, name: str, text: str, message: str) -> None:
    for p in (_write(tmp_path, name, text), _write(tmp_path, name + ".gz", gzip.compress(text.encode()))):
        with pytest.raises(InputError) as err:
            load_trace(p)
        assert str(err.value) == f"{p}: {message}"


def test_a_header_and_rows_that_all_end_with_a_comma_load_as_without_it(tmp_path: Path) -> None:
    azure = AZURE_HEADER + AZURE_ROWS
    plain = _requests(load_trace(_write(tmp_path, "a.csv", azure)))
    assert _requests(load_trace(_write(tmp_path, "a_commas.csv", azure.replace("\n", ",\n")))) == plain
    commas = _write(tmp_path, "b_commas.csv", BURSTGPT.read_text().replace("\n", ",\n"))
    assert _requests(load_trace(commas)) == _requests(load_trace(BURSTGPT))


def test_a_folder_for_a_trace_is_named_as_one(tmp_path: Path) -> None:
    # was "no such trace file"
    with pytest.raises(InputError) as err:
        load_trace(tmp_path)
    assert str(err.value) == f"{tmp_path}: is a folder, not a trace file"


def test_burstgpt_errors_count_rows_in_the_file_and_model_is_checked(tmp_path: Path) -> None:
    text = BURSTGPT_HEADER + "5,ChatGPT,10,5,15,API log\n6,GPT-4,10,5.5,15,API log\n7,GPT-4,x,5,15,API log\n"
    p = _write(tmp_path, "b.csv", text)
    with pytest.raises(InputError, match=r"row 3: Request tokens='x' is not a number"):
        load_trace(p, model="GPT-4")
    with pytest.raises(InputError, match=r"row 2: Response tokens=5.5 must be a whole number of tokens"):
        load_trace(_write(tmp_path, "c.csv", text.replace(",x,", ",10,")), model="GPT-4")
    for layout, path in (("Azure", DATA / "azure_llm_2024.csv"), ("Mooncake", DATA / "mooncake_conversation.jsonl")):
        with pytest.raises(InputError, match=f"model='GPT-4' is asked for, but {layout} traces name no model"):
            load_trace(path, model="GPT-4")


def test_a_burstgpt_file_without_its_model_column_is_refused_naming_it(tmp_path: Path) -> None:
    # before: read as requests of no model (BurstGPT's files always have the column)
    no_model = _write(tmp_path, "d.csv", "Timestamp,Request tokens,Response tokens\n5,10,5\n")
    for model in (None, "GPT-4"):
        with pytest.raises(InputError) as err:
            load_trace(no_model, model=model)
        assert str(err.value) == (f"{no_model}: column='Model' is missing (BurstGPT logs each request's model; the "
                                  "file has ['Timestamp', 'Request tokens', 'Response tokens'])")


def test_undecodable_or_broken_files_name_the_file(tmp_path: Path) -> None:
    latin1 = _write(tmp_path, "latin1.jsonl", b'{"timestamp": 0, "input_length": 1, "output_length": 1, "x": "\xff"}\n')
    with pytest.raises(InputError, match=r"latin1\.jsonl: not UTF-8 text"):
        load_trace(latin1)
    broken = _write(tmp_path, "broken.jsonl.gz", gzip.compress(MOONCAKE.encode())[:-12])
    with pytest.raises(InputError, match=r"broken\.jsonl\.gz: cannot read gzip data"):
        load_trace(broken)
    not_gz = _write(tmp_path, "plain.csv.gz", AZURE_HEADER + AZURE_ROWS)
    with pytest.raises(InputError, match=r"plain\.csv\.gz: cannot read trace CSV"):
        load_trace(not_gz)


# ------------------------------------------------------------------ rate traces


def test_servegen_rate_trace_with_gap_windows_loads(tmp_path: Path) -> None:
    p = _write(tmp_path, "r.csv", _servegen({}, {"start": 600, "gap": 1, "rate": 0, "mi": ""}, {"start": 1200}))
    trace = load_trace(p)
    assert isinstance(trace, RateTrace)
    assert trace.gaps.tolist() == [False, True, False]
    assert trace.mean_input.tolist() == [350.0, 350.0, 350.0]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (({"window": 0},), "row 1: window_s=0 must be a finite number above 0"),
        (({"rate": "inf"},), "row 1: rate_rps=inf must be a finite number at least 0"),
        (({"gap": "x"},), "row 1: is_gap='x' is not a number"),
        (({"gap": 2},), "row 1: is_gap=2 must be 0 or 1"),
        (({"start": "abc"},), "row 1: window_start_s='abc' is not a number"),
        (({"mi": ""},), "mean_input_tokens is missing in every window of model 'm-large'"),
        (({}, {"start": 300}), "row 2: window_start_s=300 is before the end of the window before (0 + 600 s)"),
        (({}, {"start": 0}), "row 2: window_start_s=0 is before the end of the window before"),
    ],
)
def test_bad_rate_trace_is_one_clear_error(tmp_path: Path, rows: tuple[dict[str, object], ...], message: str) -> None:
    p = _write(tmp_path, "r.csv", _servegen(*rows))
    with pytest.raises(InputError) as err:
        load_trace(p)
    assert str(err.value).startswith(f"{p}: ")
    assert message in str(err.value)


def test_rate_trace_rows_are_counted_in_the_file_not_in_the_model(tmp_path: Path) -> None:
    other = "language,m-small,0,600,0,1,1,10,10,1,1,1\n"
    text = _servegen({}).replace(SERVEGEN_HEADER, SERVEGEN_HEADER + other) + SERVEGEN_ROW.format(
        start=600, window=-5, gap=0, rate=1, mi=1)
    with pytest.raises(InputError, match=r"row 3: window_s=-5 must be a finite number above 0"):
        load_trace(_write(tmp_path, "r.csv", text))


def test_rate_trace_values_that_are_not_numbers_are_counted_in_the_file(tmp_path: Path) -> None:
    other = "language,m-small,0,600,0,1,1,10,10,1,1,1\n"
    text = SERVEGEN_HEADER + other + SERVEGEN_ROW.format(start=0, window=600, gap=0, rate="x", mi=1)
    with pytest.raises(InputError, match=r"row 2: rate_rps='x' is not a number"):
        load_trace(_write(tmp_path, "r.csv", text))


# ------------------------------------------------------------------ scaling


def test_scale_factors_are_bounded() -> None:
    trace = RequestTrace("t", np.array([0.0]), np.array([1]), np.array([1]))
    rates = RateTrace("r", np.array([0.0]), np.array([600.0]), np.array([1.0]), np.array([1.0]), np.array([1.0]))
    for factor in (0, 1001, 10**9):
        with pytest.raises(InputError, match="must be a whole number of copies from 1 to 1000"):
            scale_trace(trace, factor, 0)
    for rate in (0.0, -1.0, float("nan"), float("inf"), 1e6):
        with pytest.raises(InputError, match="must be a rate multiplier above 0 and at most 1000"):
            scale_rates(rates, rate)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--scale", "nan"], "--scale=nan must be a positive number"),
        (["--scale", "inf"], "--scale=inf must be a positive number"),
        (["--scale", "1e9"], "scale=1000000000 must be a whole number of copies from 1 to 1000"),
        (["--duration", "nan"], "--duration=nan must be a positive number of seconds"),
        (["--duration", "-5"], "--duration=-5 must be a positive number of seconds"),
    ],
)
def test_simulate_refuses_bad_scale_and_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code = main(["simulate", "--trace", str(TRACES / "azure_llm_2023_conv.csv"), "--config", str(SIM_DIR / "sim.yaml"),
                 "--cluster", str(SIM_DIR / "cluster.yaml"), "--out-dir", str(out), "--no-plots", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == message or err.endswith(message), err
    assert not out.exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        # 1e-9 s between cycles: a one-request trace ran for ever
        ("control_period_s: 1e-9", "control_period_s='1e-9': Input should be greater than or equal to 1"),
        ("control_period_s: 1e9", "control_period_s='1e9': Input should be less than or equal to 86400"),
    ],
)
def test_simulate_refuses_a_control_period_outside_1s_to_a_day(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    text = (SIM_DIR / "sim.yaml").read_text().replace("control_period_s: 60", change)
    (tmp_path / "sim.yaml").write_text(text)
    (tmp_path / "policy.yaml").write_text((SIM_DIR / "policy.yaml").read_text())
    trace = _write(tmp_path, "one.csv", AZURE_HEADER + "2023-11-16 18:15:46,100,50\n")
    out = tmp_path / "out"
    code = main(["simulate", "--trace", str(trace), "--config", str(tmp_path / "sim.yaml"), "--cluster",
                 str(SIM_DIR / "cluster.yaml"), "--out-dir", str(out), "--no-plots"])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("rows", "lasts"),
    [
        # epoch milliseconds read as seconds make a one-hour trace last 41 days; a unit slip of 1e6 is refused
        ("0,100,50\n6.6e7,100,50\n", "6.6e+07 s, 1.1e+06"),
        ("0,100,50\n1e300,100,50\n", "1e+300 s, 1.67e+298"),
        ("1900-01-01 00:00,100,50\n2100-01-01 00:00,100,50\n", "6.31143e+09 s, 1.05e+08"),
    ],
)
def test_simulate_refuses_a_trace_of_more_than_a_million_periods_naming_the_trace(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rows: str, lasts: str
) -> None:
    # the message named the config file (sim.yaml), not the trace whose times are off
    trace = _write(tmp_path, "long.csv", AZURE_HEADER + rows)
    out = tmp_path / "out"
    code = main(["simulate", "--trace", str(trace), "--config", str(SIM_DIR / "sim.yaml"), "--cluster",
                 str(SIM_DIR / "cluster.yaml"), "--out-dir", str(out), "--no-plots"])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        f"{trace}: the trace lasts {lasts} control periods of 60 s; at most 1e+06 are simulated (are its times in "
        "the right unit?)"
    )
    assert not out.exists()


def test_a_compressed_trace_is_named_without_its_suffixes(tmp_path: Path) -> None:
    path = tmp_path / "burst.csv.gz"
    path.write_bytes(gzip.compress(BURSTGPT.read_bytes()))
    assert load_trace(path).name == "burst"
    assert load_trace(path, model="GPT-4").name == "burst:GPT-4"
