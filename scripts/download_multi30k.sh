#!/usr/bin/env bash
# Downloads Multi30k Task 1 (English-German, raw) from https://github.com/multi30k/dataset into
# ${T2T_DATA_DIR:-$HOME/.cache/t2t_lite/data}/multi30k as train/val/test2016.{en,de}, the layout
# t2t_lite's configs expect (relative paths like multi30k/train.en resolve against that dir).
#
# Terms: derived from Flickr30K; non-commercial research and educational use only. Cite
# Elliott et al. 2016, "Multi30K: Multilingual English-German Image Descriptions".
# Never copy these files into the repository.
#
# Files are downloaded and checked in a temporary directory beside the destination, then moved
# into place, so an interrupted run never leaves a partial file under a final name.
set -euo pipefail

BASE_URL="https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw"
DEST="${T2T_DATA_DIR:-$HOME/.cache/t2t_lite/data}/multi30k"
# upstream name : our name : expected lines
SPLITS=("train:train:29000" "val:val:1014" "test_2016_flickr:test2016:1000")

fetch() {  # fetch URL FILE
  if command -v curl >/dev/null; then
    curl --fail --silent --show-error --location --retry 3 --output "$2" "$1"
  else
    wget --quiet --tries=3 --output-document="$2" "$1"
  fi
}

mkdir -p "$DEST"
TMP="$(mktemp -d "$DEST/.download.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

for split in "${SPLITS[@]}"; do
  IFS=: read -r upstream ours expected <<<"$split"
  for lang in en de; do
    url="$BASE_URL/$upstream.$lang.gz"
    echo "downloading $url" >&2
    fetch "$url" "$TMP/$upstream.$lang.gz"
    gunzip --stdout "$TMP/$upstream.$lang.gz" >"$TMP/$ours.$lang"
    lines="$(wc -l <"$TMP/$ours.$lang")"
    if [[ "$lines" -ne "$expected" ]]; then
      echo "error: $url has $lines lines, expected $expected" >&2
      exit 1
    fi
  done
done

for split in "${SPLITS[@]}"; do
  IFS=: read -r _ ours _ <<<"$split"
  for lang in en de; do
    mv -f "$TMP/$ours.$lang" "$DEST/$ours.$lang"
  done
done
echo "Multi30k task 1 (en-de) is in $DEST:"
ls -l "$DEST"
if [[ -z "${T2T_DATA_DIR:-}" ]]; then
  echo "t2t_lite looks there when T2T_DATA_DIR is unset; to be explicit:"
  echo "export T2T_DATA_DIR=$(dirname "$DEST")"
fi
