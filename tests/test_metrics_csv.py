"""The metrics CSV that ``hetero-opt autoscale --metrics`` replays: one row per service and time.

A row the replay cannot read exactly once is refused with one line naming the file, the row and
the field, before any cycle runs; nothing is dropped, picked or ignored silently.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from hetero_opt.cli import main
from hetero_opt.errors import InputError
from hetero_opt.policy.engine import metrics_from_frame
from hetero_opt.replay import load_metrics

DEMO = Path(__file__).resolve().parents[1] / "instances" / "autoscale"
HEADER = "time,service,decode_tps,prefill_tps\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # two readings of one service at one time: which one counts was arbitrary
        (HEADER + "600,chat,7000,9000\n600,chat,100,100\n",
         "row 2: service='chat' at time=600 appears twice (one row per service and time)"),
        # a row without a time was dropped by the grouping
        (HEADER + "600,chat,7000,9000\n,chat,100000,100000\n", "row 2: time is missing"),
        (HEADER + "600,,7000,9000\n", "row 1: service is missing"),
        (HEADER + "2024-01-01 00:00,chat,7000,9000\n", "row 1: time='2024-01-01 00:00' is not a number of seconds"),
        # a misspelt metric was ignored and the policy held for want of a metric
        ("time,service,decode_tp,prefill_tps\n600,chat,7000,9000\n", "column='decode_tp' is unknown"),
        (HEADER + "600,chat,fast,9000\n", "row 1 (service='chat', time=600): decode_tps='fast' is not a number"),
        ("time,service,decode_ready_pods\n600,chat,x\n", "row 1 (service='chat', time=600): decode_ready_pods='x'"),
        # more fields than the header: pandas read the first ones as an index (time=100 for service '5')
        ("time,service,decode_tps\n600,chat,100,5,6\n", "row 1 has 5 fields but the header has 3"),
        # ... or, from the second row on, refused by the line in the file (blank lines are no rows)
        ("time,service,decode_tps\n600,chat,100\n\n1200,chat,100,5\n", "row 2 has 4 fields but the header has 3"),
        # a comma ending every row but not the header: was "row 1: time='chat' is not a number of seconds"
        ("time,service,decode_tps\n600,chat,100,\n1200,chat,100,\n",
         "row 1 has 4 fields but the header has 3 (the row ends with a comma, the header does not)"),
        ("time,service,decode_tps,\n600,chat,100,\n1200,chat,100,7\n",
         "row 2: value 7 is in column 4, which has no name in the header"),
        ("time,,decode_tps\n600,chat,100\n", "column 2 has no name in the header"),
        # pandas renames the second one: was "column='decode_tps.1' is unknown"
        ("time,service,decode_tps,decode_tps\n600,chat,100,100\n", "column 'decode_tps' appears twice"),
        # was a run of no cycles, exit 0 with an empty table
        (HEADER, "no rows (the file has a header and nothing else)"),
        (HEADER + "\n\n", "no rows (the file has a header and nothing else)"),
    ],
)
def test_bad_metrics_csv_is_refused_before_any_cycle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text(text)
    with pytest.raises(InputError) as err:
        load_metrics(p)
    assert str(err.value).startswith(f"{p}: ")
    assert message in str(err.value)
    state = tmp_path / "state.json"
    code = main(["autoscale", "--config", str(DEMO / "policy.yaml"), "--instance", str(DEMO / "cluster.yaml"),
                 "--metrics", str(p), "--state-out", str(state)])
    out = capsys.readouterr()
    assert code == 2
    assert out.err.strip() == str(err.value)
    assert not state.exists()


def test_metrics_csv_with_bom_spaces_and_rows_in_any_order_reads_as_sorted(tmp_path: Path) -> None:
    p = tmp_path / "m.csv"
    p.write_text("\ufeff" + HEADER.replace(",", ", ") + "1200, chat, 2,\n600, chat, 1, 5\n", encoding="utf-8")
    series = load_metrics(p)
    assert [(t, m["chat"].decode_tps, m["chat"].prefill_tps) for t, m in series] == [
        (600.0, 1.0, 5.0),
        (1200.0, 2.0, None),
    ]


def test_a_header_and_rows_that_all_end_with_a_comma_read_as_without_it(tmp_path: Path) -> None:
    text = HEADER + "600,chat,1,5\n1200,chat,2,6\n"
    plain, commas = tmp_path / "plain.csv", tmp_path / "commas.csv"
    plain.write_text(text)
    commas.write_text(text.replace("\n", ",\n"))
    assert load_metrics(commas) == load_metrics(plain)


def test_a_folder_for_metrics_is_named_as_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["autoscale", "--config", str(DEMO / "policy.yaml"), "--instance", str(DEMO / "cluster.yaml"),
                 "--metrics", str(tmp_path)])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"{tmp_path}: is a folder, not a metrics CSV file"


def test_frame_rows_are_named_by_their_position_in_the_frame() -> None:
    df = pd.DataFrame({"time": [0, 30, 30], "service": ["a", "a", "a"], "decode_tps": [1.0, 2.0, 3.0]})
    with pytest.raises(InputError, match=r"row 3: service='a' at time=30 appears twice"):
        list(metrics_from_frame(df))


def test_rows_of_a_service_that_is_not_configured_are_named_once_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    p = tmp_path / "metrics.csv"
    p.write_text(HEADER + "600,chat,7000,9000\n600,chatt,7000,9000\n1200,chatt,7000,9000\n")
    code = main(["autoscale", "--config", str(DEMO / "policy.yaml"), "--instance", str(DEMO / "cluster.yaml"),
                 "--metrics", str(p), "--solver", "greedy"])
    err = capsys.readouterr().err
    assert code == 0
    assert err.count("warning: metrics for 'chatt' ignored: not a configured service ('chat')") == 1
