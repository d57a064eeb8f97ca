"""Run the whole study of the original two-stream scripts on one data set: each stream x each segment consensus, then
the fusion tables and the report.

    python -m tools.study --data-root data/ucf101 --out study/ucf101
    python -m tools.study --data-root data/synth --out study/synth --consensus mean var \\
        -- --epochs 3 --device cpu --crop-size 48 --pretrained none --stack 5
    python -m tools.study --data-root data/ucf101 --out study/ucf101 --dry-run   # the plan only

Writes
    STUDY_DIR/<stream>_<consensus>/   each run's --out (records, checkpoints, score files,
                                      PNG curves) and study.log (the run's console output)
    STUDY_DIR/fusion.md, fusion.json  fusion.py's tables, spatial x motion per consensus, with the
                                      spatial:motion weight fitted on the runs' validation scores
    STUDY_DIR/report.md               tools.report's per-epoch tables and summary (also printed)

Options after `--` go to the stream CLIs (spatial_cnn.py, motion_cnn.py); an option only
one of them has (e.g. --stack) goes to that one only. --data-root, --out and --consensus
are set by the study.

Restartable: a run counts as finished only when the study wrote STUDY_DIR/<run>/study_done.json,
which it does after the run's CLI exited with status 0. Finished runs are skipped; a run
that was cut short is resumed from its checkpoint.pth (restarted if it has none). After an
interruption, run the same command again.
"""
import argparse
import os
import shlex
import sys
from dataclasses import dataclass

import utils
from engine.records import BEST_SCORES, VAL_SCORES
from tools.study_jobs import DONE, finished, run_jobs
from tools.study_report import fusion_argv, fusion_inputs, run_fusion, run_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"spatial": os.path.join(ROOT, "spatial_cnn.py"), "motion": os.path.join(ROOT, "motion_cnn.py")}
# network.consensus.CONSENSUS; not imported so that --help needs no torch. The stream
# CLIs' own parsers check the names before anything runs (validate()).
CONSENSUS = ("mean", "max", "var")
OWNED = ("--data-root", "--out", "--consensus", "--resume", "--start-epoch")
OTHER_MODES = ("--evaluate", "--check-data")  # they train nothing: not a study run
PROG = "tools.study"


class StudyError(ValueError):
    """Bad study options; exits with status 2."""


# ---------------------------------------------------------------- options
def split_argv(argv):
    """(study options, pass-through options after the first '--')."""
    argv = list(argv)
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def _option_name(token):
    return token.split("=", 1)[0] if token.startswith("--") else None


def stream_parsers():
    """{stream: the stream CLI's own argparse parser} (imports the engine, hence torch)."""
    from engine.options import build_parser as stream_parser
    from engine.streams import STREAMS
    parsers = {name: stream_parser(STREAMS[name]) for name in ("spatial", "motion")}
    for stream, p in parsers.items():
        p.prog = os.path.basename(SCRIPTS[stream])  # errors name the CLI, not this tool
    return parsers


def route(tokens, parsers):
    """{stream: pass-through tokens}: an option that only some streams know (--stack),
    and the values after it, go to those streams only; everything else goes to all."""
    known = {s: set(p._option_string_actions) for s, p in parsers.items()}
    out, targets = {s: [] for s in parsers}, list(parsers)
    for tok in tokens:
        name = _option_name(tok)
        if name in OWNED:
            raise StudyError(f"{name} is set by the study for each run; give it as a study option, "
                             "not after '--'")
        if name in OTHER_MODES:
            raise StudyError(f"{name} trains nothing; run it with spatial_cnn.py / motion_cnn.py directly")
        if name is not None:
            targets = [s for s in parsers if name in known[s]] or list(parsers)
        for s in targets:
            out[s].append(tok)
    return out


def build_parser():
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Exit status: 0 all done, 1 a run or the fusion failed, 2 bad options, "
                                       "130 interrupted.")
    p.add_argument("--data-root", required=True, help="the data set folder, passed to every run")
    p.add_argument("--out", required=True, metavar="STUDY_DIR", help="folder of the study (one sub-folder per run)")
    p.add_argument("--consensus", nargs="+", default=list(CONSENSUS), metavar="NAME",
                   help=f"segment consensus variants to train ({', '.join(CONSENSUS)})")
    p.add_argument("--streams", nargs="+", default=list(SCRIPTS), choices=list(SCRIPTS),
                   help="streams to train; fusion needs both")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once; above 1 each run gets cores/jobs threads and its output goes to "
                        "its study.log only")
    p.add_argument("--dry-run", action="store_true", help="print what would run, skip or resume; run nothing")
    return p


# ---------------------------------------------------------------- the plan
@dataclass
class StudyRun:
    stream: str
    consensus: str
    out: str
    options: list   # pass-through options of this run
    state: str      # 'finished' | 'resume' | 'start'
    note: str = ""

    @property
    def name(self):
        return f"{self.stream}_{self.consensus}"

    @property
    def done_path(self):
        return os.path.join(self.out, DONE)

    def command(self, data_root):
        cmd = [sys.executable, SCRIPTS[self.stream], "--data-root", data_root, "--out", self.out,
               "--consensus", self.consensus, *self.options]
        if self.state == "resume":
            cmd += ["--resume", os.path.join(self.out, "checkpoint.pth")]
        return cmd


OTHER_RUN = "finished earlier with other options"


def job_state(out, options, data_root):
    """('finished' | 'resume' | 'start', note) of a run folder."""
    done = finished(out)
    if done:
        if done.get("options") != options or done.get("data_root") != data_root:
            return "finished", (f"{OTHER_RUN} ({shlex.join(done.get('options', []))}, "
                                f"data {done.get('data_root')}); the study does not reuse it: delete the folder to retrain")
        return "finished", f"finished {done.get('finished_at', '')}"
    if os.path.isfile(os.path.join(out, "checkpoint.pth")):
        return "resume", "cut short earlier: resumes from its checkpoint.pth"
    return "start", ""


def plan(args, routed):
    jobs = []
    for stream in args.streams:
        for consensus in args.consensus:
            out = os.path.join(args.out, f"{stream}_{consensus}")
            state, note = job_state(out, routed[stream], args.data_root)
            jobs.append(StudyRun(stream, consensus, out, routed[stream], state, note))
    return jobs


def validate(jobs, parsers, data_root):
    """Parse each run's options with its CLI's own parser before anything runs, so that a
    typo fails now, not after days of training the runs before it."""
    from engine.options import check_args
    try:
        utils.check_input_folder(data_root, "--data-root", "the data folder")
    except ValueError as e:
        raise StudyError(str(e)) from None
    for job in jobs:
        try:
            check_args(parsed := parsers[job.stream].parse_args(job.command(data_root)[2:]))
        except SystemExit:  # argparse printed the CLI's usage error
            study_only = [o for o in job.options if o.split("=")[0] in STUDY_ONLY]
            hint = f" ({', '.join(study_only)}: a study option, put it before --)" if study_only else ""
            raise StudyError(f"{job.name}: the options above are not valid for {job.stream}{hint}") from None
        except ValueError as e:
            raise StudyError(f"{job.name}: {e}") from None
    if jobs:  # the split lists every run reads: a wrong --data-root fails here, not after the first launch
        read_split_lists(parsed)


STUDY_ONLY = ("--dry-run", "--jobs", "--streams")


def read_split_lists(args):
    """The split lists a run with these options would read, or StudyError naming them."""
    from dataloader.catalog import get_dataset
    from dataloader.splits import SplitError
    from engine.data import resolve_dataset
    resolve_dataset(args)
    dataset = get_dataset(args.dataset)
    try:
        dataset.read_split(args.splits_dir or dataset.splits_dir(args.data_root), args.split)
    except SplitError as e:
        raise StudyError(f"--data-root {args.data_root}: {e}") from None


def refuse_other_finished_runs(jobs):
    """A run finished with other options or data would be fused and reported as this study's."""
    other = [f"{job.out} ({job.note})" for job in jobs if job.state == "finished" and job.note.startswith(OTHER_RUN)]
    if other:
        raise StudyError(f"{'; '.join(other)}. Give a new --out, or delete those folders to retrain them")


def check_out(args):
    """Fail before the first run (and in a dry run too) where STUDY_DIR or a run's folder in it
    cannot be made or written: below a file, a file in its place, no permission."""
    try:
        utils.check_writable(args.out, "--out", folder=True)
        for stream in args.streams:
            for consensus in args.consensus:
                utils.check_writable(os.path.join(args.out, f"{stream}_{consensus}"), "--out", folder=True)
    except ValueError as e:
        raise StudyError(str(e)) from None


# ---------------------------------------------------------------- main
def print_plan(jobs, data_root, commands):
    for job in jobs:
        what = {"finished": "skip", "resume": "resume", "start": "run"}[job.state]
        print(f"==> {job.name}: {what}" + (f" ({job.note})" if job.note else ""))
        if commands and job.state != "finished":
            print(f"$ {shlex.join(job.command(data_root))}")
    print(flush=True)


def dry_run(jobs, args):
    print_plan(jobs, args.data_root, commands=True)
    if {"spatial", "motion"} <= set(args.streams):
        pairs = [(c, *[os.path.join(args.out, f"{s}_{c}", f) for f in (BEST_SCORES, VAL_SCORES)
                       for s in ("spatial", "motion")]) for c in args.consensus]
        print(f"then: python fusion.py {shlex.join(fusion_argv(pairs, args.out))}\n"
              f"      (video_scores.pkl, the last epoch, and no --fit-weights-on for a run without "
              f"video_scores_best.pkl and {VAL_SCORES})")
    runs = [j.out for j in jobs]
    print(f"then: python -m tools.report {shlex.join(runs)} --plots > {os.path.join(args.out, 'report.md')}")
    return 0


def study(args, passthrough):
    if args.jobs < 1:
        raise StudyError("--jobs must be at least 1")
    if not args.out:
        raise StudyError("--out is empty: give the study's folder")
    for option, values in (("--consensus", args.consensus), ("--streams", args.streams)):
        if len(set(values)) < len(values):
            raise StudyError(f"{option} {' '.join(values)}: a name given twice would train the same run twice")
    check_out(args)
    parsers = stream_parsers()
    jobs = plan(args, route(passthrough, parsers))
    validate(jobs, parsers, args.data_root)
    if args.dry_run:
        return dry_run(jobs, args)
    refuse_other_finished_runs(jobs)
    print_plan(jobs, args.data_root, commands=False)
    failed = run_jobs([j for j in jobs if j.state != "finished"], args.data_root, args.jobs)
    status = 1 if failed else 0
    pairs, notes = fusion_inputs(jobs)
    if pairs:
        status = max(status, 1 if run_fusion(pairs, notes, args.out) else 0)
    else:
        print("==> no fusion: it needs a finished spatial and motion run of the same consensus", flush=True)
    run_report(jobs, args.out)
    print(f"==> study records: {args.out} (report.md, fusion.md, fusion.json, one folder per run)", flush=True)
    if failed:
        print(f"==> {len(failed)} run(s) failed: {', '.join(failed)}; fix the cause and run the same command "
              "again (finished runs are skipped)", file=sys.stderr)
    return status


def main(argv=None):
    own, passthrough = split_argv(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(own)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed by argparse
        return e.code if isinstance(e.code, int) else 2
    try:
        return study(args, passthrough)
    except StudyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted; run the same command again to continue (finished runs are "
              "skipped, the others resume from their checkpoints)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
