"""tools.study's runs as child processes: one stream CLI each, serially (output echoed) or
several at once (output in each run's study.log), a run marked finished (study_done.json)
only once its CLI exited 0, and every child stopped on Ctrl-C."""
import codecs
import json
import os
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import utils
from engine.records import LAST_SCORES

DONE, LOG = "study_done.json", "study.log"


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
