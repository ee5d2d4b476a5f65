"""Command line: parse arguments, call the API, map errors to exit codes.

Exit codes (contract): 0 all error-severity gates passed; 1 a gate failed; 2 bad input
(suite, data, arguments); 3 an internal or encoder failure. Heavy libraries are imported
only by the commands that need them, so ``--help`` and ``validate`` start fast.
"""

from __future__ import annotations

import argparse
import os
import sys


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # bad CLI arguments: exit 2 with one clear line
        self.print_usage(sys.stderr)
        print(f"evalharness: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _log(*args, **kwargs):
    print(*args, file=sys.stderr, **kwargs)


def _encoder_overrides(items: list[str]) -> dict[str, str]:
    from evalharness.errors import UserError

    out = {}
    for item in items or []:
        eid, sep, spec = item.partition("=")
        if not sep or not eid or not spec:
            raise UserError(f"--encoder expects ID=SPEC, got '{item}'",
                            hint="e.g. --encoder mini=st:/path/to/model or --encoder base=random?dim=384")
        out[eid] = spec
    return out


def cmd_run(args) -> int:
    from pathlib import Path

    from evalharness import console
    from evalharness.api import evaluate
    from evalharness.runner import new_run_id
    from evalharness.suite import load_suite

    suite = load_suite(args.suite)
    folder = Path(args.output) if args.output else Path("reports") / new_run_id(suite.suite)
    res = evaluate(suite, encoders=_encoder_overrides(args.encoder), data_dir=args.data_dir,
                   cache_dir=args.cache_dir, no_cache=args.no_cache, output=folder,
                   only=args.only, engine=args.engine, ray_address=args.ray_address,
                   device=args.device,
                   track=args.track, report=True, log=_log)
    print(console.results_table(res.results))
    print()
    print(console.stage_table(res.results))
    facts = console.model_lines(res.results)
    if facts:
        print()
        print("\n".join(facts))
    if res.verdicts:
        print()
        print(console.verdict_table(res.results))
    print(f"\nresults: {folder / 'results.json'}")
    if (folder / "report.html").exists():
        print(f"report:  {folder / 'report.html'}")
    if res.tracking:
        print(f"tracked: {res.tracking['tracker']} run {res.tracking['run_id']}")
    print(console.verdict_line(res.results, res.exit_code))
    for err in res.errors:
        _log(f"error: {err}")
    return res.exit_code


def cmd_validate(args) -> int:
    from evalharness.suite import load_suite, metric_catalog

    suite = load_suite(args.suite)
    cat = metric_catalog(suite)
    print(f"{args.suite}: OK — suite '{suite.suite}', {len(suite.encoders)} encoder(s), "
          f"{len(suite.tasks)} task(s), {len(suite.checks)} check(s), "
          f"{len(suite.thresholds)} threshold(s), {sum(len(v) for v in cat.values())} metrics")
    return 0


def cmd_gate(args) -> int:
    from evalharness import console
    from evalharness.atomic import write_atomic
    from evalharness.gate import run_gate

    outcome = run_gate(args.results, thresholds_file=args.thresholds, baseline=args.baseline,
                       tolerance=args.tolerance, metrics=args.regression_metrics,
                       include_machine_dependent=args.include_machine_dependent,
                       significant=args.significant, alpha=args.alpha, n_boot=args.bootstrap,
                       seed=args.seed)
    res, code = outcome.results, 0 if outcome.passed else 1
    # with --markdown - the Markdown goes to stdout (>> $GITHUB_STEP_SUMMARY), the table to stderr
    out = sys.stderr if args.markdown == "-" else sys.stdout
    print(console.verdict_table(res), file=out)
    print(console.verdict_line(res, code), file=out)
    if args.junit:
        from evalharness.report.junit import render_junit

        write_atomic(args.junit, render_junit(res))
        _log(f"wrote {args.junit}")
    if args.markdown:
        from evalharness.report.gate_summary import render_gate_summary

        text = render_gate_summary(res)
        if args.markdown == "-":
            sys.stdout.write(text)
        else:
            write_atomic(args.markdown, text)
            _log(f"wrote {args.markdown}")
    return code


def cmd_report(args) -> int:
    from evalharness.atomic import write_atomic
    from evalharness.results import load_results

    runs = [load_results(p) for p in args.results]
    if args.format == "md":
        from evalharness.report.markdown import render_markdown

        text = render_markdown(runs)
    elif args.format == "junit":
        from evalharness.report.junit import render_junit

        text = render_junit(runs)
    else:
        from evalharness.errors import UserError

        try:
            from evalharness.report.html import render_html
        except ImportError:
            raise UserError("the HTML report is not available in this build",
                            hint="use --format md") from None
        text = render_html(runs)
    if args.output:
        write_atomic(args.output, text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def cmd_compare(args) -> int:
    from evalharness import console
    from evalharness.compare import compare_files, dumps_comparisons

    rows = compare_files(args.results, reference=args.reference, n_boot=args.bootstrap,
                         seed=args.seed, alpha=args.alpha)
    print(console.comparison_table(rows, main_only=args.main_only))
    wins = [r for r in rows if r["winner"]]
    untested = sum(1 for r in rows if r.get("p_value") is None)
    print(f"\n{len(rows)} metric(s) compared; {len(wins)} significant at alpha={args.alpha} "
          f"(paired bootstrap, {args.bootstrap} resamples, seed {args.seed}; * = main metric)"
          + (f"; {untested} without a paired test (no per-item data)" if untested else ""))
    if args.output:
        from evalharness.atomic import write_atomic

        write_atomic(args.output, dumps_comparisons(rows))
        print(f"wrote {args.output}")
    return 0


def cmd_data(args) -> int:
    from pathlib import Path

    from evalharness.data.resolve import list_local, search_dirs, user_data_dir
    from evalharness.errors import UserError

    if args.data_cmd == "list":
        found = list_local(args.data_dir)
        print("search order: " + " > ".join(f"{o} ({d})" for o, d in search_dirs(args.data_dir)))
        if not found:
            print("no datasets found")
        for ds in found:
            files = ", ".join(f"{f}: {n} rows" for f, n in ds["files"].items())
            print(f"{ds['name']:<20} {ds['origin']:<16} {files}")
        return 0
    if args.data_cmd == "pull" and args.name.startswith("mteb:"):
        from evalharness.data.mteb_data import pull as pull_mteb

        path = pull_mteb(args.name[len("mteb:"):], args.data_dir)
        print(f"pulled {args.name} into {path}")
        return 0
    if args.data_cmd == "pull":
        from evalharness.data.hub import pull

        dest = Path(args.data_dir) if args.data_dir else user_data_dir()
        path = pull(args.name, dest)
        print(f"pulled {args.name} into {path}")
        return 0
    if args.data_cmd == "import":
        import shutil

        src = Path(args.path)
        if not src.is_dir():
            raise UserError(f"not a folder: {src}")
        dest = (Path(args.data_dir) if args.data_dir else user_data_dir()) / args.as_name
        if dest.exists():
            raise UserError(f"{dest} already exists", hint="choose another --as NAME")
        shutil.copytree(src, dest)
        print(f"imported {src} as {args.as_name} ({dest})")
        return 0
    return 2


def cmd_cache(args) -> int:
    from evalharness import cache_admin

    return cache_admin.run(args)


def cmd_export(args) -> int:
    from evalharness.interop.mteb_results import export_mteb
    from evalharness.results import load_results

    report = export_mteb(load_results(args.results), args.output, models=args.model,
                         revisions=args.revision, encoders=args.encoder)
    for line in report.lines():
        print(line)
    print(f"{len(report.written)} MTEB result file(s) written under {args.output}")
    return 0


def cmd_import(args) -> int:
    from evalharness.interop.mteb_results import import_to_file

    res = import_to_file(args.paths, args.output, model=args.model, revision=args.revision,
                         encoder_id=args.as_id, suite=args.suite)
    comps = next(iter(res.results.values()))
    print(f"imported {len(comps)} MTEB task(s) of {args.model} as encoder "
          f"'{next(iter(res.encoders))}' into {args.output}")
    return 0


def cmd_list(args) -> int:
    from evalharness import registry

    if args.what == "metrics":
        if not args.suite:
            from evalharness.errors import UserError

            raise UserError("'list metrics' needs --suite SUITE.yaml")
        from evalharness.suite import load_suite, metric_catalog

        for cid, names in metric_catalog(load_suite(args.suite)).items():
            for n in names:
                print(f"{cid}.{n}")
        return 0
    if args.what == "mteb-tasks":
        from evalharness.tasks.mteb_task import format_mteb_tasks

        print(format_mteb_tasks(args.type))
        return 0
    kind = {"tasks": "task", "checks": "check", "encoders": "encoder"}[args.what]
    for name in registry.available(kind):
        print(name + ("  (any MTEB task by name: evalharness list mteb-tasks [--type TYPE])"
                      if (kind, name) == ("task", "mteb") else ""))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from evalharness import __version__

    p = _Parser(prog="evalharness", description="Evaluate text encoders: suites of tasks "
                "and checks, quality gates, reports.")
    p.add_argument("--version", action="version", version=f"evalharness {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", help="run a suite")
    r.add_argument("suite")
    r.add_argument("--encoder", action="append", metavar="ID=SPEC",
                   help="add or replace an encoder (repeatable)")
    r.add_argument("--data-dir")
    r.add_argument("--output", "-o", help="run folder (default reports/<run-id>)")
    r.add_argument("--no-cache", action="store_true")
    r.add_argument("--cache-dir")
    r.add_argument("--only", nargs="+", metavar="ID")
    r.add_argument("--engine", choices=["local", "ray"], default=None,
                   help="where cache misses are encoded (default: the suite's execution: "
                        "engine, else local)")
    r.add_argument("--ray-address", metavar="ADDR",
                   help="an existing Ray cluster ('auto', 'ray://HOST:10001'); default: a "
                        "local Ray started for the run")
    r.add_argument("--device", metavar="DEV", default=None,
                   help="torch device for st/hf/minilm/mteb encoders: auto (default: CUDA, "
                        "then MPS, then CPU), cpu, cuda, cuda:N, mps")
    r.add_argument("--track", metavar="mlflow[:URI]",
                   help="log the run to MLflow (default store: ./mlflow.db + ./mlruns)")
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check a suite file without running it")
    v.add_argument("suite")
    v.set_defaults(fn=cmd_validate)

    g = sub.add_parser("gate", help="apply thresholds (and a baseline) to a results file")
    g.add_argument("results")
    g.add_argument("--thresholds", metavar="FILE",
                   help="threshold file (YAML list or {thresholds: [...]}); default: the "
                        "thresholds stored in the results")
    g.add_argument("--baseline", metavar="OLD_RESULTS.json",
                   help="fail when a metric got worse than in this earlier run")
    g.add_argument("--tolerance", type=float, default=None,
                   help="allowed absolute drop per metric (default 0)")
    g.add_argument("--regression-metrics", choices=["main", "all"], default="main",
                   help="gate the main metric of each task/check (default) or all metrics")
    g.add_argument("--include-machine-dependent", action="store_true",
                   help="also gate metrics flagged machine_dependent (timings)")
    g.add_argument("--significant", action="store_true",
                   help="a drop fails only when a paired bootstrap finds it significant")
    g.add_argument("--alpha", type=float, default=0.05)
    g.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="paired-bootstrap resamples for --significant")
    g.add_argument("--seed", type=int, default=42)
    g.add_argument("--junit", metavar="FILE", help="write JUnit XML (one testcase per verdict)")
    g.add_argument("--markdown", metavar="FILE",
                   help="write a Markdown summary ('-': to stdout, e.g. >> $GITHUB_STEP_SUMMARY)")
    g.set_defaults(fn=cmd_gate)

    rep = sub.add_parser("report", help="render results as HTML, Markdown or JUnit")
    rep.add_argument("results", nargs="+")
    rep.add_argument("--format", choices=["html", "md", "junit"], default="html")
    rep.add_argument("-o", "--output")
    rep.set_defaults(fn=cmd_report)

    c = sub.add_parser("compare", help="paired comparison of results files")
    c.add_argument("results", nargs="+",
                   help="one run of several encoders (first = reference), or several runs")
    c.add_argument("--alpha", type=float, default=0.05,
                   help="significance level; CIs are at 1 - alpha")
    c.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="paired-bootstrap resamples")
    c.add_argument("--seed", type=int, default=42)
    c.add_argument("--reference", metavar="ENCODER",
                   help="reference encoder within one run (default: the first)")
    c.add_argument("--main-only", action="store_true", help="print main metrics only")
    c.add_argument("-o", "--output", help="write the comparisons as JSON")
    c.set_defaults(fn=cmd_compare)

    d = sub.add_parser("data", help="datasets: list, pull from the Hub, import a folder")
    dsub = d.add_subparsers(dest="data_cmd", required=True, parser_class=_Parser)
    dl = dsub.add_parser("list")
    dl.add_argument("--data-dir")
    dp = dsub.add_parser("pull")
    dp.add_argument("name")
    dp.add_argument("--data-dir")
    di = dsub.add_parser("import")
    di.add_argument("path")
    di.add_argument("--as", dest="as_name", required=True)
    di.add_argument("--data-dir")
    d.set_defaults(fn=cmd_data)

    ex = sub.add_parser("export", help="write a run's MTEB results in MTEB's results layout")
    exsub = ex.add_subparsers(dest="export_format", required=True, parser_class=_Parser)
    exm = exsub.add_parser("mteb", help="DIR/<org>__<model>/<revision>/<TaskName>.json")
    exm.add_argument("results", metavar="RESULTS.json")
    exm.add_argument("-o", "--output", required=True, metavar="DIR")
    exm.add_argument("--model", action="append", metavar="[ID=]ORG/NAME",
                     help="model name to write under (default: the encoder's model)")
    exm.add_argument("--revision", action="append", metavar="[ID=]REV",
                     help="model revision (default: the encoder's, else no_revision_available)")
    exm.add_argument("--encoder", action="append", metavar="ID", help="only these encoders")
    ex.set_defaults(fn=cmd_export)

    im = sub.add_parser("import", help="turn MTEB result files into a results.json")
    imsub = im.add_subparsers(dest="import_format", required=True, parser_class=_Parser)
    imm = imsub.add_parser("mteb", help="a results-repository checkout, folder or files")
    imm.add_argument("paths", nargs="+", metavar="PATH")
    imm.add_argument("--model", required=True, metavar="ORG/NAME")
    imm.add_argument("--revision", help="which revision folder (needed when several)")
    imm.add_argument("--as", dest="as_id", metavar="ID",
                     help="encoder id in the results (default: the model name's last part)")
    imm.add_argument("--suite", help="name tasks by this suite's task ids")
    imm.add_argument("-o", "--output", required=True, metavar="RESULTS.json")
    im.set_defaults(fn=cmd_import)

    lst = sub.add_parser("list", help="list tasks, checks, encoders or a suite's metrics")
    lst.add_argument("what", choices=["tasks", "checks", "encoders", "metrics", "mteb-tasks"])
    lst.add_argument("--suite")
    lst.add_argument("--type", help="mteb-tasks: only this MTEB task type (e.g. Retrieval)")
    lst.set_defaults(fn=cmd_list)

    from evalharness import cache_admin  # light: numpy is imported by the commands

    cache = sub.add_parser("cache", help="the embedding cache: info, verify, prune")
    cache_admin.add_arguments(cache)
    cache.set_defaults(fn=cmd_cache)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from evalharness.errors import EvalHarnessError, UserError

    try:
        return int(args.fn(args) or 0)
    except UserError as exc:
        if args.debug:
            raise
        print(f"evalharness: error: {exc}", file=sys.stderr)
        return 2
    except EvalHarnessError as exc:
        if args.debug:
            raise
        print(f"evalharness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # Ctrl-C / SIGINT: exit 130 (128 + SIGINT), no traceback
        if args.debug:
            raise
        note = ("; a run writes results.json only when it completes, and the vectors "
                "encoded so far are in the embedding cache (a re-run resumes from them)"
                if args.command == "run" else "")
        print(f"evalharness: interrupted{note}", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug or os.environ.get("EVALHARNESS_DEBUG"):
            raise
        print(f"evalharness: internal error: {type(exc).__name__}: {exc} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
