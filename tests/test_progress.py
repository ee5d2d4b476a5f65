"""Progress output: a line every interval when stderr is not a terminal."""

import io

from evalharness.progress import LineProgress, progress, role_label


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_line_progress_prints_every_interval_with_rate_and_eta():
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(1000, "minilm documents", stream=out, interval=10, clock=clock)
    clock.t = 5
    bar.update(100)
    assert out.getvalue() == ""  # within the interval: silent
    clock.t = 10
    bar.update(100)
    line = out.getvalue().strip()
    assert line == "minilm documents: 200/1000 texts (20%), 20.0 texts/s, ETA 40s"
    clock.t = 50
    bar.update(800)
    bar.close()
    lines = out.getvalue().strip().splitlines()
    assert lines[-1] == "minilm documents: 1000/1000 texts (100%), 20.0 texts/s, done"


def test_short_pass_prints_nothing():
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(10, "x", stream=out, interval=10, clock=clock)
    clock.t = 1
    bar.update(10)
    bar.close()
    assert out.getvalue() == ""


def test_non_tty_gets_line_progress_and_labels_name_the_role():
    assert isinstance(progress(5, "x", stream=io.StringIO()), LineProgress)
    assert role_label("any") == "texts" and role_label("query") == "queries"


def test_loading_a_model_prints_no_transformers_bar(capfd):
    from evalharness.encoders.pool import build_encoder
    from evalharness.encoders.spec import parse_spec_string

    enc = build_encoder(parse_spec_string("m", "minilm"))
    enc.load()
    assert enc.encode(["a short text"], role="text").shape == (1, 384)
    err = capfd.readouterr().err
    assert "Loading weights" not in err and "%|" not in err
