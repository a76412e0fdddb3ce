"""The end-of-evaluation console lines: a table of metrics by direction, not one long line."""

from sbcore.log.plugin import eval_lines


def test_evaluation_is_printed_as_a_table_by_direction():
    evals = {f"{d}/{m}": v for d in ("forward", "backward") for m, v in (("w2", 0.123456), ("mmd", 2e-5))}
    lines = eval_lines(40, {**evals, "captured": 6.0, "forward/only": 1.0})
    assert lines[0] == "[eval @ step 40] captured=6"
    assert lines[1].split() == ["forward", "backward"]
    assert lines[2].split() == ["w2", "0.1235", "0.1235"]
    assert lines[3].split() == ["mmd", "2e-05", "2e-05"]
    assert lines[4].split() == ["only", "1", "-"]
    assert len(lines) == 5 and max(len(line) for line in lines) < 60
