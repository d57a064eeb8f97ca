"""torchrun with two CPU processes (gloo): the real DistributedDataParallel path, on one
node and as two nodes on one machine (loopback only), and what happens when a rank dies."""
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

import utils
from engine.train import main
from engine.streams import SPATIAL
from dataloader.synthetic import generate
from tiny import FAST_PROCESSES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAST = FAST_PROCESSES

OUTPUTS = ["args.json", "checkpoint.pth", "model_best.pth", "test.csv", "train.csv", "val.csv",
           "video_scores.pkl", "video_scores_best.pkl", "video_scores_val.pkl"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def odd_data(tmp_path_factory):
    """Tiny data with an odd number of test videos, so the ranks' evaluation shards differ."""
    data = tmp_path_factory.mktemp("data")
    generate(data, appearances=2, motions=2, videos_per_class=5, width=48, height=40,
             min_frames=8, max_frames=12, seed=2, verbose=False)
    testlist = data / "ucfTrainTestlist" / "testlist01.txt"
    testlist.write_text("".join(testlist.read_text().splitlines(keepends=True)[:-1]))
    return data


def assert_one_run_scored_once(out, data, tmp_path):
    """`out` holds one epoch's outputs, no temporary file, every test video scored once, and
    the scores equal a single-process --evaluate of the same checkpoint."""
    assert sorted(os.listdir(out)) == OUTPUTS
    assert len(utils.read_csv(out / "train.csv")) == 1
    ddp = utils.load_pickle_safe(out / "video_scores.pkl")
    test_list = (data / "ucfTrainTestlist" / "testlist01.txt").read_text().split()
    expected = {os.path.basename(line)[2:-4] for line in test_list}
    assert set(ddp["scores"]) == expected and len(test_list) % 2 == 1
    single = tmp_path / "single"
    assert main(SPATIAL, ["--data-root", str(data), "--out", str(single), *FAST, "--workers", "0",
                          "--evaluate", "--resume", str(out / "checkpoint.pth")]) == 0
    one = utils.load_pickle_safe(single / "video_scores.pkl")
    for v in expected:
        np.testing.assert_allclose(ddp["scores"][v], one["scores"][v], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_torchrun_two_processes_scores_each_video_once(tmp_path, odd_data):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           os.path.join(ROOT, "spatial_cnn.py"), "--data-root", str(odd_data), "--out", str(out),
           "--epochs", "1", *FAST]
    proc = subprocess.run(cmd, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # only rank 0 prints: one opening line and one closing summary
    assert proc.stdout.count("==> spatial stream (resnet18): ") == 1
    assert proc.stdout.count("==> spatial stream (resnet18) finished") == 1
    assert "x 2 processes" in proc.stdout
    assert_one_run_scored_once(out, odd_data, tmp_path)


# ------------------------------------------------------------ two nodes on one machine
# Two torchrun launchers, one process each, meeting at a loopback rendezvous: what two
# machines do, with gloo's traffic kept on the loopback interface.
NODE_ENV = {**ENV, "GLOO_SOCKET_IFNAME": "lo"}
DIST_TIMEOUT_MIN = 0.3  # --dist-timeout: 18 s
# After a rank dies, the whole job must be gone within the timeout plus this margin: the
# launchers' own teardown (interpreter exit, the agent's 0.1 s monitor interval, closing
# the rendezvous) on two busy cores. Observed: under 2 s from the SIGKILL to both exits.
TEARDOWN_MARGIN_S = 12


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_two_nodes(tmp_path, script_args):
    """Two launchers, each in its own empty working folder (node0, node1), logs in logs/.
    Node 0 hosts the rendezvous store (is_host), so the two never race for the port."""
    port, logs, procs = free_port(), tmp_path / "logs", []
    logs.mkdir()
    for node in range(2):
        cwd = tmp_path / f"node{node}"
        cwd.mkdir()
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
               "--rdzv_backend", "c10d", "--rdzv_endpoint", f"127.0.0.1:{port}", "--node_rank", str(node),
               "--rdzv_conf", f"is_host={int(node == 0)}", "--local_addr", "127.0.0.1",
               os.path.join(ROOT, "spatial_cnn.py"), *script_args]
        with open(logs / f"node{node}.out", "w") as out, open(logs / f"node{node}.err", "w") as err:
            procs.append(subprocess.Popen(cmd, cwd=cwd, env=NODE_ENV, stdout=out, stderr=err))
    return procs


def logs_of(tmp_path, node):
    return ((tmp_path / "logs" / f"node{node}.out").read_text(), (tmp_path / "logs" / f"node{node}.err").read_text())


def children(pid):
    """The processes whose parent is `pid` (from /proc; torchrun starts its workers directly)."""
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stat = f.read()
            except OSError:  # gone meanwhile
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry))
    return kids


def rank_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
    return int(env[b"RANK"])


def kill_tree(pid):
    """SIGKILL `pid` and everything below it (workers run in sessions of their own)."""
    for kid in children(pid):
        kill_tree(kid)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def stop_all(procs):
    for p in procs:
        if p.poll() is None:
            kill_tree(p.pid)
        p.wait(timeout=30)


def wait_all(procs, timeout):
    deadline = time.monotonic() + timeout
    for p in procs:
        p.wait(timeout=max(0.1, deadline - time.monotonic()))


def wait_for(path, procs, tmp_path, timeout=300):
    """Until `path` exists, while every launcher still runs."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert all(p.poll() is None for p in procs), [logs_of(tmp_path, n) for n in range(2)]
        assert time.monotonic() < deadline, f"no {path.name} after {timeout} s"
        time.sleep(0.1)


def worker_of_rank_1(procs):
    """(node, pid) of the worker process that holds rank 1."""
    workers = {rank_of(kid): (node, kid) for node, p in enumerate(procs) for kid in children(p.pid)}
    assert sorted(workers) == [0, 1]
    return workers[1]


@pytest.mark.slow
def test_two_nodes_on_one_machine_train_evaluate_and_write_once(tmp_path, odd_data):
    # --out is relative: a rank that wrote anything would leave it in its own launcher's folder.
    args = ["--data-root", str(odd_data), "--out", "ddp", "--epochs", "1", *FAST, "--workers", "0"]
    procs = start_two_nodes(tmp_path, args)
    try:
        wait_all(procs, timeout=300)
    finally:
        stop_all(procs)
    logs = [logs_of(tmp_path, n) for n in range(2)]
    for p, (out, err) in zip(procs, logs):
        assert p.returncode == 0, out[-3000:] + err[-3000:]

    # The c10d rendezvous hands out ranks in arrival order (--node_rank is ignored), so
    # either launcher may hold rank 0; exactly one printed and wrote, once.
    writers = [n for n in range(2) if "==> spatial stream" in logs[n][0]]
    assert len(writers) == 1
    w = writers[0]
    assert logs[w][0].count("==> spatial stream (resnet18): ") == 1 and "x 2 processes" in logs[w][0]
    assert logs[w][0].count("==> spatial stream (resnet18) finished") == 1
    assert os.listdir(tmp_path / f"node{w}") == ["ddp"]
    assert os.listdir(tmp_path / f"node{1 - w}") == []  # rank 1 wrote nothing at all
    assert sorted(os.listdir(tmp_path)) == ["logs", "node0", "node1"]
    assert_one_run_scored_once(tmp_path / f"node{w}" / "ddp", odd_data, tmp_path)


@pytest.mark.slow
def test_a_killed_rank_ends_the_two_node_job_and_the_checkpoint_resumes(tmp_path, odd_data):
    out = tmp_path / "ddp"
    # Many epochs and no --min-lr stop: the job is still training when the rank dies.
    train = ["--data-root", str(odd_data), "--out", str(out), *FAST, "--workers", "0", "--min-lr", "0"]
    procs = start_two_nodes(tmp_path, [*train, "--epochs", "50", "--dist-timeout", str(DIST_TIMEOUT_MIN)])
    try:
        wait_for(out / "checkpoint.pth", procs, tmp_path)  # written atomically: complete once it exists
        victim_node, victim_pid = worker_of_rank_1(procs)
        os.kill(victim_pid, signal.SIGKILL)
        killed = time.monotonic()
        wait_all(procs, timeout=120)  # generous, so that a slow end is measured, not killed
        elapsed = time.monotonic() - killed
    finally:
        stop_all(procs)

    assert elapsed < DIST_TIMEOUT_MIN * 60 + TEARDOWN_MARGIN_S, f"the job took {elapsed:.1f} s to end"
    assert all(p.returncode != 0 for p in procs)
    survivor_err = logs_of(tmp_path, 1 - victim_node)[1]
    victim_err = logs_of(tmp_path, victim_node)[1]
    # The dead rank's launcher names it; the surviving rank says in one line whom it lost
    # (no traceback) and how to resume.
    assert re.search(r"rank\s*:\s*1 \(local_rank: 0\)\s+exitcode\s*:\s*-9", victim_err), victim_err[-3000:]
    assert "SIGKILL" in victim_err
    assert "error: rank 0: rank 1 stopped responding or died" in survivor_err, survivor_err[-3000:]
    assert "RuntimeError" not in survivor_err and "Resume with" in survivor_err

    # The last checkpoint on disk loads, and a single process continues from it.
    ckpt = utils.load_checkpoint(out / "checkpoint.pth")
    epoch = ckpt["epoch"]
    assert len(ckpt["history"]["train"]) == epoch + 1
    assert main(SPATIAL, [*train, "--epochs", str(epoch + 2), "--resume", str(out / "checkpoint.pth")]) == 0
    assert utils.load_checkpoint(out / "checkpoint.pth")["epoch"] == epoch + 1
    assert len(utils.read_csv(out / "train.csv")) == epoch + 2


@pytest.mark.slow
def test_a_rank_that_stops_responding_fails_the_job_after_dist_timeout(tmp_path, odd_data):
    # A frozen rank (SIGSTOP: stuck I/O, a lost machine) keeps its sockets open, so only
    # --dist-timeout ends the collective the others wait in; 0.2 minutes keeps the test short.
    timeout_s = 12
    out = tmp_path / "ddp"
    procs = start_two_nodes(tmp_path, ["--data-root", str(odd_data), "--out", str(out), *FAST, "--workers", "0",
                                       "--min-lr", "0", "--epochs", "50", "--dist-timeout", str(timeout_s / 60)])
    try:
        wait_for(out / "args.json", procs, tmp_path)  # rank 0 writes it with the first epoch: both ranks train
        victim_node, victim_pid = worker_of_rank_1(procs)
        os.kill(victim_pid, signal.SIGSTOP)
        stopped = time.monotonic()
        survivor = procs[1 - victim_node]
        survivor.wait(timeout=120)
        elapsed = time.monotonic() - stopped
    finally:
        stop_all(procs)  # SIGKILL also ends the stopped worker

    # Ended by the timeout (a closed connection would fail at once), and not much later.
    assert timeout_s / 2 < elapsed < timeout_s + TEARDOWN_MARGIN_S, f"the surviving node took {elapsed:.1f} s"
    assert survivor.returncode != 0
    err = logs_of(tmp_path, 1 - victim_node)[1]
    # gloo's words: "Timed out waiting ...", or "Application timeout caused pair closure" where
    # the timeout hit while another operation (DDP's all-reduce) was in flight
    assert "error: rank 0: rank 1 stopped responding or died" in err, err[-3000:]
    assert "Timed out" in err or "Application timeout" in err, err[-3000:]


def test_lost_peer_knows_gloos_ways_of_saying_a_peer_is_gone():
    """The one-line message instead of a traceback (engine/train.py) depends on recognising
    gloo's errors: the timed-out operation's; the bare one of another operation in flight that
    the timeout closed under it (it once failed the stopped-rank test above); a dead peer's."""
    from engine.runtime import lost_peer
    seen = ["[../third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:81] Timed out waiting 12000ms for recv "
            "operation to complete",
            "Application timeout caused pair closure",
            "[../third_party/gloo/gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:29500"]
    assert all(lost_peer(RuntimeError(text)) for text in seen)
    # errors of the run itself are not blamed on another rank
    assert not lost_peer(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not lost_peer(RuntimeError("mat1 and mat2 shapes cannot be multiplied (8x512 and 256x101)"))
