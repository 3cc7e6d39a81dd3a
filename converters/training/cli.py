"""``vitedge finetune`` and ``vitedge distill``: their options and handlers (cli.py registers them).

Importing this module imports neither torch nor transformers; the handlers do, when they run.
Several processes or GPUs: launch the same command under ``torchrun``, e.g.
``torchrun --nproc_per_node 2 -m vitedge.cli finetune MODEL --data DIR --out OUT``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

AMP_CHOICES = ("auto", "fp32", "bf16", "fp16")


def _common(parser: argparse.ArgumentParser, *, learning_rate: float) -> None:
    parser.add_argument("--data", required=True, metavar="DIR", help="ImageFolder: DIR/<class name>/<image>")
    parser.add_argument("--out", required=True, metavar="CKPT", help="the Hugging Face folder to write")
    parser.add_argument("--val", metavar="DIR", help="validation ImageFolder (default: hold out --val-fraction of --data)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share of each class held out (default 0.1)")
    parser.add_argument("--epochs", type=int, default=10, help="passes over the data (default 10)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per optimizer step, all processes (default 32)")
    parser.add_argument("--lr", type=float, default=learning_rate, help=f"peak AdamW learning rate (default {learning_rate:g})")
    parser.add_argument("--weight-decay", type=float, default=0.05, help="AdamW weight decay (default 0.05)")
    parser.add_argument("--warmup", type=float, default=0.1, help="share of steps warming up, then cosine (default 0.1)")
    parser.add_argument("--label-smoothing", type=float, default=0.1, help="(default 0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the split, init, shuffling, dropout (default 0)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--max-seconds", type=float, help="time budget: anneal to the clock and stop cleanly")
    parser.add_argument("--accumulate", type=int, default=1, metavar="N", help="gradient accumulation micro-batches")
    parser.add_argument("--amp", choices=AMP_CHOICES, default="auto",
                        help="mixed precision: auto (fp16 + loss scaling on GPU, fp32 on CPU), fp32, bf16, fp16")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="less memory, ~30%% more compute")
    parser.add_argument("--patience", type=int, help="early stopping: epochs without a better validation accuracy")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--freeze-layers", type=int, default=0, metavar="K", help="freeze the embeddings and first K layers")
    parser.add_argument("--head-only", action="store_true", help="train the classifier head only")
    parser.add_argument("--shift", type=int, default=0, metavar="PX", help="augmentation: random shifts up to PX pixels")
    parser.add_argument("--flip", action="store_true", help="augmentation: horizontal flips (only for mirror-safe labels)")
    parser.add_argument("--qat", action="store_true", help="quantization-aware training (int8 fake-quant linear layers)")
    parser.add_argument("--qat-export", metavar="ARTIFACT",
                        help="with --qat: also write the ONNX int8 QDQ artifact with the learned ranges here")
    parser.add_argument("--image-size", type=int, help="input size of a preset or config.json start; a pretrained "
                                                       "ViT/DeiT is fine-tuned at this size (positions resampled)")
    parser.add_argument("--patch-size", type=int, help="patch size of a preset or config.json start (random init)")
    parser.add_argument("--checkpoint-dir", metavar="DIR", help="resumable state and metrics log (default: OUT.checkpoint)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint when there is one")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier training output at --out")
    parser.add_argument("--skip-unreadable", action="store_true", help="train without unreadable images (default: refuse)")
    parser.add_argument("--allow-pickle", action="store_true", help="accept pickle checkpoints (only from sources you trust)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")


def add_training_commands(commands) -> None:
    """Add the ``finetune`` and ``distill`` subcommands to the CLI's subparsers."""
    finetune = commands.add_parser("finetune", help="transfer learning on your images (ImageFolder) -> HF folder")
    finetune.add_argument("model", help="hub id, local HF folder, preset:NAME or config.json (from scratch)")
    _common(finetune, learning_rate=2e-4)

    distill = commands.add_parser("distill", help="distill a fine-tuned teacher into a small student -> HF folder")
    distill.add_argument("--teacher", required=True, metavar="MODEL", help="fine-tuned teacher: HF folder or hub id")
    distill.add_argument("--student", required=True, metavar="PRESET|CONFIG|DIR",
                         help="preset:NAME or config.json (from scratch), or a smaller checkpoint folder")
    distill.add_argument("--mode", choices=("soft", "hard"), default="soft",
                         help="soft: KL at --temperature mixed by --alpha; hard: DeiT hard distillation")
    distill.add_argument("--temperature", type=float, default=2.0, help="soft mode temperature (default 2)")
    distill.add_argument("--alpha", type=float, default=0.5, help="soft mode weight of the teacher term (default 0.5)")
    distill.add_argument("--teacher-cache", metavar="FILE", help="teacher logits cache (default: in the checkpoint folder)")
    distill.add_argument("--no-teacher-cache", action="store_true", help="run the teacher every step (for augmentation)")
    _common(distill, learning_rate=1e-3)


def _options(args: argparse.Namespace):
    from vitedge.converters.training.loop import LoopConfig
    from vitedge.converters.training.qat import QatConfig
    from vitedge.converters.training.recipe import TrainConfig
    from vitedge.converters.training.run import TrainingOptions
    from vitedge.errors import UsageError

    if args.qat_export and not args.qat:
        raise UsageError("--qat-export needs --qat", hint="add --qat, or convert the output with vitedge convert")
    recipe = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
                         weight_decay=args.weight_decay, warmup_fraction=args.warmup,
                         label_smoothing=args.label_smoothing, seed=args.seed, num_threads=args.threads,
                         max_seconds=args.max_seconds, max_shift=args.shift, horizontal_flip=args.flip)
    loop = LoopConfig(train=recipe, accumulation_steps=args.accumulate, amp=args.amp,
                      gradient_checkpointing=args.gradient_checkpointing, patience=args.patience,
                      device=args.device, progress=not args.quiet)
    return TrainingOptions(loop=loop, freeze_layers=args.freeze_layers, head_only=args.head_only,
                           val_fraction=args.val_fraction, skip_unreadable=args.skip_unreadable,
                           qat=QatConfig() if args.qat else None)


def _echo(args: argparse.Namespace):
    if args.quiet or int(os.environ.get("RANK", "0")) != 0:
        return None, None

    def epoch_line(record) -> None:
        print(f"epoch {record.epoch}: loss {record.train_loss:.4f}, validation accuracy {record.val_accuracy:.1%}, "
              f"lr {record.learning_rate:.2e} ({record.seconds:.0f} s, {record.images_per_second:.0f} images/s)",
              file=sys.stderr, flush=True)

    return (lambda line: print(f"{line} …", file=sys.stderr, flush=True)), epoch_line


def _finish(args: argparse.Namespace, run) -> int:
    from vitedge.converters.loading import state_dict_sha256

    loop = run.loop
    if loop.world_size > 1:  # every rank says what it holds: they must agree
        print(f"rank {int(os.environ.get('RANK', '0'))}/{loop.world_size}: weights sha256 {state_dict_sha256(run.model)}",
              flush=True)
    if run.out is None:
        return 0
    print(f"wrote {run.out} ({run.record['weights']}; best validation accuracy {loop.best_val_accuracy:.1%} at epoch "
          f"{loop.best_epoch}, {len(loop.history)} epoch(s), {loop.stopped}, {loop.seconds:.0f} s)")
    if args.qat_export:
        from vitedge.converters.training.qat_export import export_int8_matmuls

        result = export_int8_matmuls(run.out, args.qat_export, qat=True, overwrite=args.overwrite)
        print(f"wrote {result.path} (ONNX int8 QDQ with the learned QAT ranges; top-1 agreement with fp32 "
              f"{result.manifest.validation.top1_agreement:.1%})")
    print(f"next: vitedge convert {run.out} --to onnx --out ARTIFACT")
    return 0


def _setup(args: argparse.Namespace):
    from vitedge.converters.training.run import RunSetup

    echo, on_epoch = _echo(args)
    return RunSetup(val_data=args.val, image_size=args.image_size, patch_size=args.patch_size,
                    checkpoint_dir=args.checkpoint_dir, resume=args.resume, overwrite=args.overwrite,
                    allow_pickle=args.allow_pickle, on_epoch=on_epoch, echo=echo)


def cmd_finetune(args: argparse.Namespace) -> int:
    from vitedge.converters.training.finetune import finetune

    return _finish(args, finetune(args.model, args.data, args.out, _options(args), _setup(args)))


def cmd_distill(args: argparse.Namespace) -> int:
    from vitedge.converters.training.distill import DistillConfig, distill

    config = DistillConfig(mode=args.mode, temperature=args.temperature, alpha=args.alpha,
                           cache_teacher_logits=not args.no_teacher_cache)
    run = distill(args.teacher, args.student, args.data, args.out, _options(args), config, _setup(args),
                  teacher_cache=Path(args.teacher_cache) if args.teacher_cache else None)
    return _finish(args, run)
