#!/usr/bin/env bash
# The SPCC check of issue 22's protocol (docs/results.md row 46): train on the SPCC subset's 103
# spectroscopically typed objects, evaluate on the 1,897 others, which are also the survey read
# unlabelled (the GP re-observations' schedules, self-training's light curves). Nothing is chosen
# on it. Run from the repository root after `make run` (it reads data/plasticc/SPCC_SUBSET) with
# the .venv's snia and mpiexec on PATH:
#
#     PATH=$PWD/.venv/bin:$PATH bash bench/spcc_check.sh [OUT]      (default OUT: results/spcc_check)
#
# Writes OUT/{ens,rf0,rf,before/eval,after/eval}/metrics.json: the ensemble of 5, the forest
# without and with 2 re-observed copies, the self-trained student without and with the forest's
# P(Ia) in its survey soft targets (at the weight its re-observed copies choose), each learning 3
# survey light curves per labelled one for 40 epochs (as the workflow). About 12 minutes on 2 cores.
set -euo pipefail
SUBSET=$PWD/data/plasticc/SPCC_SUBSET
D=$(realpath -m "${1:-results/spcc_check}")
[ -d "$SUBSET" ] || { echo "spcc_check: no $SUBSET (run make run first)" >&2; exit 2; }
rm -rf "$D"; mkdir -p "$D/spec" "$D/phot"; cd "$D"
for f in "$SUBSET"/*.DAT; do
  if grep -q "SNTYPE: *-9" "$f"; then ln -s "$f" phot/; else ln -s "$f" spec/; fi; done
ls spec | wc -l; ls phot | wc -l
date
snia ingest spec --format snana-text --split train -o spec.h5 --no-progress
snia ingest phot --format snana-text --split test -o phot.h5 --no-progress
base() { # seed, extra lines
cat <<YAML
train:
  kind: heatmap
  task: binary
  types: []
  epochs: 20
  patience: 5
  batch_size: 64
  lr: 0.002
  seed: $1
  augment:
    redshift_probability: 1.0
  survey: $D/phot.h5
YAML
}
for k in 0 1 2 3 4; do base $k > m$k.yaml; mpiexec -n 2 snia train spec.h5 -o m$k --config m$k.yaml --no-progress > m$k.log 2>&1; done
date
snia gp fit spec.h5 > gp.log 2>&1
snia baseline --train spec.h5 --test phot.h5 --survey phot.h5 --copies 2 -o rf > rf.log 2>&1
snia baseline --train spec.h5 --test phot.h5 -o rf0 > rf0.log 2>&1
date
student() { base 5 | sed 's/epochs: 20/epochs: 40/'; cat <<YAML
  distill:
    teachers: [$D/m0/best.pt, $D/m1/best.pt, $D/m2/best.pt, $D/m3/best.pt, $D/m4/best.pt]
    weight: 1.0
    survey_share: 3.0
    survey_augment: true
YAML
}
student > before.yaml
(student; echo "    survey_predictions: $D/rf/predictions.csv"
 echo "    survey_blend_from: $D/rf/reobserved_predictions.csv") > after.yaml
for s in before after; do mpiexec -n 2 snia train spec.h5 -o $s --config $s.yaml --no-progress > $s.log 2>&1; done
date
snia evaluate phot.h5 --checkpoint m0/best.pt m1/best.pt m2/best.pt m3/best.pt m4/best.pt -o ens > ens.log 2>&1
for s in before after; do snia evaluate phot.h5 --checkpoint $s/best.pt -o $s/eval > $s.eval.log 2>&1; done
date
