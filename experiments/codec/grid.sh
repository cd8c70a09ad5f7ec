#!/bin/bash
# Leave-one-corpus-out with the descriptors at log floor F (experiments/codec/descriptors.py), the unseen corpus
# as recorded and after an MP3 round trip; the shipped recipe's three modes. Run from the project root:
# bash experiments/codec/grid.sh F >> experiments/codec/results.txt
F=$1
S="meta train=ship seeds=3 w2v=0 prosody=f${F}_clean read_file=_f$F"
run() { echo "== floor $F, $1 | $2"; nice -n 5 .venv/bin/python experiments/travel/loco.py $2 2>&1 | tail -8; }
for T in "as recorded|" "MP3 round trip|test_prosody=f${F}_mp3"; do
  L=${T%%|*}; A=${T#*|}
  run "$L, per speaker / per set" "$S norm=spk_train_corpus_test read=all read_w=0.2 $A"
  run "$L, per speaker / per speaker shrunk, prior 10" "$S norm=spk_train_shrunk_test k=10 read=all read_w=0.2 $A"
  run "$L, lone clip by the read speech's statistics" "$S norm=ref_read ref_file=ship ref_pooled=1 $A"
done
