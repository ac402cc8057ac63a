#!/bin/sh
# Rebuilds the model zoo from scratch: one model per positional encoding, identical otherwise (data,
# tokenizer, size, seed, recipe), then the RoPE model fine-tuned at 4x its training length with
# position interpolation and with YaRN. Writes models/zoo/*.gguf, logs in logs/zoo-*.log, and the
# model card models/zoo/card.md. Usage: sh models/make-zoo.sh [names...]   (default: all; "card": only
# rewrite the card from the logs)
# FORCE=1 (`make models`) first deletes the named models and their checkpoints and trains them from
# scratch. Without it a model already in models/zoo is kept and one whose training was interrupted
# continues from its checkpoint (logs/zoo-NAME.ckpt): rerunning without FORCE resumes a build.
set -eu
cd "$(dirname "$0")/.."
[ -f data/brown-train.txt ] || sh models/fetch-brown.sh data
make -s train
mkdir -p models/zoo logs
JOBS=${JOBS:-2}   # models trained at once: two 1-thread jobs keep both cores about as busy as one 2-thread job
TH=${TH:-1}       # threads per job; a run is deterministic for its seed and thread count

# The recipe (README, "The recipe search"): phase A trains passkey rows on their answer only, in rows
# of L/2 tokens (twice as many), until retrieval has formed; phase B mixes corpus rows (full loss) back
# in at full length, the passkey rows still answer-only; phase C leans on retrieval as lr anneals.
# Passkey examples take any length up to the row (data.h), so the question is not always at the end.
L=256
COMMON="-data data/brown-train.txt -heldout data/brown-heldout.txt -tokenizer bytes -ctx $L -dim 160 -layers 4 -heads 5
        -hidden 320 -batch 16 -lr 1e-3 -warmup 50 -seed 1 -th $TH -eval-every 250 -passkey-trials 5"
MIX=${MIX:-0:1:a:x2,2000:0.5:a,6000:0.9:a}
STEPS=${STEPS:-6600}
RECIPE="bytes, d160 x4 layers (5 heads, MLP 320), batch 16 x $L, $STEPS steps, lr 1e-3, passkey mix $MIX, examples of any length, marker, seed 1, $TH thread(s)"
# fine-tunes: 4x the training length, s = 4, 4.8% of the pre-training tokens (1.3M of 27M; at 2.4% YaRN
# was one prompt short of the study's 80% at 4x, README), passkey rows answer-only as in phase B; each
# method at its best rate of 1e-3 / 3e-4 / 1e-4 (README, "The model zoo"): PI must relearn local order
# (1e-3), YaRN only adapt (1e-4, the rate pre-training ended with)
FT="-data data/brown-train.txt -heldout data/brown-heldout.txt -ctx $((4 * L)) -orig-ctx $L -scale 4 -batch 4 -steps 320
    -warmup 10 -mix 0:0.5:a -seed 1 -th $TH -eval-every 60 -passkey-trials 5"

train_one() {   # name, flags...: checkpointed every 250 steps; an interrupted run resumes from there
    name=$1; shift
    ck=logs/zoo-$name.ckpt
    if [ -s "$ck" ]; then
        echo "== $name: resuming $ck" >&2
        set -- "$@" -resume "$ck"
    else
        echo "== $name" >&2
        : > "logs/zoo-$name.log"
    fi
    ./train "$@" -ckpt "$ck" -ckpt-every 250 -o "models/zoo/$name.gguf" > "logs/zoo-$name.out" 2>> "logs/zoo-$name.log"
    rm -f "$ck"
    cat "logs/zoo-$name.out"
}

ALL="rope alibi sinusoidal learned none t5 rope-pi4 rope-yarn4"
names=${*:-$ALL}
[ "$names" = card ] && names=""
if [ "${FORCE:-0}" = 1 ]; then   # from scratch: a rerun without FORCE then resumes this build, not the old zoo
    for n in $names; do rm -f "models/zoo/$n.gguf" "logs/zoo-$n.ckpt"; done
fi
running=0
for n in $names; do
    if [ -s "models/zoo/$n.gguf" ] && [ ! -s "logs/zoo-$n.ckpt" ]; then echo "== $n: kept" >&2; continue; fi
    case $n in
    rope|alibi|learned|none|t5) set -- $COMMON -pe "$n" -mix "$MIX" -steps "$STEPS" -recipe "$RECIPE" ;;
    # amplitude 1 swamps the 0.02-std token embeddings ~35:1 and the model learned nothing (README); at
    # 0.02 * sqrt(2) the sinusoids have the RMS of the learned model's initial position table
    sinusoidal) set -- $COMMON -pe "$n" -sinusoid-scale 0.0283 -mix "$MIX" -steps "$STEPS" -recipe "$RECIPE, sinusoid amplitude 0.0283" ;;
    rope-pi4) wait; running=0; set -- $FT -lr 1e-3 -init models/zoo/rope.gguf -pe linear -recipe "fine-tune of rope.gguf: PI s=4 at $((4 * L)), lr 1e-3" ;;
    rope-yarn4) set -- $FT -lr 1e-4 -init models/zoo/rope.gguf -pe yarn -recipe "fine-tune of rope.gguf: YaRN s=4 at $((4 * L)), lr 1e-4" ;;
    *) echo "unknown zoo model $n" >&2; exit 1 ;;
    esac
    train_one "$n" "$@" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then wait; running=0; fi
done
wait
for n in $names; do   # background jobs do not stop the script: check each model was written
    [ -s "models/zoo/$n.gguf" ] || { echo "error: $n failed, see logs/zoo-$n.log" >&2; exit 1; }
done

# the model card, from the training facts each model carries in its metadata (./run -m info)
make -s run
{
    echo "| model | parameters | tokens | wall time | tokens/s | held-out ppl (bytes) at its length | passkey exact at its length |"
    echo "|---|---|---|---|---|---|---|"
    for n in $ALL; do
        [ -s "models/zoo/$n.gguf" ] || continue
        ./run "models/zoo/$n.gguf" -m info | awk -F ' = ' -v name="$n" '{ v[$1] = $2 }
            END { w = v["pelab.train.wall_seconds"]
                  printf "| %s | %s | %s | %.1f s | %.0f | %.3f | %.3f (%d trials) |\n", name, v["parameters"], v["pelab.train.tokens"],
                         w, v["pelab.train.tokens"] / w, exp(v["pelab.train.heldout_loss"]), v["pelab.train.passkey_exact"], v["pelab.train.passkey_trials"] }'
    done
} > models/zoo/card.md
cat models/zoo/card.md
