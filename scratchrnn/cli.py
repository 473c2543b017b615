"""The command line: ``scratchrnn train | sample | gradcheck`` (also ``python -m scratchrnn``).

``scratchrnn train`` with no arguments trains a character-level LSTM language
model on the embedded corpus (CPython's help-topic prose) for about two
minutes, printing samples as it goes, and keeps its files in ``--out``
(checkpoint.npz, best.npz, metrics.csv, history.json, loss.png, sample.txt:
see :mod:`scratchrnn.training.run_files`). ``scratchrnn sample CHECKPOINT``
generates text from a checkpoint.

Bad arguments end with a one-line error and exit status 2; errors while
running (a missing file, a diverged run) with one line and status 1; Ctrl-C,
at any moment, with one line and status 130 (during training, after writing
the checkpoint and the curve of the last completed step).

Under ``mpiexec -n N`` (or ``srun``) ``train`` runs data-parallel (see
:mod:`scratchrnn.training.distributed`): rank 0 alone prints and writes, and
an error on one rank ends every rank (MPI abort) with that rank's line.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ._command import OneLineParser as _Parser
from ._command import backend_for as _backend
from ._command import device_arg as _device_arg
from ._command import float_in as _float_in
from ._command import one_line_errors
from ._interrupt import EXIT_INTERRUPTED, run_command
from .cells import cell_arg, display_name
from .models import CELLS as MODEL_CELLS
from .training.files import atomic_write_text
from .training.run_files import BEST, CHECKPOINT, HISTORY, METRICS, PLOT

DEFAULT_OUT = "scratchrnn-run"
SAMPLE = "sample.txt"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


_positive = _float_in(0.0, float("inf"), low_open=True)


def _thread_policy(text: str) -> str | int:
    from .backend.blas_threads import parse_policy

    try:
        return parse_policy(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, off or a positive integer, "
                                         f"got {text!r}") from None



class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default (unless the text already says it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default is argparse.SUPPRESS or not action.option_strings \
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            return text
        if isinstance(action, argparse._StoreTrueAction):
            return f"{text} (default: off)"
        return f"{text} (default: %(default)s)"


# Options a resumed run takes from its checkpoint: dest -> (model config key or None
# for the run record, the key there). Given explicitly with another value they conflict.
RESUME_FIXED = {
    "cell": ("model", "cell"), "hidden": ("model", "hidden_size"),
    "layers": ("model", "num_layers"), "embedding": ("model", "embedding_dim"),
    "dropout": ("model", "dropout"), "dtype": ("model", "dtype"),
    "optimizer": ("run", "optimizer"), "lr": ("run", "lr"), "seq_len": ("run", "seq_len"),
    "batch_size": ("run", "batch_size"), "val_fraction": ("run", "val_fraction"),
}


def build_parser(explicit_only: bool = False) -> argparse.ArgumentParser:
    """The parser; with ``explicit_only`` every default is suppressed, so parsing
    gives only the options the user typed (see :func:`explicit_options`)."""
    from . import __version__

    parser = _Parser(prog="scratchrnn", description="Recurrent networks from scratch, with "
                     "hand-written backpropagation through time.")
    parser.add_argument("--version", action="version", version=f"scratchrnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{train,sample,export,gradcheck}",
                                parser_class=_Parser)
    sub.required = True

    t = sub.add_parser("train", help="train a character-level language model",
                       formatter_class=_Help,
                       description="Train a character-level language model (default: an LSTM "
                       "on the embedded corpus, about two minutes).")
    src = t.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="FILE", help="train on this UTF-8 text file "
                     "(default: the --data corpus)")
    src.add_argument("--data", choices=("default", "tinyshakespeare"), default=None,
                     help="a named corpus (default: 'default', the embedded CPython help "
                     "prose)")
    t.add_argument("--cell", type=cell_arg, choices=tuple(MODEL_CELLS), default="lstm",
                   help="recurrent cell: Elman RNN with tanh or ReLU, GRU or LSTM ('rnn' is "
                   "an alias of rnn_tanh)")
    t.add_argument("--hidden", type=_positive_int, default=256, help="hidden units")
    t.add_argument("--layers", type=_positive_int, default=None,
                   help="stacked layers (default: 1, or 2 when the budget covers more than 12 "
                   "passes over the text)")
    t.add_argument("--embedding", type=int, default=0,
                   help="embedding size; 0 = one-hot characters")
    t.add_argument("--dropout", type=_float_in(0.0, 1.0, high_open=True), default=None,
                   help="dropout between layers and before the output layer (default: 0, or "
                   "0.2 when the budget covers more than 12 passes over the text)")
    t.add_argument("--seq-len", type=_positive_int, default=64, help="TBPTT window")
    t.add_argument("--batch-size", type=_positive_int, default=32, help="parallel streams")
    t.add_argument("--lr", type=_positive, default=None,
                   help="learning rate (default: 3e-3, or 2e-3 when the budget covers more "
                   "than 12 passes over the text)")
    t.add_argument("--optimizer", choices=("adam", "adamw", "sgd", "adagrad", "rmsprop"),
                   default="adam", help="optimizer")
    t.add_argument("--schedule", choices=("constant", "cosine", "step", "plateau"),
                   default=None, help="learning-rate schedule; cosine anneals over --steps, "
                   "or over the last 60%% of --minutes; step needs --steps; plateau halves the "
                   "rate after 4 evaluations without a better validation loss (default: "
                   "constant, or cosine when the budget covers more than 12 passes over the "
                   "text)")
    t.add_argument("--warmup", type=int, default=0, help="linear warm-up steps")
    t.add_argument("--clip", type=float, default=5.0,
                   help="max global gradient norm; 0 = no clipping")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=_positive_int,
                        help="train this many steps (default: none; --minutes 2)")
    budget.add_argument("--minutes", type=_positive, help="train this long (default: 2)")
    t.add_argument("--device", default="cpu", type=_device_arg, help="cpu | cuda[:N] | strict")
    t.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="parameter dtype")
    t.add_argument("--seed", type=int, default=0, help="random seed (initialisation, dropout)")
    t.add_argument("--threads", type=_thread_policy, default=None, metavar="auto|off|N",
                   help="BLAS threads: auto follows the load (as many as the cores other "
                   "processes leave free), N fixes them (bit-identical reruns), off leaves "
                   "BLAS alone (default: $SCRATCHRNN_THREADS, else auto)")
    t.add_argument("--val-fraction", type=_float_in(0.0, 0.5, low_open=True), default=0.05,
                   help="the last part of the text kept for validation")
    t.add_argument("--eval-every", type=_positive_int, default=100,
                   help="validate, print a sample and refresh history.json, loss.png and "
                   "best.npz every N steps")
    t.add_argument("--save-every", type=_positive_int, default=None,
                   help="write checkpoint.npz every N steps (default: --eval-every)")
    t.add_argument("--checkpoint-every", type=_positive_int, dest="save_every_old",
                   default=None, help=argparse.SUPPRESS)    # deprecated alias of --save-every
    t.add_argument("--log-every", type=_positive_int, default=25,
                   help="one progress line every N steps when stdout is not a terminal")
    t.add_argument("--sample-length", type=int, default=200,
                   help="characters per sample printed at each evaluation")
    t.add_argument("--out", default=DEFAULT_OUT,
                   help=f"output folder, created when training starts (default: {DEFAULT_OUT}; "
                   "with --resume, the resumed run's folder)")
    t.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue a run from its checkpoint, file or --out folder "
                   "(default: none, a new run)")
    t.add_argument("--quiet", action="store_true", help="no progress bar, log lines or samples")

    s = sub.add_parser("sample", help="generate text from a checkpoint", formatter_class=_Help,
                       description="Generate text from a language-model checkpoint "
                       "(checkpoint.npz or best.npz of a run).")
    s.add_argument("checkpoint", help="a checkpoint file, or the --out folder of a run")
    s.add_argument("--best", action="store_true",
                   help="with a folder: its best.npz (best validation loss) instead of "
                   "checkpoint.npz")
    s.add_argument("--prompt", default="", help="text to start from")
    s.add_argument("--length", type=int, default=500, help="characters to generate")
    s.add_argument("--temperature", type=_float_in(0.0, 100.0), default=0.8,
                   help="0 = greedy")
    s.add_argument("--top-k", type=_positive_int, default=None,
                   help="sample only among the k likeliest characters (default: all)")
    s.add_argument("--top-p", type=_float_in(0.0, 1.0, low_open=True), default=None,
                   help="sample only among the likeliest characters whose probabilities "
                   "sum to p (default: 1, all)")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed (default: none, a different text each time)")
    s.add_argument("--device", default="cpu", type=_device_arg, help="cpu | cuda[:N] | strict")

    e = sub.add_parser("export", help="write a checkpoint's weights as .safetensors",
                       description="Write a checkpoint's model weights as a .safetensors file "
                       "under PyTorch's names (config and vocabulary in its metadata), "
                       "loadable with safetensors.torch.load_file into the equivalent torch.nn "
                       "model (submodules embedding, rnn, head).")
    e.add_argument("checkpoint", help="a checkpoint file (or the --out folder of a run)")
    e.add_argument("output", metavar="OUT.safetensors", help="the file to write")

    sub.add_parser("gradcheck", help="check every hand-written gradient numerically",
                   add_help=False)
    if explicit_only:
        for action in _all_actions(parser):
            if action.option_strings and action.default is not argparse.SUPPRESS:
                action.default = argparse.SUPPRESS
    return parser


def _all_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    found = []
    for action in parser._actions:
        found.append(action)
        if isinstance(action, argparse._SubParsersAction):
            for p in action.choices.values():
                found += _all_actions(p)
    return found


def explicit_options(argv: list[str]) -> set[str]:
    """The ``dest`` of every option given on the command line ``argv``."""
    return set(vars(build_parser(explicit_only=True).parse_args(argv))) - {"command"}


# --------------------------------------------------------------------------- #
def _checkpoint_path(path: str, best: bool = False) -> Path:
    p = Path(path)
    return p / (BEST if best else CHECKPOINT) if p.is_dir() else p


def _warn(command: str, message: str) -> None:
    print(f"scratchrnn {command}: warning: {message}", file=sys.stderr, flush=True)


def _read_text_file(path: Path) -> str:
    """The file's text, or a ValueError naming --text and the file."""
    if path.is_dir():
        raise ValueError(f"--text: {path} is a folder, expected a UTF-8 text file")
    if not path.is_file():
        raise FileNotFoundError(f"--text: no file at {path}")
    data = path.read_bytes()
    if not data:
        raise ValueError(f"--text {path}: the file is empty")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise ValueError(f"--text {path}: not a text file (a NUL byte at offset {nul}; "
                         f"binary data?)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--text {path}: not UTF-8 text (byte 0x{data[err.start]:02x} at "
                         f"offset {err.start})") from None


def _load_text(text_arg: str | None, data_arg: str | None) -> tuple[str, str]:
    from .data import default_corpus, load_tinyshakespeare

    if text_arg:
        path = Path(text_arg)
        return _read_text_file(path), str(path)
    if data_arg == "tinyshakespeare":
        return load_tinyshakespeare(), "tinyshakespeare"
    return default_corpus(), "default (CPython help topics)"


def _resume_conflicts(args: argparse.Namespace, given: set[str], ckpt: Any) -> list[str]:
    """``--opt value (the checkpoint has other)`` for each explicit option that differs."""
    run = ckpt.info.get("run", {})
    found = []
    if ({"text", "data"} & given) and ("text" in run or "data" in run):
        mine, theirs = _corpus(args.text, args.data), _corpus(run.get("text"), run.get("data"))
        if mine != theirs:
            found.append(f"--{mine[0]} {mine[1]} (the checkpoint was trained on "
                         f"--{theirs[0]} {theirs[1]})")
    for dest, (where, key) in RESUME_FIXED.items():
        if dest not in given:
            continue
        record = ckpt.model_config if where == "model" else run
        if key not in record:
            continue
        mine, theirs = getattr(args, dest), record[key]
        if dest == "embedding":
            mine, theirs = mine or None, theirs or None
        if isinstance(mine, float) or isinstance(theirs, float):
            same = theirs is not None and mine is not None and float(mine) == float(theirs)
        else:
            same = mine == theirs
        if not same:
            flag = "--" + dest.replace("_", "-")
            found.append(f"{flag} {mine} (the checkpoint has {theirs})")
    return found


def _check_split(n_train: int, n_val: int, batch_size: int, seq_len: int, what: str,
                 warn: Any) -> None:
    """Refuse a text too short to train on; warn about a window longer than the
    streams and a validation split too small to mean anything."""
    if n_train < 2 * batch_size:
        raise ValueError(f"{what}: {n_train} training characters are too few for "
                         f"--batch-size {batch_size} (need at least {2 * batch_size})")
    stream = n_train // batch_size - 1
    if seq_len > stream:
        warn(f"--seq-len {seq_len} is longer than each of the {batch_size} training streams "
             f"({stream} characters): every window is cut to {stream}")
    if n_val < 2 * batch_size:
        warn(f"no validation: the validation split has {n_val} characters, fewer than "
             f"2 x --batch-size ({2 * batch_size}); raise --val-fraction or lower --batch-size")
    elif n_val < 20 * batch_size:
        warn(f"the validation split has only {n_val} characters ({batch_size} streams "
             f"of {n_val // batch_size}); its loss will be noisy")


def _corpus(text: str | None, data: str | None) -> tuple[str, str]:
    """("text", absolute path) or ("data", name): what a run trains on."""
    return ("text", str(Path(text).resolve())) if text else ("data", data or "default")


def cmd_train(args: argparse.Namespace, given: set[str] | None = None) -> int:
    from . import backend as B
    from .data import Vocab, split_stream
    from .models import LanguageModel
    from .training import distributed, make_optimizer, make_schedule
    from .training.checkpoint import load_checkpoint
    from .training.defaults import COSINE_FLOOR, COSINE_HOLD
    from .training.files import check_writable_folder
    from .training.sampling import sample
    from .training.tasks import LanguageModelTask
    from .training.trainer import TrainConfig, Trainer, TrainingDiverged

    given = set() if given is None else given
    warn = lambda message: _warn("train", message)  # noqa: E731
    if args.schedule == "step" and args.steps is None:
        raise ValueError(f"--schedule {args.schedule}: needs --steps (a known length)")
    if args.clip < 0:
        raise ValueError(f"--clip: expected a number >= 0, got {args.clip}")
    if args.save_every_old is not None:
        warn("--checkpoint-every is deprecated; use --save-every")
        if args.save_every is None:
            args.save_every = args.save_every_old
    comm = distributed.world()                      # data parallelism: under mpiexec/srun
    args.quiet = args.quiet or not comm.is_root     # rank 0 alone prints
    backend = _backend(distributed.device_for(args.device, comm))   # a GPU per rank
    if args.threads is not None and backend.name != "numpy":
        warn(f"--threads is ignored on --device {args.device} (it limits the CPU's BLAS)")
    # proved writable before anything is trained, created only when the run starts;
    # --resume without --out continues in the resumed run's folder
    if args.resume and "out" not in given:
        out = check_writable_folder(_checkpoint_path(args.resume).parent, "--resume (the run "
                                    "continues in its folder; --out DIR writes elsewhere)",
                                    create=False)
    else:
        out = check_writable_folder(args.out, "--out", create=False)
    ckpt = load_checkpoint(_checkpoint_path(args.resume)) if args.resume else None
    text_arg, data_arg = args.text, args.data
    if ckpt is not None:
        if ckpt.vocab is None or ckpt.model_kind != "language_model":
            raise ValueError(f"--resume: {ckpt.path} is not a language-model checkpoint")
        conflicts = _resume_conflicts(args, given, ckpt)
        if conflicts:
            raise ValueError(f"--resume {ckpt.path}: conflicting options: "
                             f"{'; '.join(conflicts)}. A resumed run keeps its model and "
                             f"training setup: drop these options, or start a new run with "
                             f"another --out")
        if "seed" in given:
            warn("--seed is ignored with --resume (the run's random state comes from the "
                 "checkpoint)")
        run = ckpt.info.get("run", {})
        if "text" not in given and "data" not in given and ("text" in run or "data" in run):
            text_arg, data_arg = run.get("text"), run.get("data")
    text, source = _load_text(text_arg, data_arg)
    steps = args.steps
    minutes = args.minutes if args.minutes is not None else (None if steps else 2.0)
    picked = _fill_budget_defaults(args, len(text), steps, minutes)
    if ckpt is not None:
        vocab = ckpt.vocab
        B.manual_seed(args.seed)
        model = ckpt.build_model(device=backend)
        run = ckpt.info.get("run", {})
        opt_name, lr = run.get("optimizer", args.optimizer), run.get("lr", args.lr)
        seq_len = run.get("seq_len", args.seq_len)
        batch_size = run.get("batch_size", args.batch_size)
        val_fraction = run.get("val_fraction", args.val_fraction)
        unseen = sorted(set(text) - set(vocab.itos))
        if unseen and vocab.unk is None:
            raise ValueError(f"--resume: the text has characters the checkpoint's vocabulary "
                             f"lacks ({''.join(unseen[:10])!r}); resume on the same text")
    else:
        vocab = Vocab.build_chars(text)
        B.manual_seed(args.seed)
        model = LanguageModel(len(vocab), args.hidden, args.layers, args.cell,
                              args.embedding or None, args.dropout, dtype=args.dtype,
                              device=backend)
        opt_name, lr, seq_len, batch_size = args.optimizer, args.lr, args.seq_len, \
            args.batch_size
        val_fraction = args.val_fraction
    ids = vocab.encode(text)
    train_ids, val_ids = split_stream(ids, val_fraction)
    _check_split(len(train_ids), len(val_ids), batch_size, seq_len,
                 f"--text {text_arg}" if text_arg else "the corpus", warn)
    task = LanguageModelTask(train_ids, val_ids, batch_size, seq_len, backend)
    optimizer = make_optimizer(opt_name, model.named_parameters(), lr)
    # cosine under --minutes: over the time budget, as the ranks agree it is spent
    schedule = make_schedule(
        args.schedule, lr, steps, args.warmup, seconds=None if minutes is None else minutes * 60,
        min_lr=lr * COSINE_FLOOR if args.schedule == "cosine" and steps is None else 0.0,
        hold=COSINE_HOLD,
        clock=lambda: comm.sum_floats([trainer.run_seconds()])[0] / comm.size)
    cell = model.config["cell"]
    config = TrainConfig(max_steps=steps, max_seconds=None if minutes is None else minutes * 60,
                         clip=args.clip or None, eval_every=args.eval_every,
                         save_every=args.save_every or args.eval_every, out_dir=str(out),
                         progress=False if args.quiet else None, log_every=args.log_every,
                         plot_title=f"{display_name(cell)} {model.config['hidden_size']} "
                                    f"on {source}",
                         loss_unit="nats/char")
    info = {"run": {"source": source, "data": data_arg,
                    "text": None if not text_arg else str(Path(text_arg).resolve()),
                    "optimizer": opt_name, "lr": lr, "seq_len": seq_len,
                    "batch_size": batch_size, "val_fraction": val_fraction}}
    say = _printer(args.quiet)

    def on_eval(tr: Trainer, metrics: dict[str, float]) -> None:
        schedule.observe(tr.step, metrics["val_loss"])      # plateau: cut the rate if stalled
        say(f"step {tr.step}: validation loss {metrics['val_loss']:.4f} nats/char")
        if not args.quiet and args.sample_length > 0:
            text = sample(model, vocab, "", args.sample_length, 0.8, seed=tr.step)
            say("---- sample ----\n" + text.strip("\n") + "\n----------------")

    trainer = Trainer(model, optimizer, task, config, schedule, vocab, on_eval=on_eval,
                      info=info, comm=comm)
    if ckpt is not None:
        trainer.load(ckpt)
        for v in trainer.history.val:                     # plateau: the same rates as before
            schedule.observe(v["step"], v["val_loss"])
        if steps is not None and trainer.step >= steps:
            raise ValueError(f"--steps {steps}: the checkpoint is already at step "
                             f"{trainer.step}")
    if comm.is_root:                                # rank 0 alone creates, writes, prints
        copied = _start_out_folder(out, ckpt)
        if ckpt is not None:
            print(f"resumed from {ckpt.path} at step {trainer.step} "
                  f"({trainer.elapsed:.0f} s trained so far)"
                  + (f"; continuing in {out} ({' and '.join(copied)} copied there)"
                     if copied else ""), flush=True)
        print(f"training {display_name(cell, article=True)} language model "
              f"({model.num_parameters():,} parameters, {len(vocab)} characters) on {source}: "
              f"{len(train_ids):,} training / {len(val_ids):,} validation characters, "
              + (f"{steps} steps" if steps else f"{minutes:g} minutes")
              + f", on {comm.describe(backend.label)}"
              + (f"\n{picked}" if picked and ckpt is None else ""), flush=True)
    step0, tokens0, start = trainer.step, trainer.tokens_seen, time.perf_counter()
    try:
        B.set_thread_policy(args.threads or distributed.threads_per_rank(comm))
        history = trainer.fit()
    except KeyboardInterrupt:
        if comm.size > 1:   # ranks stop at different points: a collective save could hang
            print(f"\ninterrupted at step {trainer.step}; the last checkpoint is "
                  f"{trainer.last_checkpoint or 'none yet'}", file=sys.stderr)
            comm.abort(EXIT_INTERRUPTED)
        path = trainer.save(out / CHECKPOINT)
        _write_outputs(trainer)
        print(f"\ninterrupted after step {trainer.step}; checkpoint, history.json and loss.png "
              f"written to {out} (continue with --resume {path})", file=sys.stderr)
        return EXIT_INTERRUPTED
    except TrainingDiverged:
        _write_outputs(trainer)            # the curve shows how it went
        raise
    wall = time.perf_counter() - start
    ck_path = trainer.save(out / CHECKPOINT)
    if not comm.is_root:                            # rank 0 alone writes and prints
        return 0
    trainer.write_outputs()
    final = sample(model, vocab, "", max(args.sample_length, 500), 0.8, seed=args.seed)
    atomic_write_text(out / SAMPLE, final)
    val = f"{history.val[-1]['val_loss']:.4f} nats/char" if history.val else \
        "n/a (no validation split)"
    best = f", best {trainer.best_val:.4f}" if trainer.best_val is not None else ""
    rate = (trainer.tokens_seen - tokens0) / max(wall, 1e-9)
    resumed = "" if step0 == 0 else \
        f" ({trainer.step - step0} steps, {wall:.0f} s since the resume)"
    print(f"\nfinished {trainer.step} steps in {trainer.elapsed:.0f} s{resumed}: validation "
          f"loss {val}{best}; {rate:,.0f} tokens/s overall (characters processed, with "
          f"validation and samples), {_median_rate(history):,.0f} tokens/s in a median "
          f"training step; {_passes(trainer.tokens_seen / max(len(train_ids), 1))} passes over "
          f"the training text")
    print("final sample:\n" + final.strip("\n"))
    files = [("checkpoint:", ck_path), ("best:", out / BEST), ("loss curve:", out / PLOT),
             ("metrics:", out / METRICS), ("history:", out / HISTORY),
             ("sample:", out / SAMPLE)]
    print()
    for label, path in files:
        if Path(path).exists():
            print(f"{label:<12}{path}")
    print(f"generate more with: scratchrnn sample {ck_path} --prompt 'The '")
    return 0


def _start_out_folder(out: Path, ckpt: Any) -> list[str]:
    """Create ``--out`` (the run starts: nothing before this point leaves a folder behind)
    and clean its stale temp files. A run resumed into another folder than its own
    continues its record there: its metrics.csv (the rows up to the checkpoint's step are
    kept) and best.npz are copied in. Returns the names copied."""
    from .training.files import atomic_write_bytes, clean_stale_temps
    from .training.run_files import NAMES

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"--out: cannot create {out} ({err.strerror or err})") from None
    clean_stale_temps(out, [*NAMES, SAMPLE])
    copied = []
    source = None if ckpt is None else Path(ckpt.path).parent
    if source is not None and source.resolve() != out.resolve():
        for name in (METRICS, BEST):
            if (source / name).is_file():
                atomic_write_bytes(out / name, (source / name).read_bytes())
                copied.append(name)
    return copied


def _write_outputs(trainer: Any) -> None:
    """history.json and loss.png after a stop; a failure here only warns."""
    try:
        trainer.write_outputs()
    except Exception as err:     # the stop's own message matters more
        _warn("train", f"could not write history.json / loss.png: {err}")


def _fill_budget_defaults(args: argparse.Namespace, text_chars: int, steps: int | None,
                          minutes: float | None) -> str:
    """--layers, --lr, --dropout and --schedule, where not given, by the passes the budget
    will make over the text (scratchrnn/training/defaults.py); returns a line saying what
    was picked."""
    from .training.defaults import REFERENCE_CHARS_PER_S, budget_defaults

    train_chars = int(text_chars * (1.0 - args.val_fraction))
    picked = budget_defaults(train_chars, args.batch_size, args.seq_len, steps, minutes)
    chosen = []
    if args.layers is None:
        args.layers = picked.layers
        if picked.layers != 1:
            chosen.append(f"{args.layers} layers")
    if args.lr is None:
        args.lr = picked.lr
        if picked.lr != 3e-3:
            chosen.append(f"learning rate {args.lr:g}")
    if args.dropout is None:
        args.dropout = picked.dropout
        chosen.append(f"dropout {args.dropout:g}")
    if args.schedule is None:
        args.schedule = picked.schedule
        chosen.append(f"{args.schedule} schedule")
    if steps is not None:       # exact: steps x batch x window characters
        basis = f"defaults for {_passes(picked.passes)} passes over the text ({steps} steps)"
    else:                       # an estimate: the speed of this machine is not known yet
        basis = (f"defaults for an estimated {_passes(picked.passes)} passes over the text "
                 f"({minutes:g} minutes at an assumed {REFERENCE_CHARS_PER_S:,} "
                 f"characters/s; the summary at the end gives the passes made)")
    return (basis + ": " + ", ".join(chosen)) if chosen else ""


def _passes(n: float) -> str:
    return f"{n:.1f}" if n < 10 else f"{n:,.0f}"


def _median_rate(history: Any) -> float:
    """Median tokens/s over the recorded steps (robust to the slow first step)."""
    rates = sorted(history.tokens_per_s)
    return rates[len(rates) // 2] if rates else 0.0


def _printer(quiet: bool):
    def say(message: str) -> None:
        if quiet:
            return
        from tqdm.auto import tqdm

        tqdm.write(message)
    return say


def cmd_sample(args: argparse.Namespace, given: set[str] | None = None) -> int:
    from .training.checkpoint import load_checkpoint
    from .training.sampling import sample

    given = set() if given is None else given
    if args.length < 0:
        raise ValueError(f"--length: expected an integer >= 0, got {args.length}")
    if args.temperature == 0:
        for name in ("top_k", "top_p", "seed"):
            if name in given:
                _warn("sample", f"--{name.replace('_', '-')} is ignored with --temperature 0 "
                      "(greedy)")
    ckpt = load_checkpoint(_checkpoint_path(args.checkpoint, args.best))
    if ckpt.vocab is None or ckpt.model_kind != "language_model":
        raise ValueError(f"checkpoint {ckpt.path}: not a language model with a vocabulary")
    model = ckpt.build_model(device=_backend(args.device))
    print(sample(model, ckpt.vocab, args.prompt, args.length, args.temperature, args.top_k,
                 args.top_p, args.seed))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .training.checkpoint import load_checkpoint
    from .training.export import save_safetensors

    out = Path(args.output)
    if out.suffix != ".safetensors":
        raise ValueError(f"OUT.safetensors: expected a file name ending in .safetensors, got "
                         f"{str(out)!r}")
    if out.is_dir():
        raise ValueError(f"OUT.safetensors: {out} is a folder")
    ckpt = load_checkpoint(_checkpoint_path(args.checkpoint))
    model = ckpt.build_model()
    path = save_safetensors(model, out, ckpt.vocab)
    print(f"wrote {len(model.state_dict())} arrays ({model.num_parameters():,} parameters, "
          f"PyTorch's names) to {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``scratchrnn`` command; Ctrl-C anywhere ends it with status 130, no traceback."""
    return run_command(lambda: _main(argv))


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "gradcheck":
        from . import gradcheck

        return gradcheck.main(argv[1:])
    args = build_parser().parse_args(argv)
    given = explicit_options(argv)
    commands = {"train": lambda: cmd_train(args, given), "export": lambda: cmd_export(args),
                "sample": lambda: cmd_sample(args, given)}
    return one_line_errors(args.command, commands[args.command])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
