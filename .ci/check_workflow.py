"""Check what a run of the small workflow config (.test/) wrote: every stage's output, counts
that follow from the config (300 objects per dataset), 2-rank ingestion and DDP training started
by the expected launcher (2 ensemble members and the model distilled from them), the image
files drawn with the model's geometry, metrics with bootstrap intervals and provenance, the report
(every classifier's section, provenance, definitions, self-contained HTML) opened in headless
Chromium at 1280 px (every image decodes, no horizontal overflow; the screenshot is kept as
RESULTS/report/report_1280.png), the scaling CSV, the architecture comparison (each model
trained on 2 ranks, timed, evaluated, in the report), and (for SLURM runs) one SLURM log per submitted
job.

    python .ci/check_workflow.py RESULTS_DIR --launcher mpiexec|srun [--slurm-logs DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import h5py
import yaml

from snia.raster import RasterSpec
from snia.report import SCREENSHOT, check_in_browser, opens_with_its_answer
from snia.train import TrainConfig

N_OBJECTS = 300  # .test/config/config.yaml: subset
STUDENT_EPOCHS = 3  # .test/config/config.yaml: train.student_epochs (the members: settings' 2)
FAILURES: list[str] = []


def check(condition: bool, what: str) -> None:
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        FAILURES.append(what)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("results", type=Path)
    parser.add_argument("--launcher", required=True, choices=["mpiexec", "srun"])
    parser.add_argument("--slurm-logs", type=Path)
    args = parser.parse_args()
    r = args.results

    for name in ("plasticc_train", "plasticc_test"):
        info = (r / "stores" / f"{name}.info.txt").read_text()
        check(f"{name}.h5: OK" in info and f"objects       {N_OBJECTS}" in info,
              f"{name} store verified with {N_OBJECTS} objects")
        log = (r / "logs" / f"ingest_{name}.log").read_text()
        check("2 rank(s)" in log, f"{name} ingested by 2 MPI ranks")
    for run in ("m0", "m1", "student"):  # .test config: an ensemble of 2, and a distilled model
        train_log = (r / "logs" / f"train_{run}.log").read_text()
        check(f"rank 1 of 2 (started by {args.launcher})" in train_log,
              f"{run} trained on 2 DDP ranks started by {args.launcher}")
        with open(r / "model" / run / "history.csv") as f:
            history = list(csv.DictReader(f))
        epochs = STUDENT_EPOCHS if run == "student" else 2
        check(len(history) == epochs, f"{run}: {epochs} epochs in history.csv")
        if run == "student":  # .test config: train.survey_forest: auto
            check("snia.train.blend: survey blend" in train_log, "the student chose the forest's "
                  "weight on the training objects re-observed through the survey")
    student = yaml.safe_load((r / "model" / "student" / "settings.yaml").read_text())["train"]
    teachers = [Path(t).parent.name for t in student["distill"]["teachers"]]
    check(teachers == ["m0", "m1"] and student["distill"]["weight"] == 0.7,
          "the student learnt from both members (distill weight 0.7)")
    target = yaml.safe_load((r / "model" / "redshift_target.yaml").read_text())["augment"]
    check(len(target["redshift_quantiles"]) == 21
          and all(yaml.safe_load((r / "model" / run / "settings.yaml").read_text())["train"]
                  ["augment"]["redshift_quantiles"] == target["redshift_quantiles"]
                  for run in ("m0", "m1", "student")),
          "every run moves redshifts toward plasticc_test's photo-z quantiles (21)")
    geometry = yaml.safe_load((r / "images" / "settings.yaml").read_text())["raster"]
    model = TrainConfig.from_dict(student)
    check(RasterSpec(kind=model.kind, **geometry) == RasterSpec(kind=model.kind, **model.raster),
          "image files get the model's geometry")
    with h5py.File(r / "images" / "plasticc_test.heatmap.h5", "r") as f:
        shape = f["images"].shape
    check(shape == (N_OBJECTS, *RasterSpec(kind="heatmap", **geometry).shape),
          f"heatmap images of shape {shape}, drawn with it")
    evaluated = (r / "evaluate" / "plasticc_test" / "report.md").read_text()
    check("student/best.pt" in evaluated, "the evaluation used the distilled model")
    ensemble = (r / "evaluate" / "plasticc_test" / "ensemble" / "report.md").read_text()
    check("m0/best.pt, m1/best.pt" in ensemble, "the ensemble was evaluated beside it")

    for who, folder in (("CNN", r / "evaluate" / "plasticc_test"), ("baseline", r / "baseline")):
        m = json.loads((folder / "metrics.json").read_text())
        check(m["n"] == N_OBJECTS and 0 < m["auc"] < 1, f"{who} metrics on {N_OBJECTS} objects "
              f"(AUC {m['auc']:.3f})")
        with open(folder / "predictions.csv") as f:
            check(sum(1 for _ in f) == N_OBJECTS + 1, f"{who} predictions for every object")
    for png in ("roc", "purity_completeness", "p_ia_by_type", "confusion", "tsne", "gallery"):
        path = r / "evaluate" / "plasticc_test" / f"{png}.png"
        check(path.exists() and path.read_bytes()[:4] == b"\x89PNG", f"plot {png}.png")
    for who, folder in (("CNN", r / "evaluate" / "plasticc_test"), ("baseline", r / "baseline")):
        m = json.loads((folder / "metrics.json").read_text())
        lo, hi = m["intervals"]["auc"]
        check(m["intervals"]["resamples"] == 1000 and 0 <= lo <= hi <= 1,
              f"{who} metrics.json: bootstrap 68 % interval of the AUC [{lo:.3f}, {hi:.3f}]")
        prov = m["provenance"]
        check(prov["store"]["objects"] == N_OBJECTS and prov["git_commit"] and prov["hardware"]["cpu"],
              f"{who} metrics.json: provenance (data set, git commit, hardware)")
    cnn = json.loads((r / "evaluate" / "plasticc_test" / "metrics.json").read_text())["provenance"]
    check([c["run"] for c in cnn["checkpoints"]] == ["student"]
          and cnn["checkpoints"][0]["distilled_from"] == ["m0/best.pt", "m1/best.pt"],
          "the CNN's provenance names its checkpoint and the teachers it was distilled from")
    survey = cnn["checkpoints"][0].get("survey") or {}
    check(survey.get("store") == "results/stores/plasticc_test.h5"
          and "self-training" in " ".join(survey.get("uses", [])),
          "the CNN self-trained on the test set's light curves (train.self_training), and says so")
    check((r / "baseline" / "feature_importance.png").read_bytes()[:4] == b"\x89PNG",
          "the forest's feature importance as a plot")

    report = (r / "report" / "report.md").read_text()
    check("| CNN | CNN ensemble | random forest |" in report and "| AUC |" in report,
          "report puts the CNN, the ensemble and the random forest side by side")
    check(all(f"## {s}" in report for s in ("Provenance", "CNN", "CNN ensemble", "random forest",
                                             "Mistakes of the CNN", "Training")),
          "report: provenance, a section per classifier, the mistakes, training")
    summary = json.loads((r / "report" / "metrics.json").read_text())
    check(summary["provenance"]["datasets"]["test"]["objects"] == N_OBJECTS
          and summary["provenance"]["config"]["subset"] == N_OBJECTS
          and set(summary["classifiers"]) == {"CNN", "CNN ensemble", "random forest"},
          "report metrics.json: provenance (data sets, the complete config) and every classifier")
    html = (r / "report" / "report.html").read_text()
    check("src='data:image/png;base64," in html and "src='data:" in html
          and html.count("<img ") == html.count("src='data:image/png;base64,"),
          "report.html is self-contained (every image embedded)")
    shot = r / "report" / SCREENSHOT
    seen = check_in_browser(r / "report" / "report.html", shot, width=1280)
    check(seen["images"] >= 15 and not seen["broken"] and not seen["external"],
          f"report.html in Chromium: {seen['images']} images, all decode ({seen['broken']} broken)")
    check(seen["scroll_width"] <= 1280, f"report.html: no horizontal overflow at 1280 px "
          f"(document {seen['scroll_width']} px wide)")
    check("git commit" in seen["provenance"] and "completeness" in seen["definitions"],
          "report.html shows the provenance block and the definitions")
    check(opens_with_its_answer(seen), f"report.html opens with its answer: the headline table "
          f"first, within the first screen ({seen['headline']}, screen {seen['inner_height']} px)")
    check(shot.read_bytes()[:4] == b"\x89PNG", f"screenshot kept: {shot}")

    with open(r / "scaling" / "scaling.csv") as f:
        rows = list(csv.DictReader(f))
    check({(x["mode"], int(x["world_size"])) for x in rows}
          == {(m, n) for m in ("strong", "weak") for n in (1, 2)},
          "scaling.csv: strong and weak scaling at 1 and 2 ranks")
    check(all(float(x["samples_per_s"]) > 0 for x in rows), "scaling throughputs measured")
    check((r / "scaling" / "scaling.png").exists(), "scaling.png")

    with open(r / "compare" / "compare.csv") as f:
        compared = list(csv.DictReader(f))
    check([(x["model"], x["arch"]) for x in compared]
          == [("cnn", "cnn"), ("resnet", "resnet"), ("gru", "gru")],
          "compare.csv: the .test config's three models (cnn, resnet, gru)")
    for x in compared:
        train_log = (r / "logs" / f"compare_train_{x['model']}.log").read_text()
        check(f"rank 1 of 2 (started by {args.launcher})" in train_log and x["epochs"] == "1"
              and int(x["parameters"]) > 0 and float(x["infer_lc_per_s"]) > 0
              and 0 < float(x["auc"]) < 1,
              f"compare {x['model']}: trained on 2 DDP ranks, 1 epoch, timed, AUC {x['auc']}")
    check((r / "compare" / "compare.png").read_bytes()[:4] == b"\x89PNG", "compare.png")
    check("## Architectures" in report and all(f"| {x['model']}" in report for x in compared),
          "report: the architectures' table")

    if args.slurm_logs:
        logs = {p.parent.relative_to(args.slurm_logs).parts[0] for p in args.slurm_logs.rglob("*.log")}
        for rule in ("rule_ingest", "rule_train", "rule_evaluate", "rule_baseline", "rule_report",
                     "rule_scaling_run", "rule_compare_train", "rule_compare_evaluate",
                     "rule_compare_summary"):
            check(rule in logs, f"{rule} ran as a SLURM job")
    print(f"{len(FAILURES)} failure(s)")
    return 1 if FAILURES else 0


if __name__ == "__main__":
    sys.exit(main())
