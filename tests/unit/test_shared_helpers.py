"""The shared base helpers: the table formatter, the H×W parser, the parameter counter and the latency loop."""

import numpy as np
import pytest

from bpnet_core.costs import count_params, time_calls
from bpnet_core.errors import BpnetError
from bpnet_core.sizes import parse_hw
from bpnet_core.tables import dict_table, format_table


def test_markdown_table_alignment_and_empty_cells():
    text = format_table(["a", "b", "c"], [[1, "", 2.5]], align="lrr")
    assert text.splitlines() == ["| a | b | c |", "|---|---:|---:|", "| 1 | | 2.5 |"]
    assert format_table(["a"], []) == "| a |\n|---|"
    assert dict_table([{"x": 1}, {"y": 2}], ["x", "y"]).splitlines()[3] == "| | 2 |"
    assert dict_table([]) == ""


def test_text_table_pads_without_cutting():
    text = format_table(["", "AP"], [["pruned", "0.412"], ["a-very-long-name", "1"]], style="text", widths=[8, 7])
    assert text.splitlines() == ["             AP", "pruned    0.412", "a-very-long-name      1"]
    with pytest.raises(BpnetError, match="width"):
        format_table(["a"], [], style="text")


@pytest.mark.parametrize(
    "value, expect",
    [
        ("368x368", (368, 368)),
        ("288,384", (288, 384)),
        ("288×384", (288, 384)),
        ([64, 96], (64, 96)),
        (256, (256, 256)),
        (np.int64(64), (64, 64)),
    ],
)
def test_parse_hw(value, expect):
    assert parse_hw(value) == expect


def test_parse_hw_errors_name_the_argument():
    with pytest.raises(BpnetError, match="input size must be HxW"):
        parse_hw("a,b")
    with pytest.raises(BpnetError, match="--sizes: H and W must be positive multiples of the stride 8"):
        parse_hw("60x64", what="--sizes")
    with pytest.raises(BpnetError, match=r"must be HxW \(got '64,64,3'\)"):
        parse_hw("64,64,3")
    assert parse_hw("64,64,3", channels=True) == (64, 64)


def test_count_params_and_time_calls():
    class V:
        def __init__(self, *shape):
            self.shape = shape

    class M:
        weights = [V(3, 3, 3, 8), V(8)]

    assert count_params(M()) == 3 * 3 * 3 * 8 + 8
    calls = []
    times = time_calls({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4 and [len(t) for t in times.values()] == [3, 3]
