"""``snia model``: the model that ships with snia (``info``) and how one is packaged (``package``),
see ``snia.shipped``."""

from __future__ import annotations

from pathlib import Path


def add_model_parser(sub) -> None:
    p = sub.add_parser("model", help="the model that ships with snia: what it is, how to package one")
    msub = p.add_subparsers(dest="model_command", required=True)
    msub.add_parser("info", help="the packaged model's provenance: training data, commit, metrics")
    k = msub.add_parser("package", help="package a trained model with its evaluation and training "
                                        "data (written into the installed snia unless -o)")
    k.add_argument("checkpoint", type=Path, help="the trained model (e.g. results/model/student/best.pt)")
    k.add_argument("--evaluation", type=Path, required=True,
                   help="its snia evaluate folder (metrics.json), e.g. results/evaluate/plasticc_test")
    k.add_argument("--train-store", type=Path, required=True, help="the store it was trained on")
    k.add_argument("-o", "--output", type=Path, help="folder to write to (default: snia's own)")


def cmd_model(args) -> int:
    from snia.shipped import SHIPPED, model_info, package_model

    if args.model_command == "info":
        print(model_info())
        return 0
    out = args.output or SHIPPED
    prov = package_model(args.checkpoint, args.evaluation, args.train_store, out)
    print(f"packaged {args.checkpoint} as {out / prov['checkpoint']} (AUC "
          f"{prov['metrics']['auc']:.4f} on {prov['evaluated_on']['name']})")
    return 0


def default_checkpoints(args) -> None:
    """``snia classify`` without --checkpoint: the packaged model."""
    if args.command == "classify" and not args.checkpoint:
        from snia.shipped import shipped_checkpoint

        args.checkpoint = [shipped_checkpoint()]
