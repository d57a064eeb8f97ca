"""What a run writes: after each epoch the checkpoint, the records, the score files and (with
the first epoch) args.json, each atomically; and the score files' meta, which says which
model, protocol and data produced the scores."""
import os

import utils
from engine.checkpoint import checkpoint_payload
from engine.options import selection_protocol
from engine.records import BEST_SCORES, LAST_SCORES, VAL_SCORES, score_file, write_records


def save_epoch(run, epoch, improved, evals):
    """Records, checkpoint and score files of one finished epoch; each written atomically."""
    out, data = run.args.out, run.data
    # The checkpoint first: if writing it fails (full disk), the records still match the
    # previous checkpoint, which stays intact.
    payload = checkpoint_payload(run, epoch)
    utils.save_torch(payload, os.path.join(out, "checkpoint.pth"))
    write_records(out, run.history)
    test = evals["test"]
    meta = score_meta(run.args, run.spec, epoch, test.row, data.validation)
    utils.save_pickle(score_file(data.test, test.scores, data.classes, meta), os.path.join(out, LAST_SCORES))
    if improved:
        utils.save_torch(payload, os.path.join(out, "model_best.pth"))
        utils.save_pickle(score_file(data.test, test.scores, data.classes, meta | {"best": run.best}),
                          os.path.join(out, BEST_SCORES))
        if "val" in evals:  # the same model's validation scores: fusion.py fits its weights on them
            val = evals["val"]
            val_meta = score_meta(run.args, run.spec, epoch, val.row, data.validation, "val") | {"best": run.best}
            utils.save_pickle(score_file(data.val, val.scores, data.classes, val_meta), os.path.join(out, VAL_SCORES))
    if epoch == run.start_epoch:
        # args.json goes with the first saved epoch: a run that fails earlier leaves no folder behind.
        selection = selection_protocol(run.args, data.validation)
        utils.save_json(vars(run.args) | {"stream": run.spec.name, "selection": selection,
                                          "num_classes": len(data.classes)},
                        os.path.join(out, "args.json"))
        # --overwrite: what the replaced run wrote and this one did not (val.csv, model_best...) goes now.
        written = {"checkpoint.pth", "train.csv", "test.csv", LAST_SCORES}
        written |= {"val.csv"} if run.history["val"] else set()
        written |= {"model_best.pth", BEST_SCORES} if improved else set()
        written |= {VAL_SCORES} if improved and "val" in evals else set()
        for name in set(run.replaces) - written:
            os.unlink(os.path.join(out, name))
        run.replaces = []


def score_meta(args, spec, epoch, row, validation=None, subset="test"):
    """The score file's meta; `subset`: which videos it scores (test, or val = held out of training)."""
    return {"stream": spec.name, "consensus": args.consensus, "epoch": epoch, "split": args.split, "subset": subset,
            "dataset": args.dataset, "top1": row["Prec@1"], "top5": row["Prec@5"],
            "mean_class_acc": row["Mean Class Acc"], "selection": selection_protocol(args, validation),
            "test_frames": args.test_frames, "test_crops": args.test_crops}
