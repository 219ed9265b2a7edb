"""A bad policy config is refused in one line naming the file, the service, the field and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from hetero_opt.errors import InputError
from hetero_opt.policy import load_policy_config

MODELS = Path(__file__).resolve().parents[2] / "models"

CHAT = "services:\n  - service: chat\n    policy: {policy}\n"


def _refusal(tmp_path: Path, text: str) -> str:
    p = tmp_path / "p.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as exc:
        load_policy_config(p)
    msg = str(exc.value)
    assert "\n" not in msg
    prefix = f"Policy config '{p}': "
    assert msg.startswith(prefix), msg
    return msg.removeprefix(prefix)


def test_an_unquoted_time_is_shown_as_written_with_the_fix(tmp_path: Path) -> None:
    """YAML 1.1 reads 10:30 as 630 (base 60); the message said only 'Input should be a valid string'."""
    window = "        - {start: 10:30, end: '12:00', units: 3}\n"
    text = CHAT.format(policy="periodic") + "    periodic:\n      windows:\n" + window
    assert _refusal(tmp_path, text) == (
        "Service 'chat': periodic.windows[0].start=630: YAML read 10:30 as a number; quote it"
    )


def test_a_wrong_type_shows_the_value(tmp_path: Path) -> None:
    text = CHAT.format(policy="static") + "    static_units: three\n"
    assert _refusal(tmp_path, text).startswith("Service 'chat': static_units='three': Input should be a valid integer")


def test_a_nested_rule_names_the_service_and_section(tmp_path: Path) -> None:
    text = CHAT.format(policy="kpa") + "    kpa: {max_scale_down_rate: 1}\n"
    assert _refusal(tmp_path, text) == "Service 'chat': kpa: max_scale_down_rate=1.0 must be > 1 and <= 1e9"


def test_a_missing_models_dir_is_named(tmp_path: Path) -> None:
    profile = "    profile: llama3-70b-pd\n    gpu_type: H20\n"
    text = "models_dir: /nonexistent\n" + CHAT.format(policy="hybrid") + profile
    assert _refusal(tmp_path, text) == "models_dir='/nonexistent': no such folder (/nonexistent)"


def test_an_unknown_profile_names_the_folder_searched(tmp_path: Path) -> None:
    text = f"models_dir: {MODELS}\n" + CHAT.format(policy="hybrid") + "    profile: llama3-7b\n    gpu_type: H20\n"
    msg = _refusal(tmp_path, text)
    assert msg.startswith(f"Service 'chat': profile='llama3-7b' not found in models_dir '{MODELS}' (known: ")
    assert "llama3-70b-pd" in msg


def test_an_integer_beyond_pythons_limit_names_the_line(tmp_path: Path) -> None:
    text = CHAT.format(policy="hybrid") + "    min_units: " + "9" * 5000 + "\n"
    assert _refusal(tmp_path, text) == (
        "line 4: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"
    )


@pytest.mark.parametrize("text", ["", "# nothing set yet\n"], ids=["empty", "comments-only"])
def test_an_empty_file_is_called_empty(tmp_path: Path, text: str) -> None:
    assert _refusal(tmp_path, text) == "the file is empty (no settings)"


def test_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    text = CHAT.format(policy="hybrid") + "    min_units: 2\n    max_units: 9\n    min_units: 3\n"
    assert _refusal(tmp_path, text) == "line 6: key 'min_units' appears twice"


@pytest.mark.parametrize(("name", "reason"), [("missing.yaml", "No such file or directory"), (".", "Is a directory")])
def test_a_config_that_cannot_be_read_says_why_in_one_line(tmp_path: Path, name: str, reason: str) -> None:
    # before: "cannot read: [Errno 21] Is a directory: '.'" (the errno and the path twice)
    path = tmp_path / name
    with pytest.raises(InputError) as exc:
        load_policy_config(path)
    assert str(exc.value) == f"Policy config '{path}': cannot read file ({reason})"
