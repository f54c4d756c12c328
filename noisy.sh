cd /work/main; export PATH=$PWD/.venv/bin:$PATH
while pgrep -f more.sh >/dev/null; do sleep 5; done
for s in st100n; do
  /usr/bin/time -f "$s train %e s" snia train results/stores/plasticc_train.h5 -o /tmp/exp/$s --config /tmp/exp/$s.yaml --no-progress > /tmp/exp/$s.log 2>&1
  snia evaluate results/stores/plasticc_test.h5 --checkpoint /tmp/exp/$s/best.pt -o /tmp/exp/$s/eval >> /tmp/exp/$s.log 2>&1
done
