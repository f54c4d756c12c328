"""The Snakemake workflow: lint-clean; its config schema types exactly snia's training settings;
the jobs each config makes (dry runs); a real run of ingestion and images on tiny data."""

from __future__ import annotations

import importlib
import itertools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import fields, is_dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import REPO, read_store, synthetic_plasticc

SNAKEMAKE = shutil.which("snakemake", path=os.path.dirname(sys.executable)) or shutil.which("snakemake")
pytestmark = pytest.mark.skipif(SNAKEMAKE is None, reason="snakemake not installed (pip install -e '.[test]')")


def run_snakemake(*args, workdir=None, timeout=300):
    """Snakemake on the repository's Snakefile; ``workdir`` holds its own config/config.yaml."""
    env = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"],
               OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    where = ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir or REPO)]
    return subprocess.run([SNAKEMAKE, *where, *args], cwd=workdir or REPO, capture_output=True,
                          text=True, env=env, timeout=timeout)


def small_config():
    """The small CI config (.test/config/config.yaml), to change and write with write_config."""
    return yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())


def write_config(workdir, config):
    """A workdir of its own config (a --configfile would be merged into the default datasets)."""
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def shell_commands(proc):
    """The shell commands a `--dry-run --printshellcmds` printed."""
    return [line.split("Shell command: ", 1)[1] for line in (proc.stdout + proc.stderr).splitlines()
            if "Shell command: " in line]


def schema():
    return yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def settings_schema():
    return schema()["properties"]["train"]["properties"]["settings"]


def refusal(config):
    """What the schema check that common.smk starts with says about a config; None if it passes."""
    from snakemake.utils import validate

    try:
        validate(config, str(REPO / "workflow" / "schemas" / "config.schema.yaml"))
    except Exception as exc:  # snakemake's WorkflowError, naming the key and the rule broken
        return str(exc)
    return None


def test_lint_reports_nothing():
    proc = run_snakemake("--lint", "text")
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Lints for" not in text, text


def test_default_target_is_the_whole_pipeline():
    # --forceall: every job of the default target, whatever results this checkout already holds
    proc = run_snakemake("--dry-run", "--forceall", "--quiet", "rules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    for rule in ("ingest", "store_info", "image_settings", "rasterize", "train_settings", "train",
                 "evaluate", "evaluate_ensemble", "baseline", "report"):
        assert f"\n{rule} " in text or f"{rule} " in text.split("\n")[0], (rule, text)


def test_bad_config_is_refused_naming_the_key(tmp_path):
    config = small_config()
    config["ingest"]["ranks"] = 0
    write_config(tmp_path, config)
    proc = run_snakemake("--dry-run", workdir=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "ranks" in text and "minimum" in text, text


def test_shipped_configs_pass_the_check():
    for path in (REPO / "config" / "config.yaml", REPO / ".test" / "config" / "config.yaml"):
        assert refusal(yaml.safe_load(path.read_text())) is None, path


@pytest.mark.parametrize("where, key, value", [
    (("settings", "augment"), "redshift_probabilty", 1.0),  # a typo
    (("settings",), "redshift_probability", 1.0),  # the flat shape of old: now under augment
    (("settings", "raster"), "n_times", 60),
    (("settings", "raster"), "kind", "bands"),  # the kind is a setting of its own
    (("settings", "model"), "in_channels", 2),  # derived from the images, not a setting
    (("settings", "model"), "n_scalars", 3),  # derived from the per-object inputs
    ((), "distil", 1.0),  # the old spelling
])
def test_unknown_training_setting_is_refused(where, key, value):
    config = small_config()
    section = config["train"]
    for name in where:
        section = section.setdefault(name, {})
    section[key] = value
    assert f"'{key}' was unexpected" in (refusal(config) or "")


@pytest.mark.parametrize("key, value", [
    ("epochs", 0), ("kind", "image"), ("task", "ia"), ("types", ["Ia", "SNII"]),
    ("val_fraction", 1.0), ("lr", "1e-3"),  # YAML reads 1e-3 as a string (1.0e-3 is a number)
    ("backend", "gpu"), ("augment", {"redshift_probability": 1.5}),
    ("raster", {"reference": "max"}), ("model", {"dropout": 1.0}),
])
def test_bad_training_setting_value_is_refused(key, value):
    config = small_config()
    config["train"]["settings"][key] = value
    text = refusal(config) or ""
    assert "ValidationError" in text and f"['{key}']" in text, text


def test_every_declared_log_is_written():
    """A rule's `log:` names a file the rule writes: its shell redirects to {log}, or its script
    writes snakemake.log (a `use rule` inherits one or the other)."""
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule |use rule )", smk.read_text()):
            if "    log:" not in block or block.startswith("use rule"):
                continue
            name = block.split(":", 1)[0]
            if "    shell:" in block:
                assert "{log}" in block.split("    shell:", 1)[1], (smk.name, name)
            else:
                script = re.search(r'script:\s*"\.\./scripts/([\w.]+)"', block).group(1)
                text = (REPO / "workflow" / "scripts" / script).read_text()
                assert "snakemake.log[0]" in text, (smk.name, name, script)


def test_shipped_config_restates_only_training_defaults():
    """config/config.yaml shows the main training settings to its reader, and each it gives is
    TrainConfig's default: the model the workflow trains is the one `snia train` trains without a
    config (geometry and network left out: RasterSpec's and CNNConfig's defaults)."""
    from snia.train import TrainConfig

    settings = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]["settings"]
    assert "raster" not in settings and "model" not in settings
    assert TrainConfig.from_dict(settings).to_dict() == TrainConfig().to_dict()


def test_config_settings_are_training_settings():
    """The settings the shipped configs give, and those the workflow adds for the distilled
    model, are read by TrainConfig as they stand."""
    from snia.train import TrainConfig

    for path in (REPO / "config" / "config.yaml", REPO / ".test" / "config" / "config.yaml"):
        settings = yaml.safe_load(path.read_text())["train"]["settings"]
        TrainConfig.from_dict(settings)
        cfg = TrainConfig.from_dict({**settings, "distill": {"teachers": ["m0/best.pt"],
                                                             "weight": 0.7}})
        assert cfg.distill.teachers == ["m0/best.pt"] and cfg.distill.weight == 0.7


@pytest.mark.parametrize("section, dataclass, not_settings", [
    (None, "snia.train.TrainConfig", ()),
    ("augment", "snia.augment.AugmentConfig", ()),
    ("raster", "snia.raster.RasterSpec", ("kind", "bands", "wavelengths")),  # not geometry
])
def test_settings_schema_types_exactly_the_training_settings(section, dataclass, not_settings):
    """The schema knows every training setting and no other: a key it lacks is refused when the
    workflow starts, and a key the dataclass lacks would only fail when the train job starts."""
    module, name = dataclass.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), name)
    part = settings_schema() if section is None else settings_schema()["properties"][section]
    assert part["additionalProperties"] is False
    assert set(part["properties"]) == {f.name for f in fields(cls)} - set(not_settings)


def test_settings_schema_model_is_every_archs_settings():
    """The model section: an arch and the settings of every arch (less what follows from the data
    and the arch), so no arch's key is refused when the workflow starts."""
    from snia.models.registry import ARCHS, DERIVED_FIELDS, config_class

    part = settings_schema()["properties"]["model"]
    assert part["additionalProperties"] is False
    settings = {f.name for arch in ARCHS for f in fields(config_class(arch))}
    assert set(part["properties"]) == settings - set(DERIVED_FIELDS) | {"arch"}
    assert tuple(part["properties"]["arch"]["enum"]) == ARCHS


def test_settings_schema_distill_is_the_training_settings_distill():
    from snia.train import TrainConfig

    distill = TrainConfig().distill
    keys = {f.name for f in fields(distill)} if is_dataclass(distill) else set(distill)
    part = settings_schema()["properties"]["distill"]
    assert part["additionalProperties"] is False
    # what train.smk writes
    assert set(part["properties"]) == keys == {"teachers", "weight", "survey_share", "survey_augment",
                                               "survey_predictions", "survey_blend",
                                               "survey_blend_from"}


def test_schema_kinds_are_the_raster_kinds():
    from snia.raster import KINDS

    assert tuple(schema()["properties"]["images"]["properties"]["kinds"]["items"]["enum"]) == KINDS
    assert tuple(settings_schema()["properties"]["kind"]["enum"]) == KINDS


def test_schema_names_are_snias_names():
    from snia.raster import BACKENDS, REFERENCES
    from snia.taxonomy import CLASSES
    from snia.train import TASKS

    settings = settings_schema()["properties"]
    assert tuple(settings["task"]["enum"]) == TASKS
    assert tuple(settings["types"]["items"]["enum"]) == tuple(c for c in CLASSES if c != "unknown")
    assert tuple(settings["backend"]["enum"]) == ("auto",) + BACKENDS
    assert tuple(schema()["properties"]["images"]["properties"]["backend"]["enum"]) == (
        ("auto",) + BACKENDS)
    assert tuple(settings["raster"]["properties"]["reference"]["enum"]) == REFERENCES


def test_run_settings_files(tmp_path):
    """What each training run and the image files get: the members their seeds, the distilled
    model its teachers and weight, the images the model's geometry."""
    from snia.train import TrainConfig

    config = small_config()
    config["train"]["settings"]["raster"] = {"n_time": 90}
    config["train"]["redshift_target"] = None  # its quantiles need a store: tested below
    write_config(tmp_path, config)
    targets = ["results/model/m1/settings.yaml", "results/model/student/settings.yaml",
               "results/images/settings.yaml"]
    proc = run_snakemake("--cores", "1", *targets, workdir=tmp_path)  # no inputs: only these
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = [yaml.safe_load((tmp_path / target).read_text()) for target in targets]
    # every run names the survey (train.survey); the student self-trains on it (Noisy Student)
    settings = {**config["train"]["settings"], "survey": "results/stores/plasticc_test.h5"}
    assert written[0] == {"train": {**settings, "seed": 1}}
    # the student: its own epochs (train.student_epochs); the forest's P(Ia) on the survey joins
    # the members' (train.survey_forest) at the weight its re-observed copies choose (auto)
    assert written[1] == {"train": {**settings, "seed": 2, "epochs": 3, "distill": {
        "teachers": ["results/model/m0/best.pt", "results/model/m1/best.pt"], "weight": 0.7,
        "survey_share": 0.5, "survey_augment": True,
        "survey_predictions": "results/baseline/predictions.csv",
        "survey_blend_from": "results/baseline/reobserved_predictions.csv"}}}
    # the model's geometry: the keys it gives (the others keep RasterSpec's defaults in both)
    assert written[2] == {"raster": TrainConfig.from_dict(settings).raster} == {"raster": {"n_time": 90}}
    # the script rules write the logs they declare
    logs = tmp_path / "results" / "logs"
    assert "seed 1" in (logs / "train_settings_m1.log").read_text()
    assert "seed 2" in (logs / "train_settings_student.log").read_text()
    assert "{'n_time': 90}" in (logs / "image_settings.log").read_text()


def test_distill_in_the_settings_is_refused(tmp_path):
    config = small_config()
    config["train"]["settings"]["distill"] = {"weight": 0.5}
    write_config(tmp_path, config)
    proc = run_snakemake("--dry-run", workdir=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "train.settings.distill" in text, text[-3000:]


def test_every_evaluate_dataset_is_evaluated(tmp_path):
    config = small_config()
    config["evaluate"]["datasets"] = ["plasticc_test", "spcc"]
    write_config(tmp_path, config)
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    evaluations = [c for c in shell_commands(proc)
                   if "snia evaluate" in c and "results/compare/" not in c]
    assert len(evaluations) == 4, evaluations  # the distilled model and the ensemble on each
    for name in ("plasticc_test", "spcc"):
        for sub in ("", "/ensemble"):
            assert any(f" -o results/evaluate/{name}{sub} " in c for c in evaluations), evaluations


@pytest.mark.parametrize("section, key, value, named", [
    ("report", "dataset", "spcc", "report.dataset"),  # not evaluated
    ("baseline", "test", "spcc", "baseline.test"),  # the report would compare two datasets
    ("evaluate", "datasets", ["plasticc_test", "nowhere"], "evaluate.datasets"),
    # train.survey_forest: auto chooses its weight on the forest's re-observed copies
    ("baseline", "copies", 0, "train.survey_forest: auto needs"),
    ("baseline", "survey", None, "train.survey_forest: auto needs"),
])
def test_datasets_that_do_not_fit_are_refused_naming_the_key(tmp_path, section, key, value, named):
    config = small_config()
    config[section][key] = value
    write_config(tmp_path, config)
    proc = run_snakemake("--dry-run", workdir=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and named in text, text[-3000:]


@pytest.mark.parametrize("distill", [0.7, 0])
def test_distillation_adds_a_student_trained_after_the_members(tmp_path, distill):
    config = small_config()
    config["train"].update(members=3, distill=distill,
                           self_training=config["train"]["self_training"] if distill else 0,
                           survey_forest=config["train"]["survey_forest"] if distill else 0)
    write_config(tmp_path, config)
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = shell_commands(proc)
    trains = [c for c in commands if "snia train " in c and "-o results/model/" in c]
    baseline = [c for c in commands if "snia baseline " in c]
    # the forest: fitted with re-observed copies (baseline.survey), from the training store's fits
    assert len(baseline) == 1 and "--survey results/stores/plasticc_test.h5 --copies 1" in baseline[0]
    assert any("snia gp fit results/stores/plasticc_train.h5" in c for c in commands)
    if distill:  # the student after the forest, whose P(Ia) it learns on the survey
        assert commands.index(baseline[0]) < commands.index(trains[-1])
    evaluations = [c for c in commands if "snia evaluate" in c and "results/compare/" not in c]
    members = ["results/model/m0/best.pt", "results/model/m1/best.pt", "results/model/m2/best.pt"]
    if distill:
        assert len(trains) == 4 and "-o results/model/student " in trains[-1]  # last: after m0-m2
        assert any("--checkpoint results/model/student/best.pt -o results/evaluate/plasticc_test "
                   in c for c in evaluations), evaluations
        assert any("--checkpoint " + " ".join(members) + " -o results/evaluate/plasticc_test/ensemble"
                   in c for c in evaluations), evaluations
    else:
        assert len(trains) == 3 and not any("student" in c for c in commands)
        assert len(evaluations) == 1 and " ".join(members) in evaluations[0]


def test_redshift_target_quantiles_join_every_runs_settings(tmp_path):
    """train.redshift_target: the dataset's photo-z quantiles are written once (`snia store
    redshifts`) and join the augment settings of every run, the compared models' too."""
    config = small_config()
    config["train"]["redshift_target"] = "plasticc_test"
    config["compare"]["models"] = {"gru": {"arch": "gru"}}
    write_config(tmp_path, config)
    (tmp_path / "results" / "model").mkdir(parents=True)
    quantiles = {"augment": {"redshift_quantiles": [0.05, 0.3, 0.6, 1.5]}}
    (tmp_path / "results" / "model" / "redshift_target.yaml").write_text(yaml.safe_dump(quantiles))
    targets = ["results/model/m0/settings.yaml", "results/model/student/settings.yaml",
               "results/compare/gru/settings.yaml"]
    proc = run_snakemake("--cores", "1", *targets, workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for target in targets:
        augment = yaml.safe_load((tmp_path / target).read_text())["train"]["augment"]
        assert augment == {**config["train"]["settings"].get("augment", {}),
                           **quantiles["augment"]}, target
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert ("snia store redshifts results/stores/plasticc_test.h5 -o "
            "results/model/redshift_target.yaml" in " ".join(shell_commands(proc)))
    config["train"]["settings"]["augment"] = {"redshift_quantiles": [0.1, 0.5]}
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake("--dry-run", workdir=tmp_path)
    assert proc.returncode != 0 and "not both" in proc.stdout + proc.stderr
    config["train"]["settings"]["augment"] = {}
    config["train"]["redshift_target"] = "no_such_survey"
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = run_snakemake("--dry-run", workdir=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "train.redshift_target names ['no_such_survey']" in text, text


def test_compare_trains_and_evaluates_each_model_then_times_them_together(tmp_path):
    """compare.models: each model's settings are train.settings with that model ({}: the
    shipped one) and compare.epochs; each trains, is evaluated on report.dataset, and one
    `snia compare` job puts them together; the report shows its table."""
    config = small_config()
    config["train"]["redshift_target"] = None
    write_config(tmp_path, config)
    written = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    names = list(written["compare"]["models"])  # in the order of the file (write_config sorts)
    targets = [f"results/compare/{name}/settings.yaml" for name in names]
    proc = run_snakemake("--cores", "1", *targets, workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    settings = {**config["train"]["settings"], "survey": "results/stores/plasticc_test.h5"}
    for name, target in zip(names, targets):
        model = config["compare"]["models"][name] or settings["model"]
        assert yaml.safe_load((tmp_path / target).read_text()) == {
            "train": {**settings, "model": model, "epochs": config["compare"]["epochs"]}}
    # not part of the default target (the main job): its own, `snakemake compare`
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not any("compare" in c for c in shell_commands(proc))
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", "compare", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = shell_commands(proc)
    for name in names:
        assert sum(f"-o results/compare/{name} --config results/compare/{name}/settings.yaml" in c
                   and "snia train" in c for c in commands) == 1, (name, commands)
        assert sum(f"--checkpoint results/compare/{name}/best.pt -o results/compare/{name}/"
                   "evaluate" in c and "results/stores/plasticc_test.h5" in c
                   for c in commands) == 1, (name, commands)
    runs = " ".join(f"results/compare/{name}" for name in names)
    assert sum(f"snia compare {runs} --store results/stores/plasticc_test.h5" in c
               for c in commands) == 1, commands
    # once the comparison exists, the report (of the default target) includes its table
    (tmp_path / "results" / "compare").mkdir(parents=True, exist_ok=True)
    (tmp_path / "results" / "compare" / "compare.csv").write_text("model\n")
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert any("snia report" in c and "--compare results/compare/compare.csv" in c
               for c in shell_commands(proc)), shell_commands(proc)


def test_no_compare_models_no_comparison(tmp_path):
    config = small_config()
    config["compare"]["models"] = {}
    write_config(tmp_path, config)
    proc = run_snakemake("--dry-run", "--forceall", "--printshellcmds", workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    commands = shell_commands(proc)
    assert not any("compare" in c for c in commands), commands
    assert any("snia report" in c for c in commands)


def test_compare_model_settings_are_checked_like_training_settings(tmp_path):
    config = small_config()
    config["compare"]["models"]["resnet"]["depth"] = 50  # resnet's setting is `blocks`
    write_config(tmp_path, config)
    proc = run_snakemake("--dry-run", workdir=tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "depth" in text, text[-3000:]


@pytest.mark.mpi
def test_ingest_rule_builds_a_verified_store(tmp_path, mpirun):
    lc, meta, expected = synthetic_plasticc(tmp_path, 30, 3)
    config = small_config()
    config.update({"data_dir": str(tmp_path), "results_dir": str(tmp_path / "results"),
                   "subset": 0, "ingest": {"ranks": 2, "on_error": "fail", "chunk_mb": 0.001},
                   "images": {"datasets": ["tiny"], "kinds": ["bands", "heatmap"],
                              "backend": "cpu", "batch_size": 8},
                   "datasets": {"tiny": {"format": "plasticc", "inputs": [lc.name],
                                         "metadata": [meta.name], "split": "train"}}})
    config["train"]["dataset"] = config["report"]["dataset"] = "tiny"
    config["train"]["redshift_target"] = None  # the only dataset is the training set
    config["train"].update(survey=None, self_training=0, survey_forest=0)  # likewise
    config["evaluate"]["datasets"] = ["tiny"]
    config["baseline"].update(train="tiny", test="tiny", survey=None)
    config["train"]["settings"]["raster"] = {"n_time": 45, "n_wave": 8}  # the images' geometry
    write_config(tmp_path, config)
    results = tmp_path / "results"
    targets = [f"{results}/stores/tiny.info.txt", f"{results}/images/tiny.bands.h5",
               f"{results}/images/tiny.heatmap.h5"]
    proc = run_snakemake("--profile", str(REPO / "cluster" / "local"), *targets, workdir=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    store = read_store(tmp_path / "results" / "stores" / "tiny.h5")
    assert list(store["objects/object_id"]) == list(expected)
    np.testing.assert_array_equal(store["observations/time"],
                                  np.concatenate([e["time"] for e in expected.values()]))
    info = (tmp_path / "results" / "stores" / "tiny.info.txt").read_text()
    assert "tiny.h5: OK" in info and "objects       30" in info
    assert "2 rank(s)" in (tmp_path / "results" / "logs" / "ingest_tiny.log").read_text()
    import h5py

    for kind, shape in (("bands", (30, 3, 6, 45)), ("heatmap", (30, 2, 8, 45))):
        with h5py.File(tmp_path / "results" / "images" / f"tiny.{kind}.h5", "r") as f:
            assert f["images"].shape == shape and list(f["object_id"][...]) == list(expected)


def profile_check(capsys, profile, workdir, *targets, sbatch_test=False):
    """`snia profile check` of a profile on a workdir's config: (exit code, {job: its lines})."""
    from snia.cli.profile import check

    code = check(profile, ["--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
                           *targets], sbatch_test=sbatch_test)
    jobs, name = {}, None
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("  "):
            jobs[name].append(line.strip())
        elif ": " in line:
            name, call = line.split(": ", 1)
            jobs[name] = [call]
    return code, jobs


def flags(call: str) -> set:
    return set(call.split())


def multinode_profile(tmp_path, nodes: int, gres: str):
    """The shipped SLURM profile, its trainings on `nodes` nodes of `gres` GPUs each."""
    profile = yaml.safe_load((REPO / "cluster" / "slurm" / "config.yaml").read_text())
    for rule in ("train", "compare_train"):
        profile["set-resources"][rule].update(nodes=nodes, gres=gres)
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    return tmp_path / "profile"


def eight_ranks_on_two_nodes(workdir):
    """The small config with 8 training ranks and strong scaling to 8, and the shipped profile
    for 2 nodes x 4 GPUs: (config, profile folder), both written under workdir."""
    config = small_config()
    config["train"]["ranks"] = 8
    config["scaling"]["ranks"] = [1, 2, 4, 8]
    config["scaling"]["modes"] = ["strong"]
    write_config(workdir, config)
    return config, multinode_profile(workdir, 2, "gpu:a100:4")


def test_the_shipped_slurm_profile_passes_its_check(capsys):
    code, jobs = profile_check(capsys, REPO / "cluster" / "slurm", REPO, "all", "scaling")
    assert code == 0, jobs
    train = flags(jobs["train[run=m0]"][0])
    ranks = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]["ranks"]
    assert {"--nodes=1", f"--gres=gpu:a100:{ranks}", f"--ntasks={ranks}",
            "--ntasks-per-gpu=1", "--cpus-per-gpu=8"} <= train


def test_slurm_jobs_for_2_nodes_of_4_gpus(tmp_path, capsys):
    """The sbatch calls of a 2 nodes x 4 GPUs setup, as the SLURM plugin makes them from the
    profile and the config (a dry run: SLURM's own --test-only where a GPU cluster is at hand)."""
    config, profile = eight_ranks_on_two_nodes(tmp_path)
    code, jobs = profile_check(capsys, profile, tmp_path, "all", "scaling")
    assert code == 0, jobs
    # 8 ranks, one per GPU, 4 GPUs on each of 2 nodes, 8 cores per rank
    assert {"--nodes=2", "--gres=gpu:a100:4", "--ntasks=8", "--ntasks-per-gpu=1",
            "--cpus-per-gpu=8", "-p", "gpu"} <= flags(jobs["train[run=m0]"][0])
    expected = {1: (1, 1), 2: (1, 2), 4: (1, 4), 8: (2, 4)}  # ranks: (nodes, GPUs per node)
    for ranks, (nodes, per_node) in expected.items():
        call = flags(jobs[f"scaling_run[mode=strong, ranks={ranks}]"][0])
        assert {f"--nodes={nodes}", f"--gres=gpu:a100:{per_node}", "--ntasks-per-gpu=1"} <= call
        assert (f"--ntasks={ranks}" in call) == (ranks > 1)  # one rank: no MPI job, no srun -n
    # a geometry that does not add up is named: 6 ranks on 2 nodes x 4 GPUs
    config["train"]["ranks"] = 6
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    code, jobs = profile_check(capsys, profile, tmp_path, "all")
    assert code == 1
    assert "problem: 6 ranks on 2 node(s) x 4 GPU(s)" in jobs["train[run=m0]"][1]


def test_gpu_job_problems_are_named():
    from snia.cli.profile import Job, gpus_per_node, parse_dry_run, problems

    text = ("rule train:\n    wildcards: run=m0\n    resources: tmpdir=/tmp, mem=32 GB, nodes=2, "
            "gres=gpu:h100:4, tasks=8, tasks_per_gpu=1, cpus_per_gpu=16, mpi=srun\nShell command: x\n"
            "localrule all:\n    input: a\n")
    train, everything = parse_dry_run(text)
    assert (train.name, everything.name) == ("train[run=m0]", "all")
    assert train.resources["gres"] == "gpu:h100:4" and train.resources["tasks"] == 8
    assert gpus_per_node(train.resources) == 4 and problems(train) == []
    assert gpus_per_node({"gpu": 8, "nodes": 2}) == 4 and gpus_per_node({"mem_mb": 1}) is None
    r = train.resources
    assert problems(Job("t", resources={**r, "gpu": 4}))[0].startswith("both gres and gpu")
    assert "tasks_per_gpu must be 1" in problems(Job("t", resources={**r, "tasks_per_gpu": 2}))[0]
    assert "no cpus_per_gpu" in problems(Job("t", resources={**r, "cpus_per_gpu": 0}))[0]
    assert "does not split evenly" in problems(Job("t", resources={"gpu": 3, "nodes": 2}))[0]


def sbatch_options(script) -> dict:
    """The #SBATCH options of a batch script."""
    return dict(line.split(None, 1)[1].lstrip("-").split("=", 1) for line in script.read_text().splitlines()
                if line.startswith("#SBATCH "))


def test_train_ddp_sbatch_for_2_nodes_of_4_gpus(tmp_path):
    """The multi-node batch script, run with stand-ins for srun and scontrol in a 2 nodes x 4 GPUs
    job's environment: one torchrun per node, 4 ranks each, meeting on the job's first node."""
    script = REPO / "cluster" / "sbatch" / "train_ddp.sbatch"
    options = sbatch_options(script)
    assert (options["nodes"], options["gpus-per-node"], options["ntasks-per-node"]) == ("2", "4", "1")
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text('#!/bin/sh\necho "$@" > "$SRUN_ARGS"\n')
    # scontrol's host list, from snia's own parse of the node list (tested against hand-written hosts)
    hosts = "import sys; from snia.parallel import expand_nodelist as e; print(*e(sys.argv[3]), sep=chr(10))"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\nexec {sys.executable} -c "{hosts}" "$@"\n')
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(REPO),
               SRUN_ARGS=str(tmp_path / "srun.txt"), SLURM_JOB_NODELIST="gpu[07-08]", SLURM_NNODES="2",
               SLURM_GPUS_PER_NODE="a100:4", SLURM_JOB_ID="81234", SLURM_SUBMIT_DIR=str(REPO),
               VIRTUAL_ENV="set")
    done = subprocess.run(["bash", str(script), "store.h5", "run"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    args = (tmp_path / "srun.txt").read_text().split()
    # port by hand: 20000 + 81234 x 64 % 12000 = 20000 + 5,198,976 % 12000 = 22976
    assert {"--ntasks-per-node=1", "torchrun", "--nnodes=2", "--nproc-per-node=4",
            "--rdzv-endpoint=gpu07:22976", "--rdzv-id=81234"} <= set(args)
    assert args[args.index("--no-python") + 1:] == ["snia", "train", "store.h5", "-o", "run", "--no-progress"]


def two_gpu_nodes() -> bool:
    """CI's SLURM cluster is up (.ci/slurm-up.sh) with its partition `gpu`: two node names of
    4 a100 GPUs (stand-ins) and 32 cores each, on this one host."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        return False
    done = subprocess.run([sinfo, "-h", "-p", "gpu", "-o", "%D %G %c"], capture_output=True, text=True,
                          timeout=30)
    return done.returncode == 0 and done.stdout.split() == ["2", "gpu:a100:4", "32"]


on_two_gpu_nodes = pytest.mark.skipif(
    os.environ.get("SNIA_REQUIRE_SLURM") != "1" and not two_gpu_nodes(),
    reason="no SLURM cluster with .ci/slurm-up.sh's 2-node partition 'gpu' here")


@pytest.mark.slurm
@on_two_gpu_nodes
def test_sbatch_test_only_accepts_every_gpu_job_for_2_nodes_of_4_gpus(tmp_path, capsys):
    """SLURM itself (sbatch --test-only against a 2 nodes x 4 GPUs partition) accepts every GPU
    job the shipped profile makes for 8 ranks on 2 nodes, and refuses 12 ranks on 3 nodes."""
    assert two_gpu_nodes()
    config, profile = eight_ranks_on_two_nodes(tmp_path)
    code, jobs = profile_check(capsys, profile, tmp_path, "all", "scaling", sbatch_test=True)
    assert code == 0, jobs
    assert {"train[run=m0]", "scaling_run[mode=strong, ranks=8]"} <= set(jobs)
    config["train"]["ranks"] = 12
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "three").mkdir()
    profile = multinode_profile(tmp_path / "three", 3, "gpu:a100:4")
    code, jobs = profile_check(capsys, profile, tmp_path, "all", sbatch_test=True)
    assert code == 1
    assert jobs["train[run=m0]"][1:] == ["problem: sbatch --test-only: allocation failure: Requested "
                                         "node configuration is not available"]
    # the multi-node batch script as shipped (2 nodes x 4 GPUs x 32 cores per node)
    done = subprocess.run(["sbatch", "--test-only", "-p", "gpu",
                           str(REPO / "cluster" / "sbatch" / "train_ddp.sbatch"), "s.h5", "run"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "using 64 processors on nodes gpu[1-2]" in done.stderr, done.stderr


def sbatch_wait(tmp_path, *args) -> str:
    """Submit a job to the partition `gpu` (this Python's environment), wait for it, return its
    log; a failed job fails the test with the log's end."""
    log = tmp_path / f"job-{len(list(tmp_path.glob('job-*.log')))}.log"
    env = dict(os.environ, VIRTUAL_ENV=str(Path(sys.executable).parents[1]),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run(["sbatch", "--wait", "-p", "gpu", "--cpus-per-task=1", "--mem=3000",
                           f"--chdir={REPO}", f"--output={log}", *args], env=env,
                          capture_output=True, text=True, timeout=600)
    text = log.read_text() if log.exists() else ""
    assert done.returncode == 0, (done.stderr, text[-3000:])
    return text


@pytest.mark.slurm
@on_two_gpu_nodes
def test_a_job_on_two_slurm_nodes_trains_like_one_rank(tmp_path):
    """Ranks on two SLURM nodes (two node names of one host: their own slurmd each) meet at the
    job's first node and train the model one rank trains: the shipped batch script (srun starts
    a torchrun per node, c10d rendezvous) and srun starting snia itself (rendezvous from the
    step's node list)."""
    import torch

    from snia.ingest import run_ingest

    lc, meta, _ = synthetic_plasticc(tmp_path, 48, 21)
    store = tmp_path / "s.h5"
    run_ingest("plasticc", [lc], store, [meta], progress=False)
    settings = tmp_path / "settings.yaml"
    settings.write_text(yaml.safe_dump({"train": {
        "kind": "bands", "epochs": 2, "batch_size": 8, "val_fraction": 0.25, "min_epoch_samples": 0,
        "model": {"channels": [4, 8], "groups": 2, "hidden": 8, "dropout": 0.2}}}))
    one = subprocess.run([sys.executable, "-m", "snia", "train", str(store), "-o", str(tmp_path / "one"),
                          "--config", str(settings), "--no-progress"], capture_output=True, text=True,
                         timeout=300)
    assert one.returncode == 0, one.stderr
    ddp = sbatch_wait(tmp_path, "--gpus-per-node=1", str(REPO / "cluster" / "sbatch" / "train_ddp.sbatch"),
                      str(store), str(tmp_path / "ddp"), "--config", str(settings))
    assert re.search(r"snia DDP: 2 node\(s\) x 1 GPU\(s\), rendezvous gpu1:\d+", ddp), ddp
    srun = sbatch_wait(tmp_path, "--nodes=2", "--ntasks-per-node=1", "--wrap",
                       f"srun bash -c 'echo on $SLURMD_NODENAME; exec {sys.executable} -m snia train "
                       f"{store} -o {tmp_path / 'srun'} --config {settings} --no-progress'")
    assert sorted(re.findall(r"^on (gpu\d)$", srun, re.M)) == ["gpu1", "gpu2"], srun
    assert "rank 1 of 2 (started by srun)" in srun
    expected = torch.load(tmp_path / "one" / "checkpoint.pt", weights_only=True)["model"]
    for run in ("ddp", "srun"):
        got = torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["model"]
        for name, value in expected.items():  # summation order differs with the threads: 1e-5
            np.testing.assert_allclose(got[name].numpy(), value.numpy(), rtol=0, atol=1e-5,
                                       err_msg=f"{run}: {name}")


def test_the_profiles_gpu_training_keys_each_say_what_they_do():
    """Every key of the multi-node rules in the SLURM profile carries its comment (a site edits
    them: what each counts, per node or per job, must be on its line)."""
    lines = (REPO / "cluster" / "slurm" / "config.yaml").read_text().splitlines()
    for rule in ("train", "compare_train", "scaling_run"):
        start = lines.index(f"  {rule}:") + 1
        block = list(itertools.takewhile(lambda x: x.startswith("    "), lines[start:]))
        keys = [line for line in block if not line.strip().startswith("#")]
        assert {"nodes", "gres", "tasks_per_gpu", "cpus_per_gpu"} <= {k.split(":")[0].strip() for k in keys}
        assert all("#" in line for line in keys), (rule, [k for k in keys if "#" not in k])
