#!/usr/bin/env bash
# Issue 34: `make demo`'s evaluation step (its four checkpoints, the robustness suite) with -C / -P cached and on the
# fly, back to back, each on a cold cache of -C / -P sets (the run's trained -A references copied in, the same for
# both). Prints wall time, bytes of built sets and peak memory per path; the two report folders can then be rendered
# with `nsbench report OUT/eval-HOW RUN --baseline NAME-iter0`.
#     bash benchmarks/demo_generate.sh runs/demo OUT      (after `make demo`; run it with nothing else on the machine)
set -u
run=${1:?usage: demo_generate.sh RUN_FOLDER OUT_FOLDER}; out=${2:?usage: demo_generate.sh RUN_FOLDER OUT_FOLDER}
nsbench=$(dirname "$0")/../.venv/bin/nsbench
mkdir -p "$out"
for how in cached on_the_fly; do
  cache=$out/cache-$how
  rm -rf "$cache" "$out/eval-$how"
  mkdir -p "$cache/sets"
  cp -r "$run"/cache/sets/A-* "$cache/sets/" 2>/dev/null
  t0=$(date +%s.%N)
  /usr/bin/time -v "$nsbench" eval --suite robustness "$run"/iter0.pt "$run"/iter1.pt "$run"/iter2.pt "$run"/iter3.pt \
    --out "$out/eval-$how" --cache "$cache" corruptions.generate=$how perturbations.generate=$how \
    > "$out/$how.log" 2> "$out/$how.time"
  rc=$?
  t1=$(date +%s.%N)
  echo "$how rc=$rc wall_s=$(echo "$t1 - $t0" | bc) built_C_P_bytes=$(du -scb "$cache"/sets/C-* "$cache"/sets/P-* 2>/dev/null | tail -1 | cut -f1) max_rss_kb=$(grep 'Maximum resident' "$out/$how.time" | awk '{print $NF}')" | tee -a "$out/times.log"
done
