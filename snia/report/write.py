"""``write_report``: the report folder (report.md, report.html, metrics.json, figures/) from the
classifiers' evaluation folders. It opens with its answer, as papers and dashboards do: the
comparison table with its intervals and the ROC of every classifier first, then the provenance
(complete; its long rows collapsed), one section per classifier, the mistakes, example images,
the architectures and the training runs (``snia.report`` says what each holds; ``sections``
draws them, ``document`` writes them).
"""

from __future__ import annotations

import json
from pathlib import Path

from snia.files import write_text_atomic
from snia.gallery import plot_gallery
from snia.metrics import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
)
from snia.progress import Progress
from snia.provenance import class_mix, command_line, describe_store, environment
from snia.report.columns import DEFINITIONS, comparison_table, load_column
from snia.report.document import (
    ANSWER_SECTION,
    Definitions,
    Figure,
    Section,
    Table,
    html_page,
    markdown_page,
)
from snia.report.sections import (
    architectures_section,
    check_store,
    classifier_section,
    mistakes_section,
    provenance_section,
    roc_all,
    spec_of,
    training_runs,
    training_section,
)
from snia.store import Store

# Provenance rows shown before the rest collapse (when, which snia, command, target, data sets):
# the record stays complete in the page and in metrics.json, without pushing the results down.
PROVENANCE_SHOWN = 6


def write_report(out_dir, cnn_dir, baseline_dir=None, history=None, ensemble_dir=None, *,
                 store=None, train_store=None, config=None, target=None, command=None,
                 compare_csv=None, n_resamples: int = BOOTSTRAP_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED, progress: bool = True) -> Path:
    """report.md, report.html (self-contained), metrics.json and figures/ in ``out_dir``; returns
    the Markdown path. ``ensemble_dir``: the evaluation of the ensemble a distilled CNN learnt
    from; ``store``: the evaluated store (for the mistakes and example images);
    ``train_store``: the CNN's training store (its counts and class mix); ``config``: the
    workflow's configuration file (shown complete); ``target``: the workflow target;
    ``compare_csv``: the architecture comparison (``snia.compare``; its plot beside it);
    ``progress``: of the bootstraps (each classifier's intervals, its bands, the ROC of all), a
    bar on a terminal or log lines (``snia.progress``)."""
    out = Path(out_dir)
    figures = out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    folders = {"CNN": Path(cnn_dir)}
    if ensemble_dir is not None:
        folders["CNN ensemble"] = Path(ensemble_dir)
    if baseline_dir is not None:
        folders["random forest"] = Path(baseline_dir)
    bootstraps = 1 + (2 if len(folders) > 1 else 1)  # intervals, bands (and the ROC of all)
    resamples = Progress(n_resamples * len(folders) * bootstraps, "report: bootstrap",
                         unit="resamples", enabled=progress)
    columns = [load_column(label, folder, n_resamples, seed, resamples)
               for label, folder in folders.items()]
    both = sum(0 < c.y.sum() < len(c.y) for c in columns)  # classifiers with bands: both classes
    resamples.set_total(n_resamples * (len(columns) + both * (bootstraps - 1)))
    if store is not None:
        check_store(columns[0], store)
    if isinstance(history, (str, Path)):
        history = [history]

    env = environment(command if command is not None else command_line())
    datasets = {}
    if store is not None:
        datasets["test"] = describe_store(store)
    elif columns[0].provenance.get("store"):
        datasets["test"] = columns[0].provenance["store"]
    else:
        datasets["test"] = {"name": "predictions.csv of the CNN", "objects": len(columns[0].types),
                            "class_mix": class_mix(columns[0].types)}
    if train_store is not None:
        datasets["CNN training"] = describe_store(train_store)
    for c in columns:
        if c.provenance.get("train_store"):
            datasets[f"{c.label} training"] = c.provenance["train_store"]
    config_text = Path(config).read_text() if config is not None else None
    runs = training_runs(columns, history)
    prov_section, record = provenance_section(columns, runs, env, datasets, config_text, config,
                                              target)

    for block in prov_section.blocks:
        if isinstance(block, Table):
            block.shown = PROVENANCE_SHOWN

    # the answer first: the table with its intervals, the ROC of all, the definitions beside them
    comparison = Section("The classifiers side by side", ANSWER_SECTION,
                         [comparison_table(columns)])
    if len(columns) > 1 and roc_all(columns, figures / "roc_all.png", n_resamples, seed, resamples):
        path = figures / "roc_all.png"
        comparison.blocks.append(Figure(path, "ROC of every classifier on the labelled objects "
                                              "they all scored; shaded: 68 % bootstrap bands."))
    comparison.blocks.append(Definitions(DEFINITIONS))
    sections = [comparison, prov_section]
    sections += [classifier_section(c, figures, n_resamples, seed, key, resamples)
                 for c, key in zip(columns, ("cnn", "ensemble", "forest"))]
    resamples.close()
    if store is not None:
        section, record["mistakes"] = mistakes_section(columns, store, figures)
        sections.append(section)
    gallery = columns[0].folder / "gallery.png"
    if not gallery.exists() and store is not None:
        gallery = figures / "gallery.png"
        with Store(store) as s:
            spec, _ = spec_of(columns[0], s)
        plot_gallery(store, spec, gallery, backend="numpy")
    if gallery.exists():
        sections.append(Section("Example images", "gallery",
                                [Figure(gallery, "Example images per true type, as the CNN sees "
                                                 "them (flux channel).")]))
    if compare_csv is not None:
        sections.append(architectures_section(compare_csv))
    training = training_section(runs, columns)
    if training is not None:
        sections.append(training)

    title = "snia: SN Ia classification report"
    write_text_atomic(out / "report.md", markdown_page(title, sections, out))
    write_text_atomic(out / "report.html", html_page(title, sections))
    write_text_atomic(out / "metrics.json", json.dumps(
        {"provenance": record, "classifiers": {c.label: c.metrics for c in columns}},
        indent=2, default=str))
    return out / "report.md"
