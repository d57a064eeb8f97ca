"""`main`: one training (or evaluation) run of a stream, from parsed options to the files
in --out. The pieces it ties together live beside it: options, runtime, data, loop,
checkpoint, records, plots."""
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.distributed as dist

import utils
from dataloader.check import check_frames
from dataloader.datasets import DataError
from dataloader.splits import SplitError
from engine import plots
from engine.checkpoint import (CheckpointError, check_checkpoint_data, model_identity, read_checkpoint,
                               read_prepare_info, resolve_arch, restore, resume_hint)
from engine.console import one_line, print_row, run_summary
from engine.outputs import save_epoch, score_meta
from engine.data import StreamData, build_data, check_decode, make_loader, resolve_dataset
from engine.loop import LoopConfig, TrainingDiverged, evaluate, train_one_epoch
from engine.options import build_parser, check_args, check_evaluate_out, check_paths, selection_protocol
from engine.records import finished_files, score_file, top5_meaningful, update_best
from engine.runtime import (DistInfo, SignalFlag, StopRequested, default_amp, enable_huge_pages, init_distributed,
                            lost_peer, lost_peer_message,
                            pick_device, set_cpu_threads, sync_buffers)
from engine.streams import StreamSpec, in_channels
from network.init import PretrainedWeightsError
from network.model import build_model, build_optimizer


@dataclass
class TrainingRun:
    """One training run: its fixed context and the state that changes epoch by epoch."""
    args: object
    spec: StreamSpec
    info: DistInfo
    device: torch.device
    data: StreamData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    identity: dict
    loop: LoopConfig
    history: dict = field(default_factory=lambda: {"train": [], "val": [], "test": []})
    best: dict | None = None
    start_epoch: int = 0
    replaces: list = field(default_factory=list)  # --overwrite: the old run's files, removed at the first save
    data_info: dict = field(default_factory=dict)  # the data root's prepare_info.json, saved in checkpoints


def main(spec, argv=None):
    enable_huge_pages()
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser(spec).parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2), already printed on one line
        return e.code if isinstance(e.code, int) else 2
    stop = SignalFlag()
    stop.install()
    session = []  # the TrainingRun once built: a stop message must know whether it replaced a run yet
    try:
        return run(spec, args, stop, session)
    except (DataError, SplitError, PretrainedWeightsError, CheckpointError, TrainingDiverged, ValueError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing path, or a full disk while writing (the previous file is kept)
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    except (StopRequested, KeyboardInterrupt) as e:
        print(resume_hint(spec, args, argv, replacing=replacing(args, session)), file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    except MemoryError:
        print(f"error: out of memory; {MEMORY_HINT}", file=sys.stderr)
        return 2
    except RuntimeError as e:
        if stop.signum is not None and worker_died(e):
            # A SIGTERM to the process group (timeout, a job scheduler) killed the data workers
            # too, and torch raises that wherever the main process is, even inside a checkpoint
            # write (which then leaves the previous file: atomic). It is the stop that was asked
            # for; the last checkpoint.pth on disk resumes it.
            print(resume_hint(spec, args, argv, replacing=replacing(args, session)), file=sys.stderr)
            return 128 + stop.signum
        if out_of_memory(e):
            print(f"error: out of memory ({one_line(e)[:200]}); {MEMORY_HINT}", file=sys.stderr)
            return 2
        if not (dist.is_initialized() and lost_peer(e)):
            raise
        print(lost_peer_message(e), file=sys.stderr)
        if dist.get_rank() == 0:  # only rank 0 writes checkpoints
            print(resume_hint(spec, args, argv, replacing=replacing(args, session)), file=sys.stderr)
        return 1
    finally:
        stop.restore()
        if dist.is_initialized():
            dist.destroy_process_group()


MEMORY_HINT = ("lower --batch-size, --test-batch-size, --crop-size, --num-segments, --test-frames or --stack "
               "(checkpoint.pth, if any, holds the last finished epoch)")


def worker_died(error):
    """Whether a data worker's death raised `error`, or an error raised while handling it."""
    while error is not None:
        if "DataLoader worker" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def out_of_memory(error):
    """Whether a RuntimeError is an allocation failure (CPU or GPU), not a bug."""
    text = str(error)
    return isinstance(error, torch.cuda.OutOfMemoryError) or "can't allocate memory" in text or "out of memory" in text


def replacing(args, session):
    """Whether an --overwrite run has not saved yet (the run in --out is still the old one)."""
    return args.overwrite and not (args.resume or args.evaluate) and (not session or bool(session[0].replaces))


def run(spec, args, stop=None, session=None):
    check_args(args)
    check_paths(args)
    info = init_distributed(args.device, args.dist_timeout)
    device = pick_device(args.device, info)
    check_decode(args.decode, device)
    if args.amp is None:
        args.amp = default_amp(device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    else:
        set_cpu_threads(args.workers, info)
    torch.manual_seed(args.seed + info.rank)  # same init everywhere (DDP broadcasts rank 0's anyway)

    # The checkpoint is read before the data are indexed (minutes on UCF101): a wrong one fails at once.
    ckpt = read_checkpoint(args.resume) if args.resume and not args.check_data else None
    resolve_arch(args, ckpt)
    resolve_dataset(args, ckpt)
    data = build_data(args, spec, info)
    if args.check_data:
        sets = {"train": data.train, "val": data.val, "test": data.test}
        bad = check_frames({k: v for k, v in sets.items() if v is not None}, args.workers)
        return 1 if bad else 0
    data_info = read_prepare_info(args.data_root) or {}
    if ckpt is not None:
        for warning in check_checkpoint_data(ckpt, args.resume, args, data, data_info):
            if info.is_main:
                print(f"==> warning: {warning}", file=sys.stderr, flush=True)
    if args.partial_bn and args.pretrained == "none" and not args.resume and info.is_main:
        print("==> warning: --partial-bn with --pretrained none freezes every BatchNorm but the first at its "
              "untrained values (scale 1, shift 0, statistics 0 and 1); partial BN is meant for ImageNet weights",
              file=sys.stderr, flush=True)
    # Resuming or evaluating loads every weight from the checkpoint: no ImageNet file needed.
    model = build_model(args.arch, len(data.classes), in_channels(spec, args.stack), device, args.consensus,
                        args.dropout, "none" if args.resume else args.pretrained, args.partial_bn)
    optimizer = build_optimizer(model, args.lr, args.momentum, args.weight_decay)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, "min", patience=args.lr_patience,
                                                           factor=args.lr_factor)
    loop = LoopConfig(spec.modality, args.amp, args.workers, args.test_batch_size, args.seed)
    run = TrainingRun(args, spec, info, device, data, model, optimizer, scheduler,
                      model_identity(args, spec, len(data.classes)), loop, data_info=data_info)
    if ckpt is not None:
        restore(ckpt, args.resume, model, None if args.evaluate else optimizer, scheduler, run.identity, device)
        run.history, run.best, run.start_epoch = ckpt["history"], ckpt["best"], ckpt["epoch"] + 1
    if args.start_epoch is not None:
        run.start_epoch = args.start_epoch
    if not args.evaluate and (done := already_complete(run)):
        if info.is_main:
            print(done, flush=True)
        return 0
    if args.overwrite and not args.resume:
        run.replaces = finished_files(args.out)
    if session is not None:
        session.append(run)
    if info.is_main:
        print(f"==> {spec.name} stream ({args.arch}): {len(data.train)} train / {len(data.val) if data.val else 0} val / "
              f"{len(data.test)} test videos, {len(data.classes)} classes, device {device}"
              + (f" x {info.world_size} processes" if info.enabled else ""))
        print(f"==> model selection: {selection_protocol(args, data.validation)}", flush=True)
    if args.evaluate:
        return evaluate_only(run, run.start_epoch - 1)

    train_model = model
    if args.compile:
        train_model = torch.compile(train_model)
    if info.enabled:
        train_model = torch.nn.parallel.DistributedDataParallel(
            train_model, device_ids=[device.index] if device.type == "cuda" else None)
    train_loader = make_loader(data.train, args.batch_size, device, args.workers, args.seed,
                               sampler=data.train_sampler, persistent=True)
    tb = plots.tensorboard_writer(args.out) if args.tensorboard and info.is_main else None
    started = time.perf_counter()
    try:
        train_epochs(run, train_model, train_loader, stop, tb)
    except TrainingDiverged as e:
        kept = (f"{args.out}/checkpoint.pth still holds the last good epoch" if run.history["train"] else
                "nothing was saved")
        raise TrainingDiverged(f"{e}; {kept}") from None
    finally:
        if tb is not None:
            tb.close()
    if info.is_main:
        print(run_summary(spec.name, args.arch, args.out, run.history, run.best, time.perf_counter() - started,
                          set(os.listdir(args.out))), flush=True)
    return 0


def already_complete(run):
    """A one-line note if a resumed run has nothing left to train, else None."""
    args = run.args
    if run.start_epoch >= args.epochs:
        return (f"==> {args.resume}: the run is complete at epoch {run.start_epoch - 1} (--epochs {args.epochs}); "
                f"nothing to train. To train further, resume with a larger --epochs")
    lr = run.optimizer.param_groups[0]["lr"]
    if args.resume and lr < args.min_lr:
        return (f"==> {args.resume}: the run is complete at epoch {run.start_epoch - 1}: its learning rate {lr:g} "
                f"is below --min-lr {args.min_lr:g}; nothing to train. To train further, lower --min-lr")
    return None


def train_epochs(run, train_model, train_loader, stop, tb):
    """The epoch loop: train, evaluate, schedule, save; stop at --epochs or --min-lr."""
    args, info, data = run.args, run.info, run.data
    for epoch in range(run.start_epoch, args.epochs):
        data.train_sampler.set_epoch(epoch)
        row, bad = train_one_epoch(train_model, train_loader, run.optimizer, run.device, epoch, run.loop, info, stop)
        sync_buffers(run.model, info)
        run.history["train"].append(row)
        evals = {}
        for name, dataset in (("val", data.val), ("test", data.test)):
            if dataset is not None:
                evals[name] = evaluate(run.model, dataset, run.device, run.loop, info, f"epoch {epoch} {name}")
                run.history[name].append({"Epoch": epoch, **evals[name].row})
                bad += evals[name].bad_frames
        selected_on = "test" if args.select_on_test else "val"
        improved = False
        if selected_on in evals:
            run.best, improved = update_best(run.best, evals[selected_on].row, selected_on, epoch)
        run.scheduler.step(schedule_loss(evals, row, args))
        if info.is_main:
            top5 = top5_meaningful(len(data.classes))
            print_row("training", epoch, args.epochs, row, top5)
            for name in evals:
                print_row("validation" if name == "val" else "test", epoch, args.epochs, evals[name].row, top5)
            if bad:
                print(f"==> {bad} unreadable frames were replaced by their nearest readable neighbour (--on-bad-frame skip)")
            save_epoch(run, epoch, improved, evals)
            draw(args, tb, epoch, row, evals)
        lr = run.optimizer.param_groups[0]["lr"]
        if lr < args.min_lr:
            if info.is_main:
                print(f"==> the learning rate {lr:g} fell below --min-lr {args.min_lr:g}: training stops")
            break


def schedule_loss(evals, train_row, args):
    """The loss ReduceLROnPlateau follows: validation, test (--select-on-test) or training."""
    if args.select_on_test:
        return evals["test"].row["Loss"]
    if "val" in evals:
        return evals["val"].row["Loss"]
    return train_row["Loss"]


def draw(args, tb, epoch, row, evals):
    """Curves (PNG) and TensorBoard scalars of the records so far."""
    if not args.no_plots:
        try:
            plots.plot_run(args.out, args.picture_dir)
        except Exception as e:  # a picture must never stop a training
            print(f"==> warning: could not draw the curves: {e}", file=sys.stderr)
    if tb is not None:
        plots.tensorboard_log(tb, epoch, {"train": row, **{n: evals[n].row for n in evals}})


def evaluate_only(run, epoch):
    """--evaluate: score the test split with the checkpoint's model; train nothing, touch no
    checkpoint or record, write video_scores.pkl for this protocol."""
    args, data = run.args, run.data
    if run.info.is_main:
        unscored = dict.fromkeys(("Prec@1", "Prec@5", "Mean Class Acc"))
        check_evaluate_out(args, score_meta(args, run.spec, epoch, unscored))
    test = evaluate(run.model, data.test, run.device, run.loop, run.info, "test")
    if run.info.is_main:
        print_row("test", epoch, args.epochs, test.row, top5_meaningful(len(data.classes)))
        meta = score_meta(args, run.spec, epoch, test.row, data.validation) | {"evaluated_from": args.resume}
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, "video_scores.pkl")
        utils.save_pickle(score_file(data.test, test.scores, data.classes, meta), path)
        print(f"==> wrote {path}")
    return 0
