#!/usr/bin/env bash
# Regenerates the binary documents of the retrieval-evaluation set from the sources in
# sources/, with LibreOffice, then runs check.py.
#
#   sources/price-list-*.csv  --build_fods.py-->  price-list.fods  -->  documents/price-list.xlsx
#   sources/shipping-returns-policy.html      -->  documents/shipping-returns-policy.pdf
#   sources/kebijakan-garansi.html            -->  documents/kebijakan-garansi.pdf
#
# faq-en.md and faq-id.md are written by hand in documents/ and are not generated.
#
# Needs (Debian): libreoffice-writer-nogui libreoffice-calc-nogui poppler-utils, python3
#
# Idempotent: every run rebuilds the same documents from the same sources. The bytes differ
# between runs (PDF creation dates and IDs, zip timestamps); the content does not.
#
# Usage: knowledge/eval/make-documents.sh [--no-check]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/sources"
out="$here/documents"

for tool in soffice pdftotext python3; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "make-documents: $tool not found; install with:" >&2
        echo "  apt-get install libreoffice-writer-nogui libreoffice-calc-nogui poppler-utils python3" >&2
        exit 1
    fi
done

work="$(mktemp -d /tmp/obrol-eval-documents.XXXXXX)"
trap 'rm -rf "$work"' EXIT
# A profile of its own, so a running LibreOffice (or a stale lock) cannot get in the way.
profile="file://$work/lo-profile"

convert() { # convert FILTER INPUT OUTDIR [INFILTER]
    local infilter=()
    if [ $# -ge 4 ]; then infilter=(--infilter="$4"); fi
    soffice -env:UserInstallation="$profile" --headless --norestore "${infilter[@]}" \
        --convert-to "$1" --outdir "$3" "$2" >"$work/soffice.log" 2>&1 || {
        cat "$work/soffice.log" >&2
        return 1
    }
}

mkdir -p "$work/out" "$out"

python3 "$src/build_fods.py" "$work/price-list.fods"
convert 'xlsx:Calc MS Excel 2007 XML' "$work/price-list.fods" "$work/out"
convert 'pdf:writer_pdf_Export' "$src/shipping-returns-policy.html" "$work/out" 'HTML (StarWriter)'
convert 'pdf:writer_pdf_Export' "$src/kebijakan-garansi.html" "$work/out" 'HTML (StarWriter)'

for f in price-list.xlsx shipping-returns-policy.pdf kebijakan-garansi.pdf; do
    if [ ! -s "$work/out/$f" ]; then
        echo "make-documents: LibreOffice did not produce $f" >&2
        cat "$work/soffice.log" >&2
        exit 1
    fi
    mv -f "$work/out/$f" "$out/$f"
done

echo "make-documents: wrote $(cd "$out" && ls | tr '\n' ' ')"
if [ "${1:-}" != "--no-check" ]; then
    python3 "$here/check.py"
fi
