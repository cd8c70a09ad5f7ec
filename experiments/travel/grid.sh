#!/bin/bash
# The methods table of docs/travel.md: leave-one-corpus-out on cached features, 3 seeds each.
# Needs runs/travel/feats_{small,ravft}.pt (extract.py), prosody2.pt (descriptors.py), prosody2_aug.pt (augdesc.py).
# The read-speech rows need runs/travel/read_desc.pt and read_desc_all.pt (read_speech.py, read_speech.py all).
# openSMILE rows also need runs/travel/smile_{egemaps,compare}.pt (smile.py).
# On a fresh checkout without feats_small.pt, the descriptor rows (w2v=0) need only the clip list:
# python experiments/travel/meta.py writes runs/travel/feats_meta.pt (the rows' FEATS name `meta`).
# Run from the project root: bash experiments/travel/grid.sh > experiments/travel/results/methods.txt
# (bash experiments/travel/grid.sh --from N >> ...: only the rows from the N-th on, counting from 1)
S="train=ship seeds=3"
FROM=1; [ "$1" = --from ] && FROM=$2
ROW=0
run() { ROW=$((ROW + 1)); [ $ROW -lt "$FROM" ] && return; echo "== $1 | $2"
        .venv/bin/python experiments/travel/loco.py $2 2>&1 | tail -8; }
run "w2v2 pretrained:small, global standardisation" "small $S norm=global"
run "w2v2 pretrained:small, per speaker / per set" "small $S norm=spk_train_corpus_test"
run "w2v2 RAVDESS-fine-tuned backbone, per speaker / per set" "ravft $S norm=spk_train_corpus_test"
run "descriptors, global standardisation (a lone clip)" "small $S w2v=0 prosody=2 norm=global"
run "descriptors, per corpus / per set" "small $S w2v=0 prosody=2 norm=corpus"
run "descriptors, per speaker / per set (chosen)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test"
run "descriptors, per speaker / per speaker (speakers known)" "small $S w2v=0 prosody=2 norm=speaker"
run "descriptors, per speaker / lone clip by the training speakers' average" "small $S w2v=0 prosody=2 norm=spk_train_ref_test"
run "descriptors, per speaker / the test set split in two by median pitch" "small $S w2v=0 prosody=2 norm=spk_train_pitch_test"
run "descriptors, per speaker and per corpus mixed / per set" "small $S w2v=0 prosody=2 norm=mix_train_corpus_test"
run "descriptors + w2v2 small probe, probabilities 0.7/0.3" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test ens=0.3"
run "descriptors, EM prior correction on the test set" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test prior=em"
run "descriptors, MLP (64 hidden)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test hidden=64"
run "descriptors, dropout 0.5" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test dropout=0.5"
run "descriptors, channel augmentation (one channel per speaker)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test aug=1"
run "descriptors, trained on all five other corpora (evaluation-only ones too)" "small seeds=3 train=all w2v=0 prosody=2 norm=spk_train_corpus_test"
run "descriptors, class biases fitted leave-one-corpus-out inside the training corpora" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test calib=bias"
run "descriptors, normal scores of ranks per speaker / per set instead of mean and sd" "small $S w2v=0 prosody=2 norm=rank_spk_train_corpus_test"
# Test-time speaker clustering: needs runs/travel/speaker_ge2e.pt (speaker_embed.py) and scipy on PYTHONPATH
# (PYTHONPATH=/tmp/spkdeps, see speaker_embed.py). The cut of the clustering tree is the one whose clusters best
# match the true speakers of the training corpora (adjusted Rand index); clusters below min_size clips take the
# whole set's statistics.
run "descriptors, per speaker / test set clustered by voice (GE2E), clusters of 25+ clips alone" "small $S w2v=0 prosody=2 norm=spk_train_cluster_test min_size=25"
run "descriptors, per speaker / test set clustered by voice (GE2E), clusters of 60+ clips alone" "small $S w2v=0 prosody=2 norm=spk_train_cluster_test min_size=60"
run "descriptors, per speaker / voice clusters of 25+ clips and per set, probabilities averaged" "small $S w2v=0 prosody=2 norm=spk_train_cluster_test min_size=25 hedge=1"
# transductive self-training: the unseen set's most confident clips of each predicted class join training with their
# predicted labels (all six classes open), then the set is predicted again
run "descriptors, per speaker / per set, then self-training: the set's 30% most confident clips of each predicted class join training" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test self=0.3 self_w=1"
run "descriptors, per speaker / per set, then self-training on 50% of each predicted class" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test self=0.5 self_w=1"
run "descriptors, per speaker / per set, then self-training on 30%, three rounds" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test self=0.3 self_w=1 self_rounds=3"
run "descriptors, per speaker / per set, then self-training on 50% weighing three corpora, two rounds" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test self=0.5 self_w=3 self_rounds=2"
# the set's mean and sd weighted so that each predicted class counts the same (a set holding few emotions)
run "descriptors, per speaker / per set with the set's statistics reweighted to balance its predicted classes" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test balanced=1"
run "descriptors, per speaker / per set with class-balanced set statistics, three rounds" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test balanced=3"
# issue 32, round 4: domain adaptation, robust training, other feature sets, speaker statistics shrunk to the set
run "descriptors, per speaker / per set aligned to the training covariance (CORAL, shrunk 0.5)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test coral=0.5"
run "descriptors, per speaker / per set aligned to the training covariance (CORAL, shrunk 0.9)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test coral=0.9"
run "descriptors, group DRO over training corpora (eta 0.01)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test dro=0.01"
run "descriptors, group DRO over training corpora (eta 0.03)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test dro=0.03"
run "descriptors, the 120 most consistent across training corpora (min ANOVA F)" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test select=120"
run "descriptors, shrinkage LDA with class means averaged over corpora" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test lda=0.1"
run "descriptors, weight decay 1.0" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test wd=1.0"
run "descriptors, per speaker and per corpus heads averaged" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test ens_corpus=1"
# openSMILE's standard sets (experiments/travel/smile.py; research licence, never a product dependency)
run "openSMILE eGeMAPSv02 (88), per speaker / per set" "small $S w2v=0 smile=egemaps norm=spk_train_corpus_test"
run "openSMILE ComParE_2016 (6,373), per speaker / per set" "small $S w2v=0 smile=compare norm=spk_train_corpus_test"
run "descriptors + eGeMAPSv02, per speaker / per set" "small $S w2v=0 prosody=2 smile=egemaps norm=spk_train_corpus_test"
# speakers known: each test speaker's statistics shrunk toward the set's by a prior worth k clips
run "descriptors, per speaker / per speaker shrunk to the set, prior 10 clips (shipped)" "small $S w2v=0 prosody=2 norm=spk_train_shrunk_test k=10"
run "descriptors, per speaker / per speaker shrunk to the set, prior 20 clips" "small $S w2v=0 prosody=2 norm=spk_train_shrunk_test k=20"
run "descriptors, per speaker / per speaker shrunk to the set, prior 40 clips" "small $S w2v=0 prosody=2 norm=spk_train_shrunk_test k=40"
run "descriptors, shrunk per speaker in training too / per speaker shrunk, prior 10" "small $S w2v=0 prosody=2 norm=shrunk k=10"
run "descriptors, per speaker shrunk (prior 10) and per set, probabilities averaged" "small $S w2v=0 prosody=2 norm=spk_train_shrunk_test k=10 hedge_set=1"
# speakers unknown: voice clusters (GE2E, as above) or two pitch registers, each shrunk toward the set's statistics
run "descriptors, per speaker / voice clusters (GE2E) shrunk to the set, prior 10 clips" "small $S w2v=0 prosody=2 norm=spk_train_cluster_test k=10"
run "descriptors, per speaker / voice clusters (GE2E) shrunk to the set, prior 20 clips" "small $S w2v=0 prosody=2 norm=spk_train_cluster_test k=20"
run "descriptors, per speaker / two pitch registers shrunk to the set, prior 10 clips" "small $S w2v=0 prosody=2 norm=spk_train_pitch_shrunk_test k=10"
# the lone-clip heads' probabilities (training pool's statistics) mixed into the set's or the speakers'
run "descriptors, per speaker / per set, with the lone-clip heads' probabilities at weight 0.3" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test hedge_global=0.3"
run "descriptors, per speaker / per set, with the lone-clip heads' probabilities at weight 0.5" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test hedge_global=0.5"
run "descriptors, per speaker / per speaker shrunk (prior 10), lone-clip heads at weight 0.2" "small $S w2v=0 prosody=2 norm=spk_train_shrunk_test k=10 hedge_global=0.2"
# issue 32, round 5: the normalisation's centre made independent of the emotions' mix; soft voice neighbourhoods
run "descriptors, training speakers' statistics class-balanced / per set" "small $S w2v=0 prosody=2 norm=cbal_spk_train_corpus_test"
run "descriptors, training speakers' statistics class-balanced / per set class-balanced, three rounds" "small $S w2v=0 prosody=2 norm=cbal_spk_train_corpus_test balanced=3"
run "descriptors, training speakers' statistics class-balanced / per speaker shrunk, prior 10" "small $S w2v=0 prosody=2 norm=cbal_spk_train_shrunk_test k=10"
run "descriptors, 8 copies per training speaker, each with a random mix of its classes (Dirichlet 1) / per set" "small $S w2v=0 prosody=2 norm=mixspk_train_corpus_test copies=8 epochs=4 alpha=1"
run "descriptors, 8 copies per training corpus, each with a random mix of its classes (Dirichlet 1) / per set" "small $S w2v=0 prosody=2 norm=mixcorp_train_corpus_test copies=8 epochs=4 alpha=1"
run "descriptors, per speaker / each clip by its 20 nearest voices (GE2E) shrunk to the set, prior 10" "small $S w2v=0 prosody=2 norm=spk_train_knn_test knn=20 k=10"
run "descriptors, per speaker / each clip by its 40 nearest voices (GE2E) shrunk to the set, prior 10" "small $S w2v=0 prosody=2 norm=spk_train_knn_test knn=40 k=10"
run "descriptors, per speaker / per set, nuisance attribute projection of the top direction where corpora disagree per class" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test nap=1"
run "descriptors, per speaker / per set, nuisance attribute projection of the top 3 such directions" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test nap=3"
# recording level: test clips at random gains within +-20 dB; descriptors relative to each clip's own level
run "descriptors, lone clip (training pool's statistics), test clips at random gains within +-20 dB" "small $S w2v=0 prosody=2 norm=global gain_db=20"
run "descriptors, lone clip, each clip's descriptors relative to its own level (shipped for lone clips)" "small $S w2v=0 prosody=2 norm=global level_free=1"
run "descriptors, lone clip relative to its own level, test clips at random gains within +-20 dB" "small $S w2v=0 prosody=2 norm=global level_free=1 gain_db=20"
run "descriptors, lone clip, training at random gains within +-10 dB (4 copies)" "small $S w2v=0 prosody=2 norm=global train_gain_db=10 epochs=8"
run "descriptors, lone clip, training at random gains within +-10 dB, test within +-20 dB" "small $S w2v=0 prosody=2 norm=global train_gain_db=10 epochs=8 gain_db=20"
run "descriptors, per speaker / per set, test clips at random gains within +-20 dB" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test gain_db=20"
run "descriptors, per speaker / per set, relative to each clip's own level" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test level_free=1"
run "descriptors, per speaker / per set, relative to each clip's own level, test within +-20 dB" "small $S w2v=0 prosody=2 norm=spk_train_corpus_test level_free=1 gain_db=20"
run "descriptors, per speaker / per speaker shrunk (prior 10), relative to each clip's own level" "small $S w2v=0 prosody=2 norm=spk_train_shrunk_test k=10 level_free=1"
# rhythm between the first and last sounding frame (trim_rhythm.py), against the same descriptors untrimmed
run "descriptors as now (unit RMS, DC removed), per speaker / per set" "small $S w2v=0 prosody=now norm=spk_train_corpus_test"
run "descriptors as now, per speaker / per speaker shrunk, prior 10" "small $S w2v=0 prosody=now norm=spk_train_shrunk_test k=10"
run "descriptors as now, lone clip relative to its own level" "small $S w2v=0 prosody=now norm=global level_free=1"
run "descriptors, rhythm without leading and trailing silence (shipped), per speaker / per set" "small $S w2v=0 prosody=trim norm=spk_train_corpus_test"
run "descriptors, rhythm without leading and trailing silence, per speaker / per speaker shrunk, prior 10" "small $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10"
run "descriptors, rhythm without leading and trailing silence, lone clip relative to its own level" "small $S w2v=0 prosody=trim norm=global level_free=1"
# spectral tracks over voiced frames; "sounding" within 25 dB; descriptor groups left out; both standardisations
# as inputs (name `meta` and the prosody_{trim,voiced,db25}.pt files: experiments/travel/voiced_spectrum.py)
run "descriptors, spectral tracks over voiced frames only, per speaker / per set" "meta $S w2v=0 prosody=voiced norm=spk_train_corpus_test"
run "descriptors, spectral tracks over voiced frames only, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=voiced norm=spk_train_shrunk_test k=10"
run "descriptors, sounding frames within 25 dB of the loudest (not 35), per speaker / per set" "meta $S w2v=0 prosody=db25 norm=spk_train_corpus_test"
run "descriptors, sounding frames within 25 dB, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=db25 norm=spk_train_shrunk_test k=10"
run "descriptors without the 8 loudness functionals, per speaker / per set" "meta $S w2v=0 prosody=trim drop=loud norm=spk_train_corpus_test"
run "descriptors without the 8 loudness functionals, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim drop=loud norm=spk_train_shrunk_test k=10"
run "descriptors without loudness and voicing-strength functionals, per speaker / per set" "meta $S w2v=0 prosody=trim drop=loud+peak norm=spk_train_corpus_test"
run "descriptors without loudness and voicing-strength functionals, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim drop=loud+peak norm=spk_train_shrunk_test k=10"
run "descriptors, per speaker / per set, and the clip relative to its level by the pool's statistics as more inputs" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test concat_global=1 level_free_global=1"
run "descriptors, per speaker / per speaker shrunk (prior 10), and the same lone-clip inputs" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 concat_global=1 level_free_global=1"
# per speaker only in the descriptors whose variance is mostly between training speakers (within corpora), per set elsewhere
run "descriptors, per speaker / per speaker shrunk where the training speakers' share of variance > 0.2, per set elsewhere" "meta $S w2v=0 prosody=trim norm=spk_train_hybrid_test k=10 tau=0.2"
run "descriptors, per speaker / the same with the share > 0.3" "meta $S w2v=0 prosody=trim norm=spk_train_hybrid_test k=10 tau=0.3"
run "descriptors, per speaker / the same with the share > 0.4" "meta $S w2v=0 prosody=trim norm=spk_train_hybrid_test k=10 tau=0.4"
# long recordings: 8 s windows of several clips of one speaker in one emotion (concat_windows.py); pauses cut short (pause_cap.py)
run "windows of joined clips (one speaker, one emotion) as the unseen corpus, lone clip relative to its level" "meta $S w2v=0 prosody=trim norm=global level_free=1 concat_test=1"
run "windows of joined clips as the unseen corpus, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test concat_test=1"
run "windows of joined clips, the training corpora's windows in training too, lone clip" "meta $S w2v=0 prosody=trim norm=global level_free=1 concat_test=1 concat_train=1"
run "windows of joined clips, the training corpora's windows in training too, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test concat_test=1 concat_train=1"
run "single clips, the training corpora's windows of joined clips in training too, lone clip" "meta $S w2v=0 prosody=trim norm=global level_free=1 concat_train=1"
run "single clips, the training corpora's windows of joined clips in training too, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test concat_train=1"
run "descriptors, pauses inside the speech cut to 0.5 s before the rhythm, per speaker / per set" "meta $S w2v=0 prosody=cap50 norm=spk_train_corpus_test"
run "descriptors, pauses cut to 0.5 s, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=cap50 norm=spk_train_shrunk_test k=10"
run "descriptors, pauses cut to 0.5 s, lone clip relative to its level" "meta $S w2v=0 prosody=cap50 norm=global level_free=1"
# random-subspace ensembles (Ho 1998): heads on random descriptor groups, probabilities averaged; label smoothing; epochs
run "descriptors, 14 heads each leaving one descriptor group out, averaged, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test subspace=loo"
run "descriptors, 14 heads each leaving one descriptor group out, averaged, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 subspace=loo"
run "descriptors, 16 heads on random halves of the descriptor groups, averaged, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test subspace=16 sub_keep=0.5"
run "descriptors, 16 heads on random halves of the descriptor groups, averaged, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 subspace=16 sub_keep=0.5"
run "descriptors, label smoothing 0.1 over each corpus's classes, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test smooth=0.1"
run "descriptors, label smoothing 0.1, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 smooth=0.1"
run "descriptors, 10 epochs instead of 30, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test epochs=10"
run "descriptors, 10 epochs instead of 30, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 epochs=10"
run "descriptors, 90 epochs instead of 30, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test epochs=90"
run "descriptors, 90 epochs instead of 30, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 epochs=90"
# a clip's distance from its group's centre as inputs (neutral stays near it); a speaker's prior by its answers' spread
run "descriptors and each group's log mean square after standardisation (14 more inputs), per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test dev=1"
run "descriptors and each group's log mean square, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 dev=1"
run "descriptors, per speaker / per speaker shrunk, prior 10 / h^4 clips (h: entropy of the speaker's per-set answers)" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 mood_k=10"
# heads constrained or trained for invariance across the training corpora; arousal/valence beside the classes
for N in "per set|norm=spk_train_corpus_test" "per speaker shrunk, prior 10|norm=spk_train_shrunk_test k=10"; do
  L=${N%%|*}; A=${N#*|}
  run "descriptors, a low-rank linear head (rank 2), per speaker / $L" "meta $S w2v=0 prosody=trim $A rank=2"
  run "descriptors, a low-rank linear head (rank 4), per speaker / $L" "meta $S w2v=0 prosody=trim $A rank=4"
  run "descriptors, V-REx over training corpora (beta 1), per speaker / $L" "meta $S w2v=0 prosody=trim $A vrex=1"
  run "descriptors, V-REx over training corpora (beta 10), per speaker / $L" "meta $S w2v=0 prosody=trim $A vrex=10"
  run "descriptors, mixup within each corpus (alpha 0.4), per speaker / $L" "meta $S w2v=0 prosody=trim $A mixup=0.4"
  run "descriptors, arousal and valence regressed beside the classes, per speaker / $L" "meta $S w2v=0 prosody=trim $A arousal=1"
  run "descriptors, heads without each training corpus in turn and with all, averaged, per speaker / $L" "meta $S w2v=0 prosody=trim $A bag_corpus=1"
done
# the directions in which training speakers' means differ (corpus-standardised), projected out of both sets
run "descriptors, per speaker / per set, the top 3 directions of training speakers' means projected out" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test spk_nap=3"
run "descriptors, per speaker / per set, the top 10 directions of training speakers' means projected out" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test spk_nap=10"
run "descriptors, per speaker / per set, the top 30 directions of training speakers' means projected out" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test spk_nap=30"
# read speech (LibriSpeech, speechocean762 adults, LJ Speech: 820 clips of 81 voices; read_speech.py) as extra
# neutral training clips against all six classes, weighing read_w of one emotional corpus
for N in "per set|norm=spk_train_corpus_test" "per speaker shrunk, prior 10|norm=spk_train_shrunk_test k=10"; do
  L=${N%%|*}; A=${N#*|}
  for W in 0.1 0.2 0.3 0.5; do
    run "descriptors, read speech as neutral at weight $W of a corpus, per speaker / $L" "meta $S w2v=0 prosody=trim $A read=all read_w=$W"
  done
  run "descriptors, read speech as neutral at weight 0.2, LibriSpeech and LJ Speech alone, per speaker / $L" "meta $S w2v=0 prosody=trim $A read=librispeech+ljspeech read_w=0.2"
  run "descriptors, read speech as neutral at weight 0.2, speechocean762 adults alone, per speaker / $L" "meta $S w2v=0 prosody=trim $A read=speechocean read_w=0.2"
  run "descriptors, read speech as neutral at weight 0.2, all 250 speechocean762 speakers (children too), per speaker / $L" "meta $S w2v=0 prosody=trim $A read=all read_w=0.2 read_file=_all"
  run "descriptors, read speech as neutral at weight 0.2, its clips standardised as one group, per speaker / $L" "meta $S w2v=0 prosody=trim $A read=all read_w=0.2 read_norm=corpus"
done
run "descriptors, read speech as neutral at weight 0.05 in the lone-clip heads too, lone clip relative to its level" "meta $S w2v=0 prosody=trim norm=global level_free=1 read=all read_w=0.05"
# a lone clip standardised by read speech (neutral voices) instead of the emotional training pool: the K voices
# nearest it in MFCC means (and median pitch), or all of them pooled; training clips the same way
run "descriptors, lone clip by the 10 read-speech voices nearest its MFCC means and pitch (of 291)" "meta $S w2v=0 prosody=trim norm=ref_read refk=10 match=mfcc+pitch"
run "descriptors, lone clip by the 60 read-speech voices nearest its MFCC means and pitch (of 291)" "meta $S w2v=0 prosody=trim norm=ref_read refk=60 match=mfcc+pitch"
run "descriptors, lone clip by the statistics of 2,920 read-speech clips pooled (291 voices)" "meta $S w2v=0 prosody=trim norm=ref_read ref_pooled=1"
run "descriptors, lone clip by the statistics of the shipped 820 read-speech clips pooled (81 voices)" "meta $S w2v=0 prosody=trim norm=ref_read ref_file=ship ref_pooled=1"
# training speakers of one clip (15 of the Indian set's 96) standardise to zeros: left out of training
run "descriptors, read speech as neutral at 0.2, training speakers of one clip left out, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test read=all read_w=0.2 drop_single=1"
run "descriptors, read speech as neutral at 0.2, training speakers of one clip left out, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 read=all read_w=0.2 drop_single=1"
# robust centres: median and MAD per group; standardised values clipped (an odd clip's outliers tamed)
run "descriptors, read speech as neutral at 0.2, median and MAD per speaker / per set instead of mean and sd" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test read=all read_w=0.2 robust=1"
run "descriptors, read speech as neutral at 0.2, standardised values clipped at +-3, per speaker / per set" "meta $S w2v=0 prosody=trim norm=spk_train_corpus_test read=all read_w=0.2 clipz=3"
run "descriptors, read speech as neutral at 0.2, standardised values clipped at +-3, per speaker / per speaker shrunk, prior 10" "meta $S w2v=0 prosody=trim norm=spk_train_shrunk_test k=10 read=all read_w=0.2 clipz=3"
# a second view: a CNN on log-mel spectrograms standardised per speaker / per set (logmel.py; its probabilities
# runs/travel/logmel_probs_epochs20_s{0,1,2}.pt), alone and averaged with the descriptors (at the 1e-2 floor)
L="meta $S w2v=0 prosody=f1e-2_clean read_file=_f1e-2 norm=spk_train_corpus_test read=all read_w=0.2 ext=logmel_probs_epochs20"
run "descriptors at the log floor 1e-2 (shipped before this row), per speaker / per set" "$L ext_w=0"
run "a CNN on log-mel spectrograms alone (logmel.py), per speaker / per set" "$L ext_w=1"
run "descriptors and the log-mel CNN, probabilities 0.7 / 0.3 (shipped), per speaker / per set" "$L ext_w=0.3"
# several CNNs a fit (the product's travel.mel_nets): logmel.py train S epochs=20 views=1 for S = 0..5 (views=1 also
# saves the per-speaker view), then python experiments/travel/mel_ensemble.py _epochs20_views1 2 (seeds S and S + 3
# averaged: runs/travel/logmel_ens2_epochs20_views1{,_speaker}_s{0,1,2}.pt)
L="meta $S w2v=0 prosody=f1e-2_clean read_file=_f1e-2 read=all read_w=0.2 ext_w=0.3"
run "descriptors and one log-mel CNN (views=1 re-run), 0.7 / 0.3, per speaker / per set" "$L norm=spk_train_corpus_test ext=logmel_probs_epochs20_views1"
run "descriptors and one log-mel CNN (views=1 re-run), 0.7 / 0.3, per speaker / per speaker shrunk, prior 10" "$L norm=spk_train_shrunk_test k=10 ext=logmel_probs_epochs20_views1_speaker"
run "descriptors and two log-mel CNNs averaged, 0.7 / 0.3, per speaker / per set" "$L norm=spk_train_corpus_test ext=logmel_ens2_epochs20_views1"
run "descriptors and two log-mel CNNs averaged, 0.7 / 0.3, per speaker / per speaker shrunk, prior 10" "$L norm=spk_train_shrunk_test k=10 ext=logmel_ens2_epochs20_views1_speaker"
run "descriptors and one log-mel CNN, geometric mean 0.7 / 0.3, per speaker / per set" "$L norm=spk_train_corpus_test ext=logmel_probs_epochs20_views1 ext_geo=1"
run "descriptors and one log-mel CNN, geometric mean 0.7 / 0.3, per speaker / per speaker shrunk, prior 10" "$L norm=spk_train_shrunk_test k=10 ext=logmel_probs_epochs20_views1_speaker ext_geo=1"
