"""The report and its numbers, on constructed inputs: bootstrap intervals against cases whose
resamples can be enumerated or whose spread is known, the Brier score and reliability bins against
scikit-learn, the report (every classifier side by side, provenance, definitions, calibration,
mistakes, self-contained HTML) and, in headless Chromium, what a reader sees; the scaling summary."""

from __future__ import annotations

import base64
import csv
import itertools
import json
import os
import re
import time

import numpy as np
import pytest
from conftest import synthetic_plasticc
from sklearn.metrics import precision_score, recall_score, roc_auc_score

from snia.metrics import (
    bootstrap,
    brier_score,
    confusion_at,
    figure_of_merit,
    metrics,
    purity_completeness,
    reliability,
    resample_counts,
)
from snia.taxonomy import CLASSES


def write_run(folder, ids, p, types, uncalibrated=None, extra=None):
    """A classifier's folder as `snia evaluate` / `snia baseline` leave it: metrics.json and
    predictions.csv (the one layout; ``p_ia_uncalibrated`` when calibrated)."""
    folder.mkdir(parents=True)
    y = np.array([t == "Ia" for t in types], dtype=int)
    (folder / "metrics.json").write_text(json.dumps({**metrics(y, p, n_resamples=0), **(extra or {})}))
    with open(folder / "predictions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["object_id", "p_ia", "true_type"] + (["p_ia_uncalibrated"] if uncalibrated is not None
                                                         else []))
        for i in range(len(ids)):
            w.writerow([ids[i], p[i], types[i]] + ([uncalibrated[i]] if uncalibrated is not None else []))


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_matches_the_enumerated_resamples_of_three_objects():
    # One Ia at P(Ia) 0.5 between two non-Ia at 0.6 and 0.2. A resample is one of 27 equally likely
    # ordered draws; with counts (k0, k1, k2) of the three objects:
    #   AUC = k2 / (k1 + k2) (the Ia beats the 0.2 non-Ia, loses to the 0.6 one), defined when
    #   k0 > 0 and k1 + k2 > 0: 0 in 6 draws ((2,1,0), (1,2,0)), 1/2 in 6 ((1,1,1)), 1 in 6
    #   ((2,0,1), (1,0,2)), undefined in 9;
    #   purity at 0.5 = k0 / (k0 + k1) (objects 0 and 1 are called): 0 in 7, 1/3 in 3, 1/2 in 6,
    #   2/3 in 3, 1 in 7, undefined in 1 ((0,0,3)); completeness at 0.5 is 1 whenever defined (19).
    y, p = np.array([1, 0, 0]), np.array([0.5, 0.6, 0.2])
    exact_auc = {0.0: 6 / 27, 0.5: 6 / 27, 1.0: 6 / 27}
    exact_purity = {0.0: 7 / 27, 1 / 3: 3 / 27, 0.5: 6 / 27, 2 / 3: 3 / 27, 1.0: 7 / 27}
    # the same table, by enumerating the 27 draws
    counted_auc, counted_purity = {}, {}
    for draw in itertools.product(range(3), repeat=3):
        k = np.bincount(draw, minlength=3)
        if k[0] and k[1] + k[2]:
            counted_auc[k[2] / (k[1] + k[2])] = counted_auc.get(k[2] / (k[1] + k[2]), 0) + 1 / 27
        if k[0] + k[1]:
            counted_purity[k[0] / (k[0] + k[1])] = counted_purity.get(k[0] / (k[0] + k[1]), 0) + 1 / 27
    assert counted_auc == pytest.approx(exact_auc) and counted_purity == pytest.approx(exact_purity)

    draws = bootstrap(y, p, 20000, seed=3, thresholds=(0.5,))
    for values, exact in ((draws["auc"], exact_auc), (draws["at"][0.5]["purity"], exact_purity)):
        for value, share in exact.items():  # 20,000 draws: a share's standard error is <= 0.0035
            assert np.mean(np.isclose(values, value)) == pytest.approx(share, abs=0.015), value
        assert np.mean(np.isnan(values)) == pytest.approx(1 - sum(exact.values()), abs=0.015)
    completeness = draws["at"][0.5]["completeness"]
    assert np.all(completeness[np.isfinite(completeness)] == 1.0)
    assert np.mean(np.isfinite(completeness)) == pytest.approx(19 / 27, abs=0.015)
    # the 16th and 84th percentiles of those distributions: 0 and 1 (a third of the defined AUCs
    # are 0, a third 1; purity is 0 in 7/26 and 1 in 7/26 of the defined cases)
    m = metrics(y, p, n_resamples=20000, seed=3)["intervals"]
    assert m["auc"] == [0.0, 1.0] and m["at_0.5"]["purity"] == [0.0, 1.0]
    assert m["at_0.5"]["completeness"] == [1.0, 1.0]


def test_bootstrap_intervals_of_degenerate_and_binomial_cases():
    from scipy.stats import binom

    # perfectly separated: every resample separates too
    y = np.array([0] * 30 + [1] * 20)
    p = np.r_[np.linspace(0.0, 0.4, 30), np.linspace(0.6, 1.0, 20)]
    m = metrics(y, p)["intervals"]
    assert m["auc"] == [1.0, 1.0] and m["at_0.5"]["purity"] == [1.0, 1.0]
    assert m["at_0.5"]["completeness"] == [1.0, 1.0] and m["at_best_fom"]["fom"] == [1.0, 1.0]
    # one score for all: every resample's AUC is 1/2
    assert metrics(y, np.full(50, 0.3))["intervals"]["auc"] == [0.5, 0.5]
    # all Ia, half of them called: a resample's completeness is Binomial(N, 1/2) / N, whose 16th
    # and 84th percentiles are known (0.475 and 0.525 for N = 400, to a step of 1/N)
    n = 400
    y, p = np.ones(n, dtype=int), np.r_[np.full(n // 2, 0.9), np.full(n // 2, 0.1)]
    lo, hi = metrics(y, p, n_resamples=4000, seed=1)["intervals"]["at_0.5"]["completeness"]
    assert lo == pytest.approx(binom.ppf(0.16, n, 0.5) / n, abs=2 / n)
    assert hi == pytest.approx(binom.ppf(0.84, n, 0.5) / n, abs=2 / n)


def test_each_resample_agrees_with_scikit_learn_and_metrics_on_the_resampled_objects():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 300), 0, 1).round(2)  # ties on purpose
    full = metrics(y, p, n_resamples=0)
    best = full["at_best_fom"]["threshold"]
    draws = bootstrap(y, p, 40, seed=11, thresholds=(0.5, best), threshold_grid=[0.3, 0.5, 0.7],
                      fpr_grid=[0.0, 0.1, 1.0])
    counts = next(resample_counts(len(y), 40, seed=11))
    assert counts.shape == (40, 300) and np.all(counts.sum(axis=1) == 300)
    for r in range(10):
        yy, pp = np.repeat(y, counts[r]), np.repeat(p, counts[r])
        assert draws["auc"][r] == pytest.approx(roc_auc_score(yy, pp))
        assert draws["at"][0.5]["purity"][r] == pytest.approx(precision_score(yy, pp >= 0.5))
        assert draws["at"][0.5]["completeness"][r] == pytest.approx(recall_score(yy, pp >= 0.5))
        c = confusion_at(yy, pp, best)
        assert draws["at"][best]["fom"][r] == pytest.approx(figure_of_merit(c))
        assert draws["at"][best]["purity"][r] == pytest.approx(purity_completeness(c)[0])
        again = metrics(yy, pp, n_resamples=0)  # the threshold re-optimised on the resample
        assert draws["best_threshold"][r] == again["at_best_fom"]["threshold"]
        assert draws["best_fom"][r] == pytest.approx(again["at_best_fom"]["fom"])
        assert draws["curves"]["purity"][r, 2] == pytest.approx(precision_score(yy, pp >= 0.7))
        assert draws["roc_tpr"][r, 2] == pytest.approx(1.0)
    # the same seed, the same intervals; another seed, others
    assert metrics(y, p, seed=5)["intervals"] == metrics(y, p, seed=5)["intervals"]
    assert metrics(y, p, seed=5)["intervals"]["auc"] != metrics(y, p, seed=6)["intervals"]["auc"]


def test_bootstrap_of_5000_objects_takes_seconds():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 5000)
    p = np.clip(0.3 * y + rng.uniform(0, 0.7, 5000), 0, 1)  # 5,000 distinct scores
    start = time.perf_counter()
    m = metrics(y, p, n_resamples=1000)
    assert time.perf_counter() - start < 10
    lo, hi = m["intervals"]["auc"]
    assert lo < m["auc"] < hi and hi - lo < 0.02  # ~ +-0.005 for AUC 0.9 on 5,000 objects


# ----------------------------------------------------------------------------- calibration


def test_brier_score_and_reliability_bins_match_scikit_learn():
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 500)
    p = np.r_[rng.uniform(0, 1, 480), [0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0] * 2, [0.95] * 4]
    assert brier_score(y, p) == pytest.approx(brier_score_loss(y, p))
    for n_bins in (5, 10, 20):
        r = reliability(y, p, n_bins)
        fraction, mean_p = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
        np.testing.assert_allclose(r["fraction_ia"], fraction)
        np.testing.assert_allclose(r["p_mean"], mean_p)
        assert r["count"].sum() == len(p) and len(r["bin"]) == len(fraction)
    empty = reliability(np.array([1, 0]), np.array([0.05, 0.95]), 10)  # 8 empty bins left out
    assert list(empty["bin"]) == [0, 9] and list(empty["fraction_ia"]) == [1.0, 0.0]


# ----------------------------------------------------------------------------- the report


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    """A report of three classifiers on a small store: the CNN calibrated (p_ia_uncalibrated),
    the ensemble, the random forest with its feature importance; the config, the store."""
    from snia.ingest import run_ingest
    from snia.report import write_report
    from snia.store import Store

    tmp = tmp_path_factory.mktemp("report")
    lc, meta, _ = synthetic_plasticc(tmp, 60, 5)
    run_ingest("plasticc", [lc], tmp / "test.h5", [meta], progress=False)
    with Store(tmp / "test.h5") as store:
        ids, types = store.objects["object_id"], store.objects["type"]
    names = np.array([CLASSES[t] for t in types])
    rng = np.random.default_rng(4)
    truth = (names == "Ia").astype(float)
    cnn = np.clip(truth * 0.35 + rng.uniform(0, 0.6, len(ids)), 0, 1).round(4)  # "calibrated"
    raw = (cnn ** 0.7).round(4)  # before calibration: too high
    write_run(tmp / "cnn", ids, cnn, names, uncalibrated=raw,
              extra={"provenance": {"image_spec": {"kind": "bands", "n_time": 30, "bands": [0, 1, 2, 3, 4, 5],
                                                   "wavelengths": [3671.0, 4827.0, 6223.0, 7546.0, 8691.0, 9712.0]}}})
    write_run(tmp / "ens", ids, np.clip(truth * 0.5 + rng.uniform(0, 0.5, len(ids)), 0, 1).round(4), names)
    write_run(tmp / "rf", ids, rng.uniform(0, 1, len(ids)).round(4), names,
              extra={"best_params": {"n_estimators": 200, "max_depth": 12}, "cv_auc": 0.71,
                     "provenance": {"model": {"training": {"reobserved": {
                         "survey": {"path": "stores/survey.h5"}, "copies": 4, "rows": 240}}}}})
    (tmp / "rf" / "feature_importance.txt").write_text("0.30 lsstg_amplitude\n0.20 hostgal_photoz\n")
    (tmp / "config.yaml").write_text("# the workflow config\ntrain:\n  ranks: 2\n  members: 2\nsubset: 60\n")
    md = write_report(tmp / "report", tmp / "cnn", tmp / "rf", ensemble_dir=tmp / "ens", store=tmp / "test.h5",
                      train_store=tmp / "test.h5", config=tmp / "config.yaml", target="all (snakemake)",
                      command="snia report --cnn cnn ...").read_text()
    return {"dir": tmp / "report", "md": md, "html": (tmp / "report" / "report.html").read_text(),
            "json": json.loads((tmp / "report" / "metrics.json").read_text()), "ids": ids, "names": names,
            "cnn": cnn, "raw": raw, "tmp": tmp}


def test_report_table_has_every_classifier_with_intervals_that_agree_with_the_predictions(full_report):
    md, names = full_report["md"], full_report["names"]
    y = (names == "Ia").astype(int)
    assert "|  | CNN | CNN ensemble | random forest |" in md
    m = metrics(y, full_report["cnn"])  # what the report recomputes from predictions.csv
    lo, hi = m["intervals"]["auc"]
    row = next(line for line in md.splitlines() if line.startswith("| AUC |"))
    assert row.split(" | ")[1] == f"{m['auc']:.3f} [{lo:.3f}, {hi:.3f}]"
    assert f"| objects (Ia) | 60 ({y.sum()}) |" in md
    assert "| Brier score before calibration | " in md
    assert "| cross-validated AUC (training set) | - | - | 0.710 |" in md
    # the report's numbers are the confusion matrix's (one source: the predictions)
    summary = full_report["json"]["classifiers"]["CNN"]
    assert summary["at_0.5"]["tp"] == int(np.sum((full_report["cnn"] >= 0.5) & (y == 1)))
    assert summary["brier_uncalibrated"] == pytest.approx(brier_score(y, full_report["raw"]))
    assert summary["intervals"]["resamples"] == 1000


def test_report_provenance_and_definitions(full_report):
    md, prov = full_report["md"], full_report["json"]["provenance"]
    assert "## Provenance" in md and "git commit" in md and "| command | snia report --cnn cnn ... |" in md
    assert "| workflow target | all (snakemake) |" in md
    assert "<details>" in md and "# the workflow config\ntrain:\n  ranks: 2" in md  # complete, collapsed
    assert re.search(r"\| data \(test\) \| test: 60 objects; .*Ia \d+ \(\d+\.\d %\)", md)
    assert "2 data-parallel rank(s) per run (train.ranks)" not in md  # no CNN training runs given
    for key in ("date", "snia_version", "git_commit", "command", "hardware", "config", "datasets"):
        assert prov[key], key
    assert prov["config"]["train"]["members"] == 2 and prov["datasets"]["test"]["objects"] == 60
    assert sum(prov["datasets"]["test"]["class_mix"].values()) == 60
    assert "random forest (rf/random_forest.joblib): max_depth = 12, n_estimators = 200" in md
    assert ("fitted on the training objects and 4 re-observations of each through the schedules of "
            "stores/survey.h5 (read unlabelled)") in md
    assert "**Definitions.**" in md
    for term in ("purity", "completeness", "FoM", "AUC", "thresholds", "intervals", "Brier score"):
        assert f"- **{term}**: " in md, term
    assert "W = 3" in md


def test_report_gives_every_classifier_the_same_section(full_report):
    md, report = full_report["md"], full_report["dir"]
    sections = dict(re.findall(r"\n## ([^\n]+)\n(.*?)(?=\n<a id=|\Z)", md, flags=re.S))
    for label in ("CNN", "CNN ensemble", "random forest"):
        body = sections[label]
        for what in ("ROC (left", "confusion matrices at P(Ia) >= 0.5 and at the best-FoM",
                     "P(Ia) per true type", "reliability diagram"):
            assert what in body, (label, what)
    assert "calibrated" in sections["CNN"] and "before" in sections["CNN"]
    assert "No calibration was fitted" in sections["random forest"]
    assert "feature importance" in sections["random forest"]
    assert "## Mistakes of the CNN" in md and "## Example images" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) >= 16 and all((report / link).stat().st_size > 5000 for link in links)
    assert len(set(links)) == len(links)  # no figure twice (one ROC of all, one per classifier)


def test_report_shows_the_most_confident_mistakes(full_report):
    names, cnn, ids = full_report["names"], full_report["cnn"], full_report["ids"]
    fp = np.flatnonzero((names != "Ia") & (cnn >= 0.5))
    fn = np.flatnonzero((names == "Ia") & (cnn < 0.5))
    expected = {"false_positives": [int(i) for i in ids[fp[np.argsort(-cnn[fp], kind="stable")]][:4]],
                "false_negatives": [int(i) for i in ids[fn[np.argsort(cnn[fn], kind="stable")]][:4]]}
    assert expected["false_positives"] and expected["false_negatives"]
    assert full_report["json"]["provenance"]["mistakes"] == expected
    mistakes = full_report["md"].split("## Mistakes of the CNN")[1]
    assert "the model's image geometry" in mistakes
    assert f"false positives, objects {', '.join(map(str, expected['false_positives']))} (" in mistakes
    for kind in ("false_positives", "false_negatives"):
        assert (full_report["dir"] / "figures" / f"mistakes_{kind}.png").stat().st_size > 20000


def test_report_html_is_self_contained(full_report):
    html = full_report["html"]
    sources = re.findall(r"<img src='([^']*)'", html)
    assert len(sources) == len(re.findall(r"!\[", full_report["md"]))
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert "<caption>Table 1." in html and "<th scope='row'>AUC</th>" in html
    assert "id='provenance'" in html and "id='definitions'" in html and "<details>" in html


def test_report_opens_with_its_answer(full_report):
    """The first section after the title is the comparison table (with its intervals) and the ROC
    of all classifiers; the provenance follows, complete, its rows after the data sets collapsed."""
    from snia.report.write import PROVENANCE_SHOWN

    md, html = full_report["md"], full_report["html"]
    assert re.findall(r"^## (.+)$", md, flags=re.M)[:2] == ["The classifiers side by side",
                                                           "Provenance"]
    first = md.split("\n## ", 2)[1]  # the first section, title to the next section
    assert re.search(r"^\*\*Table 1\. The classifiers on the same test objects .*68 % bootstrap",
                     first.split("\n", 2)[2].lstrip(), flags=re.S)
    assert "| AUC | " in first and "](figures/roc_all.png)" in first
    assert md.index("figures/roc_all.png") < md.index("## Provenance")
    assert re.findall(r"<section id='([^']+)'", html)[:2] == ["results", "provenance"]
    assert html.index("<table class='numbers' id='comparison'>") < html.index("ROC of every classifier") \
        < html.index("<section id='provenance'>")
    assert len(re.findall(r"id='[^']*'", html)) == len(set(re.findall(r"id='[^']*'", html)))  # unique ids
    # the provenance: complete, the first rows shown, the rest under one summary naming them
    prov = md.split("## Provenance", 1)[1].split("\n## ", 1)[0]
    shown, hidden = prov.split("<details>", 1)
    assert len(re.findall(r"^\| (?!:---)", shown, flags=re.M)) == 1 + PROVENANCE_SHOWN  # + header
    assert "| data (test) | test: 60 objects" in shown and "| column 'CNN' |" not in shown
    assert "more rows: column 'CNN', column 'CNN ensemble', column 'random forest', hardware" in hidden
    for row in ("| column 'CNN' | ", "| column 'random forest' | random forest (rf/", "| hardware (this report) | "):
        assert row in hidden, row
    section = html.split("<section id='provenance'>", 1)[1].split("</section>", 1)[0]
    visible = section.split("<details>", 1)[0]
    assert visible.count("<tr><th scope='row'>") == PROVENANCE_SHOWN
    assert section.count("<tr><th scope='row'>") == len(re.findall(r"^\| (?!:---)", prov, flags=re.M)) - 2


def test_report_refuses_a_store_without_the_evaluated_objects(full_report, tmp_path):
    from snia.errors import ConfigError
    from snia.report import write_report

    ids, names = full_report["ids"] + 1000, full_report["names"]
    write_run(tmp_path / "cnn", ids, full_report["cnn"], names)
    with pytest.raises(ConfigError, match=f"test.h5 does not hold the evaluated objects \\(object {ids[0]} "):
        write_report(tmp_path / "report", tmp_path / "cnn", store=full_report["tmp"] / "test.h5", n_resamples=10)
    assert not (tmp_path / "report" / "report.md").exists()


@pytest.fixture
def browser():
    """Skip (saying why) where Chromium, its driver or Selenium is missing; fail there instead
    with SNIA_REQUIRE_BROWSER=1 (CI installs them)."""
    from snia.report import find_chromium

    missing = find_chromium() is None
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing = True
    if missing:
        reason = ("chromium, chromium-driver (apt-get install chromium chromium-driver) or selenium "
                  "(pip install -e '.[test]') missing")
        if os.environ.get("SNIA_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.mark.browser
def test_report_in_a_real_browser(browser, full_report):
    """What a reader sees at 1280 px: the headline table, whole, within the first screen; every
    image decodes, nothing overflows, provenance and definitions are there; the screenshot stays
    in the report folder."""
    from snia.report import SCREENSHOT, check_in_browser, opens_with_its_answer

    shot = full_report["dir"] / SCREENSHOT
    seen = check_in_browser(full_report["dir"] / "report.html", shot, width=1280)
    assert seen["images"] == full_report["html"].count("<img ") and seen["images"] >= 16
    assert seen["broken"] == [] and seen["external"] == []
    assert seen["inner_width"] == 1280 and seen["scroll_width"] <= 1280
    assert seen["first_section"] == "results"
    assert 0 <= seen["headline"]["top"] < seen["headline"]["bottom"] <= seen["inner_height"], seen
    assert opens_with_its_answer(seen)
    assert opens_with_its_answer({**seen, "headline": {"top": 100, "bottom": seen["inner_height"] + 1}}) is False
    assert "git commit" in seen["provenance"] and "60 objects" in seen["provenance"]
    assert "completeness" in seen["definitions"] and "W = 3" in seen["definitions"]
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 50000


def test_report_puts_both_classifiers_side_by_side(tmp_path):
    from snia.report import write_report

    rng = np.random.default_rng(1)
    ids = np.arange(100, 300)
    types = rng.choice(["Ia", "II", "Ibc"], len(ids))
    truth = (types == "Ia").astype(float)
    write_run(tmp_path / "cnn", ids, np.clip(truth * 0.6 + rng.uniform(0, 0.5, len(ids)), 0, 1), types)
    write_run(tmp_path / "rf", ids, rng.uniform(0, 1, len(ids)), types)
    history = tmp_path / "m0" / "history.csv"
    history.parent.mkdir()
    history.write_text("epoch,train_loss,samples_per_s,steps,val_loss,val_auc,lr,seconds\n"
                       "1,0.6,100,5,0.6,0.70,0.001,30\n2,0.5,300,5,0.5,0.80,0.001,90\n")
    md = write_report(tmp_path / "report", tmp_path / "cnn", tmp_path / "rf", history, n_resamples=200).read_text()
    cnn = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    rf = json.loads((tmp_path / "rf" / "metrics.json").read_text())
    assert "|  | CNN | random forest |" in md
    assert f"| AUC | {cnn['auc']:.3f} [" in md and f"] | {rf['auc']:.3f} [" in md
    assert f"| objects (Ia) | 200 ({cnn['n_ia']}) | 200 ({rf['n_ia']}) |" in md
    assert "weighted log-loss" not in md and "before calibration" not in md  # rows only where some column has them
    assert "| m0 | - | 2 | 2.0 | 200 | 0.8000 |" in md  # the training run: epochs, minutes, samples/s
    assert "(200 resamples)" in md
    assert "## Mistakes" not in md  # no store given
    assert (tmp_path / "report" / "figures" / "roc_all.png").stat().st_size > 5000
    html = (tmp_path / "report" / "report.html").read_text()
    assert "<th scope='row'>AUC</th>" in html and "<figure><img src='data:image/png;base64," in html


def test_report_names_the_training_runs_of_an_ensemble(tmp_path):
    from snia.report import write_report

    ids = np.arange(40)
    types = np.array(["Ia", "II"] * 20)
    write_run(tmp_path / "cnn", ids, np.linspace(0, 1, 40), types)
    histories = []
    for k, (seconds, auc) in enumerate(((60, 0.9), (120, 0.95))):
        path = tmp_path / f"m{k}" / "history.csv"
        path.parent.mkdir()
        path.write_text("epoch,train_loss,samples_per_s,steps,val_loss,val_auc,lr,seconds\n"
                        f"1,0.6,100,5,0.6,{auc},0.001,{seconds}\n")
        histories.append(path)
    md = write_report(tmp_path / "report", tmp_path / "cnn", history=histories, n_resamples=100).read_text()
    assert "| m0 | - | 1 | 1.0 | 100 | 0.9000 |" in md and "| m1 | - | 1 | 2.0 | 100 | 0.9500 |" in md
    assert "| all |  | 2 | 3.0 |  |  |" in md
    assert "3.0 min for 2 CNN run(s)" in md
    assert "random forest" not in md.split("## Training")[0]  # no baseline column without a baseline
    assert "roc_all.png" not in md  # one classifier: its own ROC only


def test_report_adds_the_ensemble_a_distilled_cnn_learnt_from(tmp_path):
    from snia.report import write_report

    ids = np.arange(60)
    types = np.array(["Ia", "II", "Ibc"] * 20)
    p_student = np.linspace(0, 1, 60)
    p_ensemble = (types == "Ia") * 0.5 + np.linspace(0, 0.4, 60)  # separates perfectly: AUC 1
    checkpoint = {"run": "student", "path": "model/student/best.pt", "sha256": "ab" * 32, "epoch": 2,
                  "seed": 2, "task": "binary", "kind": "heatmap",
                  "distilled_from": ["m0/best.pt", "m1/best.pt"], "distill_weight": 0.7,
                  "training": {"run": "student", "epochs": 2, "wall_s": 120.0, "samples_per_s": 50.0,
                               "best_val_auc": 0.8}}
    members = [{**checkpoint, "run": f"m{k}", "path": f"model/m{k}/best.pt", "distilled_from": [],
                "training": {**checkpoint["training"], "run": f"m{k}"}} for k in range(2)]
    write_run(tmp_path / "cnn", ids, p_student, types, extra={"provenance": {"checkpoints": [checkpoint]}})
    write_run(tmp_path / "ens", ids, p_ensemble, types, extra={"provenance": {"checkpoints": members}})
    write_run(tmp_path / "rf", ids, p_student[::-1], types)
    md = write_report(tmp_path / "report", tmp_path / "cnn", tmp_path / "rf",
                      ensemble_dir=tmp_path / "ens", n_resamples=100).read_text()
    assert "|  | CNN | CNN ensemble | random forest |" in md
    cnn = json.loads((tmp_path / "cnn" / "metrics.json").read_text())
    assert f"| AUC | {cnn['auc']:.3f} [" in md and "| 1.000 [1.000, 1.000] |" in md
    assert ("| column 'CNN' | student/best.pt (sha256 abababababab, epoch 2, seed 2, binary, heatmap "
            "images; distilled from m0/best.pt, m1/best.pt with weight 0.7) |") in md
    assert "| column 'CNN ensemble' | mean P(Ia) of m0/best.pt" in md
    assert "| student | CNN (distilled from m0, m1) | 2 |" in md and "| m1 | member of the CNN ensemble |" in md
    assert (tmp_path / "report" / "figures" / "roc_all.png").stat().st_size > 5000


def test_predictions_of_a_survey_are_read_as_numbers_not_rows(tmp_path):
    """The report reads predictions.csv into arrays: 50,000 objects back exactly, the peak a few
    numbers an object (17 bytes as arrays; a list of csv rows would be ~400 bytes an object)."""
    import tracemalloc

    from snia.predictions import read_predictions, write_predictions
    from snia.taxonomy import INDEX

    n = 50_000
    rng = np.random.default_rng(0)
    ids = np.arange(10**9, 10**9 + n)
    p = rng.uniform(0, 1, n).round(6)
    types = rng.choice([INDEX["Ia"], INDEX["II"], INDEX["unknown"]], n).astype(np.int8)
    write_predictions(tmp_path / "p.csv", ids, p, types)
    tracemalloc.start()
    try:
        table = read_predictions(tmp_path / "p.csv")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.array_equal(table["object_id"], ids) and np.array_equal(table["type"], types)
    assert np.array_equal(table["p_ia"], p)  # 6 decimals written, the same doubles read
    assert peak < 60 * n, f"{peak / n:.0f} bytes an object"


def test_a_data_set_of_many_files_is_a_count_and_one_digest_in_the_report(tmp_path):
    """A store ingested from 25 light-curve files and a metadata file: the report's data row gives
    26 files, their size and the digest of the manifest beside the store, not 26 names; a store
    ingested before manifests (no record, no file) gets the same digest, computed from its
    provenance, and says there is no manifest beside it."""
    import hashlib

    import h5py

    from snia.ingest import run_ingest
    from snia.provenance import describe_store, inputs_text
    from snia.report import write_report
    from snia.store import Store

    folder = tmp_path / "many"
    folder.mkdir()
    files = []
    for oid in range(1, 26):
        files.append(folder / f"lc_{oid:04d}.csv")
        files[-1].write_text(f"object_id,mjd,passband,flux,flux_err\n{oid},59580.5,1,{oid}.5,1.0\n"
                             f"{oid},59590.5,2,{oid}.25,2.0\n")
    meta = folder / "metadata.csv"
    meta.write_text("object_id,target\n" + "".join(f"{i},{90 if i % 2 else 42}\n" for i in range(1, 26)))
    store = tmp_path / "s.h5"
    run_ingest("plasticc", files, store, [meta], progress=False)
    manifest = tmp_path / "s.manifest.tsv"
    digest = hashlib.sha256(manifest.read_bytes()).hexdigest()
    size = sum(p.stat().st_size for p in [*files, meta])
    described = describe_store(store)
    assert "inputs" not in described  # 26 > LISTED_INPUTS names
    assert described["manifest"] == {"files": 26, "bytes": size, "sha256": digest,
                                     "root": str(folder.resolve()), "file": str(manifest)}
    with Store(store) as s:
        ids, types = s.objects["object_id"], s.objects["type"]
    names = np.array([CLASSES[t] for t in types])
    write_run(tmp_path / "cnn", ids, np.linspace(0.05, 0.95, 25).round(3), names)
    md = write_report(tmp_path / "report", tmp_path / "cnn", store=store).read_text()
    row = next(line for line in md.splitlines() if line.startswith("| data (test) |"))
    assert row.endswith(f"; ingested from 26 files ({size / 1e3:.1f} kB; listed in s.manifest.tsv beside the "
                        f"store, sha256 {digest[:12]}) |"), row
    assert "lc_0001.csv" not in md and len(row) < 300

    with h5py.File(store, "r+") as f:  # as ingested before manifests: no record, no file
        provenance = json.loads(bytes(f.attrs["provenance"]).decode())
        del provenance["manifest"]
        f.attrs["provenance"] = np.bytes_(json.dumps(provenance).encode())
    manifest.unlink()
    old = describe_store(store)
    assert old["manifest"] == {**described["manifest"], "file": None}
    assert inputs_text(old) == (f"26 files ({size / 1e3:.1f} kB; no manifest beside the store, "
                                f"sha256 {digest[:12]})")


def test_evaluate_and_report_from_a_trained_model(tmp_path):
    """`snia evaluate` records the provenance the report shows: the checkpoint (sha256, epoch,
    training), the data set and the image geometry its mistakes are drawn with."""
    pytest.importorskip("torch", reason="PyTorch not installed")
    from snia.cli import main
    from snia.files import sha256_of
    from snia.ingest import run_ingest
    from snia.train import TrainConfig, run_training

    lc, meta, _ = synthetic_plasticc(tmp_path, 40, 31)
    run_ingest("plasticc", [lc], tmp_path / "s.h5", [meta], progress=False)
    cfg = TrainConfig.from_dict({"kind": "bands", "epochs": 1, "batch_size": 8, "val_fraction": 0.3,
                                 "min_epoch_samples": 0,
                                 "raster": {"n_time": 30},
                                 "model": {"channels": [4, 8], "groups": 2, "hidden": 8}})
    run_training(tmp_path / "s.h5", tmp_path / "run", cfg)
    ckpt = tmp_path / "run" / "best.pt"
    assert main(["evaluate", str(tmp_path / "s.h5"), "--checkpoint", str(ckpt), "-o", str(tmp_path / "eval")]) == 0
    m = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    prov = m["provenance"]
    (described,) = prov["checkpoints"]
    assert described["sha256"] == sha256_of(ckpt) and described["run"] == "run"
    assert described["training"]["epochs"] == 1 and described["kind"] == "bands"
    assert prov["store"]["objects"] == 40 and sum(prov["store"]["class_mix"].values()) == 40
    assert prov["image_spec"]["kind"] == "bands" and prov["image_spec"]["n_time"] == 30
    assert prov["command"] and prov["git_commit"] and prov["hardware"]["cores"] >= 1
    assert m["intervals"]["resamples"] == 1000 and len(m["intervals"]["auc"]) == 2
    (tmp_path / "c.yaml").write_text("train: {ranks: 1}\n")
    assert main(["report", "--cnn", str(tmp_path / "eval"), "--store", str(tmp_path / "s.h5"),
                 "--history", str(tmp_path / "run" / "history.csv"), "--config", str(tmp_path / "c.yaml"),
                 "--resamples", "100", "-o", str(tmp_path / "report")]) == 0
    md = (tmp_path / "report" / "report.md").read_text()
    assert f"| column 'CNN' | run/best.pt (sha256 {sha256_of(ckpt)[:12]}, epoch 1" in md
    assert "| run | CNN | 1 |" in md and "1 data-parallel rank(s) per run (train.ranks)" in md
    assert "the model's image geometry" in md  # the mistakes, drawn as the model sees them
    assert "CNN: t-SNE of the penultimate-layer embeddings, coloured by true type: all 40 labelled " in md


def test_scaling_summary_speedup_and_efficiency(tmp_path):
    from snia.scaling import summarize

    rows = [("strong", 1, 64, 100.0), ("strong", 2, 64, 150.0), ("weak", 2, 128, 180.0),
            ("weak", 1, 64, 100.0)]
    files = []
    for mode, world, batch, rate in rows:
        path = tmp_path / f"{mode}_{world}.json"
        path.write_text(json.dumps({"mode": mode, "world_size": world, "global_batch": batch,
                                    "steps": 10, "seconds": 10 * batch / rate,
                                    "samples_per_s": rate, "device": "cpu", "threads_per_rank": 1}))
        files.append(path)
    out = summarize(files, tmp_path / "scaling.csv", plot=tmp_path / "scaling.png")
    assert [(r["mode"], r["world_size"]) for r in out] == [("strong", 1), ("strong", 2),
                                                           ("weak", 1), ("weak", 2)]
    assert out[1]["speedup"] == pytest.approx(1.5) and out[1]["efficiency"] == pytest.approx(0.75)
    assert out[3]["efficiency"] == pytest.approx(0.9)
    with open(tmp_path / "scaling.csv") as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (tmp_path / "scaling.png").stat().st_size > 5000


def test_halves_are_fixed_and_the_report_half_is_scored_at_the_development_threshold():
    """The split depends on the ids alone (any order, any run); the report half's purity and
    completeness are those at the threshold that maximises the FoM on the development half."""
    from snia.metrics import confusion_at, half_metrics, halves, purity_completeness, threshold_curves

    rng = np.random.default_rng(3)
    ids = rng.choice(10**7, 4000, replace=False)
    parts = halves(ids)
    assert abs(parts["report"].mean() - 0.5) < 0.03 and not (parts["report"] & parts["development"]).any()
    order = rng.permutation(4000)
    np.testing.assert_array_equal(halves(ids[order])["report"], parts["report"][order])
    y = rng.integers(0, 2, 4000)
    p = np.clip(0.3 * y + rng.normal(0.35, 0.2, 4000), 0, 1)
    out = half_metrics(y, p, ids)
    dev = parts["development"]
    t, _, _, fom = threshold_curves(y[dev], p[dev])
    assert out["threshold"] == pytest.approx(t[int(np.nanargmax(fom))])
    rep = parts["report"]
    purity, completeness = purity_completeness(confusion_at(y[rep], p[rep], out["threshold"]))
    assert out["report"]["purity"] == pytest.approx(purity)
    assert out["report"]["completeness"] == pytest.approx(completeness)
    assert out["development"]["n"] + out["report"]["n"] == 4000


def test_the_share_table_shows_brier_and_purity_before_and_after_each_half():
    from snia.report.tables import share_table

    def part(brier, purity, completeness):
        return {"brier": brier, "purity": purity, "completeness": completeness}

    share = {"estimated": 0.9092, "labelled": 0.5828,
             "before": {"whole": part(0.1413, 0.781, 0.907), "development": part(0.14, 0.78, 0.9),
                        "report": part(0.142, 0.782, 0.91)},
             "after": {"whole": part(0.3065, 0.613, 0.995), "development": part(0.3, 0.61, 0.99),
                       "report": part(0.31, 0.615, 0.996)}}
    table = share_table("CNN", share)
    assert table.rows[0] == ["validation split's share", "whole", "0.1413", "0.781", "0.907"]
    assert table.rows[3] == ["estimated share 0.909", "whole", "0.3065", "0.613", "0.995"]
    assert [r[1] for r in table.rows] == ["whole", "development", "report"] * 2
    assert "labelled share: 0.583" in table.caption


def test_the_run_summary_is_the_headline_rows_of_the_first_classifier_table(tmp_path):
    from snia.report.summary import summary

    report = tmp_path / "report.md"
    report.write_text("# snia report\n\n| | |\n|:---|:---|\n| generated | now |\n\n"
                      "|  | CNN | random forest |\n|:---|---:|---:|\n| objects (Ia) | 10 (4) | 10 (4) |\n"
                      "| AUC | 0.9 [0.8, 1.0] | 0.8 [0.7, 0.9] |\n| best-FoM threshold | 0.4 | 0.5 |\n\n"
                      "| days | AUC |\n|:---|---:|\n| 0 | 0.7 |\n")
    lines = summary(report).splitlines()
    assert lines[:4] == ["|  | CNN | random forest |", "|:---|---:|---:|",
                         "| objects (Ia) | 10 (4) | 10 (4) |", "| AUC | 0.9 [0.8, 1.0] | 0.8 [0.7, 0.9] |"]
    assert lines[-1] == f"report: {report.resolve()}"


def test_the_reports_bootstraps_log_their_progress(tmp_path, monkeypatch, caplog):
    """Two classifiers, 50 resamples: each one's intervals, its bands and the ROC of both: 300
    resamples, logged as they go where there is no terminal."""
    import logging

    import snia.progress
    from snia.report import write_report

    monkeypatch.setattr(snia.progress, "MIN_SECONDS", 0.0)
    rng = np.random.default_rng(2)
    ids = np.arange(1, 31)
    names = np.array(["Ia" if i % 3 == 0 else "II" for i in ids])
    for name in ("cnn", "rf"):
        write_run(tmp_path / name, ids, rng.uniform(0, 1, 30).round(3), names)
    caplog.set_level(logging.INFO, logger="snia.progress")
    write_report(tmp_path / "report", tmp_path / "cnn", tmp_path / "rf", n_resamples=50)
    lines = [r.getMessage() for r in caplog.records]
    assert lines and lines[-1].startswith("report: bootstrap: 100 % (300 of 300 resamples)"), lines
    caplog.clear()
    write_report(tmp_path / "quiet", tmp_path / "cnn", tmp_path / "rf", n_resamples=50, progress=False)
    assert caplog.records == []
