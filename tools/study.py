"""Run the seed's whole study on one data set: each stream x each segment consensus, then
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
import codecs
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import utils
from engine.fusion import fuse_score_files
from engine.plots import plot_run
from engine.records import BEST_SCORES, LAST_SCORES, VAL_SCORES, RecordError, load_run, score_path
from engine.scores import FusionError
from engine.tables import build_report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = {"spatial": os.path.join(ROOT, "spatial_cnn.py"), "motion": os.path.join(ROOT, "motion_cnn.py")}
# network.consensus.CONSENSUS; not imported so that --help needs no torch. The stream
# CLIs' own parsers check the names before anything runs (validate()).
CONSENSUS = ("mean", "max", "var")
OWNED = ("--data-root", "--out", "--consensus", "--resume", "--start-epoch")
OTHER_MODES = ("--evaluate", "--check-data")  # they train nothing: not a study run
DONE, LOG = "study_done.json", "study.log"
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


def read_done(out):
    try:
        with open(os.path.join(out, DONE)) as f:
            done = json.load(f)
    except (OSError, ValueError):
        return None
    return done if isinstance(done, dict) and done.get("returncode") == 0 else None


def finished(out):
    """The study's record of a run that exited 0, if its score file is still there."""
    done = read_done(out)
    return done if done and os.path.isfile(os.path.join(out, LAST_SCORES)) else None


def job_state(out, options, data_root):
    """('finished' | 'resume' | 'start', note) of a run folder."""
    done = finished(out)
    if done:
        if done.get("options") != options or done.get("data_root") != data_root:
            return "finished", (f"finished earlier with other options ({shlex.join(done.get('options', []))}, "
                                f"data {done.get('data_root')}); kept: delete the folder to retrain")
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
    if not os.path.isdir(data_root):
        raise StudyError(f"--data-root {data_root}: no such folder")
    for job in jobs:
        try:
            check_args(parsers[job.stream].parse_args(job.command(data_root)[2:]))
        except SystemExit:  # argparse printed the CLI's usage error
            raise StudyError(f"{job.name}: the options above are not valid for {job.stream}") from None
        except ValueError as e:
            raise StudyError(f"{job.name}: {e}") from None


# ---------------------------------------------------------------- running
def _env(jobs):
    env = dict(os.environ)
    if jobs > 1 and "OMP_NUM_THREADS" not in env:
        # Parallel runs each taking every core would slow all of them down.
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // jobs))
    return env


def _pump(proc, log, echo):
    """Copy the child's output to its log (and the console), bytes as they come, so that
    progress bars stay live and a multi-byte character split across reads stays intact."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    for chunk in iter(lambda: proc.stdout.read1(65536), b""):
        log.write(chunk)
        log.flush()
        if echo:
            sys.stdout.write(decoder.decode(chunk))
            sys.stdout.flush()


def run_job(job, data_root, echo, env, procs):
    """Run one stream CLI to the end; write study_done.json only if it exited 0."""
    os.makedirs(job.out, exist_ok=True)
    if os.path.exists(job.done_path):
        os.unlink(job.done_path)  # a run being (re)done is not finished until it exits 0
    cmd = job.command(data_root)
    start = time.time()
    with open(os.path.join(job.out, LOG), "ab") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} $ {shlex.join(cmd)}\n".encode())
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
        procs.append(proc)
        _pump(proc, log, echo)
        rc = proc.wait()
    seconds = round(time.time() - start, 1)
    if rc == 0:
        utils.save_json({"returncode": 0, "seconds": seconds, "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                         "options": job.options, "data_root": data_root, "command": cmd}, job.done_path)
    return rc, seconds


def _tail(path, lines=15):
    with open(path, "rb") as f:
        text = f.read().decode("utf-8", "replace").replace("\r", "\n")
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _finish_line(job, rc, seconds):
    if rc == 0:
        return f"==> {job.name}: finished in {seconds:.0f} s"
    return (f"==> {job.name}: FAILED (exit status {rc}) after {seconds:.0f} s; last lines of "
            f"{os.path.join(job.out, LOG)}:\n{_tail(os.path.join(job.out, LOG))}")


def _run_serial(todo, data_root, env, procs):
    failed = []
    for job in todo:
        print(f"==> {job.name}: {'resuming' if job.state == 'resume' else 'starting'}\n"
              f"$ {shlex.join(job.command(data_root))}", flush=True)
        rc, seconds = run_job(job, data_root, True, env, procs)
        print(_finish_line(job, rc, seconds), flush=True)
        failed += [job.name] if rc else []
    return failed


def _run_parallel(pool, todo, data_root, env, procs):
    for job in todo:
        print(f"==> {job.name}: queued (output in {os.path.join(job.out, LOG)})\n"
              f"$ {shlex.join(job.command(data_root))}", flush=True)
    futures = {pool.submit(run_job, job, data_root, False, env, procs): job for job in todo}
    failed = []
    for future, job in futures.items():
        rc, seconds = future.result()
        print(_finish_line(job, rc, seconds), flush=True)
        failed += [job.name] if rc else []
    return failed


def _stop(procs, grace=10):
    """Stop the runs this study started: they got the Ctrl-C too and save nothing more after
    their last finished epoch, so give them a moment, then terminate."""
    for proc in procs:
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.terminate()


def run_jobs(todo, data_root, jobs):
    """Run the jobs, `jobs` at once; returns the names of the failed ones."""
    env, procs = _env(jobs), []
    pool = ThreadPoolExecutor(jobs) if jobs > 1 else None
    try:
        if pool is None:
            return _run_serial(todo, data_root, env, procs)
        return _run_parallel(pool, todo, data_root, env, procs)
    except KeyboardInterrupt:
        _stop(procs)
        raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


# ---------------------------------------------------------------- fusion, report
def fusion_inputs(jobs):
    """[(consensus, spatial pkl, motion pkl, spatial val pkl, motion val pkl)] for each consensus
    with both streams finished, and notes saying which score file stands for each run. A val
    pkl (the selected model's validation scores) is None where the run has none."""
    done = {(j.stream, j.consensus): j for j in jobs if finished(j.out)}
    pairs, notes = [], []
    for consensus in dict.fromkeys(j.consensus for j in jobs):
        runs = [done.get((s, consensus)) for s in ("spatial", "motion")]
        if None in runs:
            continue
        paths, vals = [], []
        for job in runs:
            path, best = score_path(job.out)
            val = os.path.join(job.out, VAL_SCORES)
            vals.append(val if best and os.path.isfile(val) else None)
            selection = load_run(job.out).selection
            notes.append(f"- {job.name}: {os.path.basename(path)} = "
                         + (f"the model selected by {selection}" if best else
                            "the LAST epoch: the run has no video_scores_best.pkl (no validation set: "
                            "--val-groups 0 without --select-on-test)"))
            paths.append(path)
        pairs.append((consensus, *paths, *vals))
    if pairs and fit_on(pairs) is None:
        notes.append("- no weight fitted on validation: a run has no " + VAL_SCORES + " (no validation set)")
    elif pairs:
        notes.append(f"- the row 'weighted (val) A:B': the spatial:motion weight fitted on each pair's {VAL_SCORES}")
    return pairs, notes


def fit_on(pairs):
    """fusion.py's --fit-weights-on pairs, if every pair has its validation scores."""
    return [(p[3], p[4]) for p in pairs] if all(p[3] and p[4] for p in pairs) else None


def fusion_argv(pairs, study_dir):
    fit = [a for pair in fit_on(pairs) or [] for a in ("--fit-weights-on", *pair)]
    return (["--spatial", *[p[1] for p in pairs], "--motion", *[p[2] for p in pairs],
             "--names", *[p[0] for p in pairs], "--normalize", "both", *fit,
             "--json", os.path.join(study_dir, "fusion.json")])


def run_fusion(pairs, notes, study_dir):
    """fusion.py's tables into STUDY_DIR/fusion.md (and fusion.json); returns its exit status."""
    argv = fusion_argv(pairs, study_dir)  # the same tables from the command line, for the record
    try:
        result = fuse_score_files([p[1] for p in pairs], [p[2] for p in pairs], names=[p[0] for p in pairs],
                                  normalize="both", fit_on=fit_on(pairs))
        for w in result.warnings:  # on stderr, as fusion.py prints them
            print(f"fusion.py: warning: {w}", file=sys.stderr)
        utils.save_json(result.report(), os.path.join(study_dir, "fusion.json"))
        body, rc = result.markdown(), 0
    except (FusionError, OSError) as e:
        for w in getattr(e, "warnings", ()):  # found before a FusionError
            print(f"fusion.py: warning: {w}", file=sys.stderr)
        body, rc = f"fusion.py: error: {' '.join(str(e).split())}", 1
    text = "\n".join(["# fusion", "", f"$ python fusion.py {shlex.join(argv)}", "", "score files:", *notes, "",
                      body]).rstrip() + "\n"
    utils.atomic_write(os.path.join(study_dir, "fusion.md"), lambda f: f.write(text), mode="w")
    print(text, flush=True)
    return rc


def run_report(jobs, study_dir):
    """Report (and PNGs) of every run with records, into STUDY_DIR/report.md."""
    runs = []
    for job in jobs:
        try:
            runs.append(load_run(job.out))
        except RecordError:
            continue  # never started, or failed before its first epoch
        try:
            plot_run(job.out)  # redraws only what the engine has not drawn already
        except Exception as e:  # noqa: BLE001 - a picture must not cost the report
            print(f"{PROG}: warning: could not draw {job.name}'s pictures: {e}", file=sys.stderr)
    if not runs:
        return
    text = build_report(runs)
    utils.atomic_write(os.path.join(study_dir, "report.md"), lambda f: f.write(text), mode="w")
    print(text, flush=True)


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
    parsers = stream_parsers()
    jobs = plan(args, route(passthrough, parsers))
    validate(jobs, parsers, args.data_root)
    if args.dry_run:
        return dry_run(jobs, args)
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
