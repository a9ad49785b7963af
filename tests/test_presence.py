"""A second actor serving the same selector says so at start, naming the other."""

import socket

from support import wait_for


def test_a_second_xtss_names_the_first_and_a_dead_one_is_not_named(server, actors):
    host = socket.gethostname()
    first = actors.start("xtss.py")
    wait_for(lambda: "serving selector 'xtss'" in first.log(), 60, what="the first XTSS")
    second = actors.start("xtss.py")
    wait_for(lambda: "serving selector 'xtss'" in second.log(), 60, what="the second XTSS")
    wait_for(lambda: f"another receiver serves 'xtss' too: xtss@{host}:{first.pid}" in second.log(),
             30, what="the second XTSS naming the first")
    assert "another receiver" not in first.log()

    first.kill()
    third = actors.start("xtss.py")
    wait_for(lambda: f"serves 'xtss' too: xtss@{host}:{second.pid}" in third.log(), 60,
             what="the third XTSS naming the second")
    assert f":{first.pid} " not in third.log()    # killed: not named
