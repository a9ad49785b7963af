"""The prompt shared by DRA and AQUA/QA2, in-process with text streams."""

import io

from draws.exceptions import RemoteError
from draws.prompt import Console, pick_loop, table

A = {"entityId": "uid://X1/X1/Xa", "progID": "2015.1.00657.S", "substate": "PipelineImaging"}
B = {"entityId": "uid://X1/X1/Xb", "progID": "2016.1.00001.S", "substate": "PipelineCalibration"}


def run_loop(text, listings, act=None):
    """Run pick_loop on TEXT as input; LISTINGS are what successive list calls return."""
    out, calls, chosen = io.StringIO(), [], []
    console = Console(io.StringIO(text), out)

    def list_items():
        calls.append(1)
        return listings[min(len(calls), len(listings)) - 1]

    status = pick_loop(console, "Ready OUSs", ("UID", "Program", "Recipe"), list_items,
                       lambda o: (o["entityId"], o["progID"], o["substate"]),
                       act or chosen.append)
    return status, out.getvalue(), len(calls), chosen


def test_table_aligns_columns():
    text = table([("uid://X1/X1/Xa", "2015.1.00657.S"), ("u", "p")], ("UID", "Program"))
    lines = text.splitlines()
    assert lines[0] == "UID             Program"
    assert lines[1] == "-" * 14 + "  " + "-" * 14
    assert lines[3] == "u               p"


def test_end_of_input_exits_zero_with_a_listing():
    status, out, calls, chosen = run_loop("", [[A]])
    assert status == 0 and chosen == [] and calls == 1
    assert "Ready OUSs (1):" in out and "uid://X1/X1/Xa  2015.1.00657.S  PipelineImaging" in out


def test_empty_line_refreshes_and_q_quits():
    status, out, calls, chosen = run_loop("\nq\n" + B["entityId"] + "\n", [[], [A, B]])
    assert status == 0 and chosen == []          # nothing read after q
    assert calls == 2
    assert "Ready OUSs: none at the moment." in out and "Ready OUSs (2):" in out


def test_unknown_and_malformed_uids_are_asked_again():
    text = "uid://X9/X9/X9\nnonsense\n" + A["entityId"] + "\n"
    status, out, calls, chosen = run_loop(text, [[A]])
    assert chosen == [A] and status == 0
    assert "uid://X9/X9/X9 is not in the list" in out
    assert "'nonsense' is not an OUS UID" in out
    assert out.count("Enter a UID") == 4          # unknown, malformed, chosen, then end of input


def test_a_uid_listed_since_the_last_refresh_is_found():
    status, out, calls, chosen = run_loop(B["entityId"] + "\n", [[A], [A, B]])
    assert chosen == [B]


def test_errors_of_an_action_are_reported_and_the_loop_goes_on():
    def act(ous):
        raise RemoteError("XTSS refused set-state: no OUS")
    status, out, calls, _ = run_loop(A["entityId"] + "\n", [[A]], act)
    assert status == 0 and "error: XTSS refused set-state: no OUS" in out and calls == 2


def test_choose_asks_until_the_answer_is_valid():
    out = io.StringIO()
    console = Console(io.StringIO("x\n\npass\n"), out)
    assert console.choose("[F]ail, [P]ass: ", "FP") == "P"
    assert out.getvalue().count("Please answer one of F, P.") == 2
