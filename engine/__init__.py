"""The training engine shared by both streams, one concern a module:

    streams.py     StreamSpec: what differs between the spatial and the motion stream
    options.py     the command-line options both CLIs share
    runtime.py     device, torchrun process group, CPU threads, stop signals
    data.py        split lists -> datasets and loaders
    loop.py        train_one_epoch, evaluate (video level)
    checkpoint.py  checkpoints (what they hold and must match), the backbone they record, the resume command
    records.py     record files (CSV, score files): writing, reading, the best-epoch rule
    outputs.py     what a run writes each epoch (checkpoint, records, score files, args.json)
    tables.py      Markdown tables of runs; plots.py: curves, confusion matrix, TensorBoard
    console.py     what a run prints: per-epoch lines, one-line errors
    train.py       main: a whole run, tying the above together (the model itself: network/)
    scores.py      reading and checking score files (fusion's input; legacy pickles too)
    fusion.py      fusion strategies, weights fitted on validation, fusion tables (fusion.py at the root: the command)
    predict.py     a new video's scores by the trained streams (tools.predict)

spatial_cnn.py and motion_cnn.py call `engine.train.main` with their StreamSpec. Nothing
here imports tools/ or the stream scripts. Importing the package does no work.
"""
