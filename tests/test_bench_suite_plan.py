"""The suite bench measures the run's own unique texts (the plan of the runner)."""

from evalharness.bench.suite import plan_texts
from helpers import STS_ROWS, make_sts, write_suite


def test_plan_texts_are_the_runs_unique_texts(tmp_path):
    make_sts(tmp_path / "data")
    suite = write_suite(tmp_path / "s.yaml", "suite: b\nencoders: {r: 'random?dim=4'}\n"
                        "tasks:\n  a: {type: sts, dataset: tinysts}\n"
                        "  b: {type: sts, dataset: tinysts, limit: 3}\n")
    texts = plan_texts(suite, str(tmp_path / "data"))
    assert texts == sorted({t for row in STS_ROWS for t in row[:2]})
